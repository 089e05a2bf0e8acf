"""The Open Inference Protocol (KServe v2) over REST, with the binary-data extension.

A served model has one input and a few outputs:

==================  ========  =====================  ====================================
tensor              datatype  shape                  holds
==================  ========  =====================  ====================================
``image`` (input)   UINT8 or  ``[N, H, W, C]``       pixels as training saw them; FP32
                    FP32                             values must lie in [0, 255] and are
                                                     rounded to the nearest integer
``label``           BYTES     ``[N]``                the predicted class's name
``scores``          FP64      ``[N, n_classes]``     scores in class order (probability,
                                                     margin or vote share: ``parameters``)
``top_classes``     INT64     ``[N, top]``           class positions, best first
``neighbors``       INT64     ``[N, k]``             k-NN only: training indices
``distances``       FP64      ``[N, k]``             k-NN only: their distances
==================  ========  =====================  ====================================

``top`` (default 5) is a request parameter. Tensors travel as JSON ``data`` or,
with the binary-data extension, as raw little-endian bytes after a JSON header
whose length the ``Inference-Header-Content-Length`` header gives; inputs say
``"parameters": {"binary_data_size": n}``, outputs are sent binary when the
request asks (``binary_data_output`` or an output's ``binary_data``).
"""

from __future__ import annotations

import json
import struct

import numpy as np

from imgclf.serve._http import RequestError, json_bytes

__all__ = [
    "HEADER_LENGTH",
    "InferRequest",
    "infer_response",
    "model_metadata",
    "parse_infer_request",
    "server_metadata",
]

HEADER_LENGTH = b"inference-header-content-length"
INPUT = "image"
_DTYPES = {"UINT8": np.uint8, "FP32": np.dtype("<f4")}


def server_metadata(version: str) -> dict:
    """``GET /v2``."""
    return {"name": "imgclf", "version": version, "extensions": ["binary_tensor_data"]}


def _outputs(model) -> list[dict]:
    n_classes = len(model.classes)
    outputs = [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "scores", "datatype": "FP64", "shape": [-1, n_classes]},
        {"name": "top_classes", "datatype": "INT64", "shape": [-1, -1]},
    ]
    if model.is_knn:
        outputs += [
            {"name": "neighbors", "datatype": "INT64", "shape": [-1, model.k]},
            {"name": "distances", "datatype": "FP64", "shape": [-1, model.k]},
        ]
    return outputs


def model_metadata(model) -> dict:
    """``GET /v2/models/{name}``: the input and output tensors, and the classes."""
    return {
        "name": model.name,
        "versions": ["1"],
        "platform": "imgclf",
        "inputs": [{"name": INPUT, "datatype": "UINT8", "shape": [-1, *model.image_shape]}],
        "outputs": _outputs(model),
        "parameters": {"classes": model.classes, "score": model.score_kind},
    }


class InferRequest:
    """A parsed ``infer`` request: the rows, ``top``, and how to send each output.

    Attributes
    ----------
    rows : uint8 ndarray (N, H*W*C)
    top : int
    request_id : str or None
    outputs : dict of str to bool
        Output name -> send as binary; in the order asked (all outputs if none named).
    """

    def __init__(self, rows, top, request_id, outputs):
        self.rows, self.top, self.request_id, self.outputs = rows, top, request_id, outputs


def parse_infer_request(body: bytes, header_length: bytes | None, model, max_batch: int):
    """An ``infer`` body (JSON, or JSON + binary tensors) as an :class:`InferRequest`.

    Raises
    ------
    RequestError
        400 naming the field: not JSON, wrong input name, datatype, shape or size,
        values out of range, a binary size that does not add up.
    """
    header, binary = _split(body, header_length)
    if not isinstance(header, dict):
        raise RequestError(400, "infer request: expected a JSON object")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(400, f"infer request: expected one input tensor named {INPUT!r}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT:
        raise RequestError(
            400, f"infer request: unknown input {tensor.get('name')!r}; expected {INPUT!r}"
        )
    rows = _input_rows(tensor, binary, model, max_batch)
    params = _parameters(header, "request")
    top = params.get("top", 5)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(model.classes):
        raise RequestError(
            400, f"parameter top={top!r}: expected an integer from 1 to {len(model.classes)}"
        )
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "infer request: id must be a string")
    return InferRequest(rows, top, request_id, _requested_outputs(header, params, model))


def _split(body: bytes, header_length: bytes | None) -> tuple[object, bytes]:
    """The JSON header (parsed) and the binary data after it."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise RequestError(
                400,
                f"Inference-Header-Content-Length {header_length.decode('latin-1')[:40]!r}: "
                f"expected a size up to the body's {len(body):,} bytes",
            )
        size = int(header_length)
        json_part, binary = body[:size], body[size:]
    try:
        return json.loads(json_part), binary
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"infer request: not JSON ({exc})") from None


def _parameters(obj: dict, what: str) -> dict:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise RequestError(400, f"infer request: {what} parameters must be an object")
    return params


def _input_rows(tensor: dict, binary: bytes, model, max_batch: int) -> np.ndarray:
    """The input tensor as uint8 rows ``(N, H*W*C)``, checked against the model."""
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype not in _DTYPES:
        raise RequestError(
            400, f"input {INPUT!r}: datatype {datatype!r}; expected one of {', '.join(_DTYPES)}"
        )
    expected = [model.image_shape[0], model.image_shape[1], model.image_shape[2]]
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        or shape[1:] != expected
        or not 1 <= shape[0] <= max_batch
    ):
        raise RequestError(
            400,
            f"input {INPUT!r}: shape {shape!r}; expected [N, {', '.join(map(str, expected))}] "
            f"with 1 <= N <= {max_batch}",
        )
    count = int(np.prod(shape))
    values = _binary_values(tensor, binary, datatype, count)
    if values is None:
        values = _json_values(tensor, datatype, count)
    if datatype == "FP32":
        values = _pixels_from_float(values)
    return values.reshape(shape[0], -1)


def _binary_values(tensor: dict, binary: bytes, datatype: str, count: int):
    """The tensor's bytes under the binary-data extension, or None when it is in JSON."""
    size = _parameters(tensor, "input").get("binary_data_size")
    if size is None:
        return None
    dtype = np.dtype(_DTYPES[datatype])
    if size != count * dtype.itemsize or size != len(binary):
        raise RequestError(
            400,
            f"input {INPUT!r}: binary_data_size {size!r} with {len(binary):,} bytes after the "
            f"JSON header; a {datatype} tensor of {count:,} values takes "
            f"{count * dtype.itemsize:,}",
        )
    return np.frombuffer(binary, dtype=dtype)


def _json_values(tensor: dict, datatype: str, count: int) -> np.ndarray:
    """The tensor's JSON ``data`` (flat or nested, row-major) as a flat array, checked."""
    data = tensor.get("data")
    if not isinstance(data, list):
        raise RequestError(400, f"input {INPUT!r}: no data (JSON array or binary_data_size)")
    try:
        values = np.asarray(data)
    except (ValueError, OverflowError):  # ragged nesting, integers beyond 64 bits
        raise RequestError(
            400, f"input {INPUT!r}: data must be numbers in nested arrays of one shape"
        ) from None
    if values.size != count:
        raise RequestError(
            400, f"input {INPUT!r}: {values.size:,} values; its shape needs {count:,}"
        )
    if datatype == "UINT8":
        if values.dtype.kind not in "iu" or (
            values.size and (values.min() < 0 or values.max() > 255)
        ):
            raise RequestError(400, f"input {INPUT!r}: UINT8 data must be integers from 0 to 255")
        return values.astype(np.uint8).ravel()
    if values.dtype.kind not in "iuf":
        raise RequestError(400, f"input {INPUT!r}: FP32 data must be numbers")
    return values.astype(np.float32).ravel()


def _pixels_from_float(values: np.ndarray) -> np.ndarray:
    """FP32 pixels in [0, 255], rounded to uint8; anything else is a 400."""
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise RequestError(400, f"input {INPUT!r}: FP32 values must be finite, in [0, 255]")
    return np.rint(values).astype(np.uint8)


def _requested_outputs(header: dict, params: dict, model) -> dict[str, bool]:
    """Output name -> binary, for the outputs asked (all of them when none are named)."""
    names = [o["name"] for o in _outputs(model)]
    all_binary = params.get("binary_data_output", False) is True
    asked = header.get("outputs")
    if asked is None:
        return dict.fromkeys(names, all_binary)
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise RequestError(400, "infer request: outputs must be a list of objects")
    chosen = {}
    for output in asked:
        if output.get("name") not in names:
            raise RequestError(
                400, f"unknown output {output.get('name')!r}; this model has {', '.join(names)}"
            )
        binary = _parameters(output, "output").get("binary_data", all_binary)
        chosen[output["name"]] = binary is True
    return chosen


def _output_arrays(answers: list[dict], model) -> dict:
    """Every output tensor of a batch's answers, as ``(datatype, array)``."""
    position = {name: i for i, name in enumerate(model.classes)}
    ranking = np.array([[position[t["class"]] for t in a["top"]] for a in answers], np.int64)
    arrays = {
        "label": ("BYTES", [a["top"][0]["class"] for a in answers]),
        "scores": ("FP64", np.array([a["scores"] for a in answers], dtype=np.float64)),
        "top_classes": ("INT64", ranking.reshape(len(answers), -1)),
    }
    if model.is_knn and "neighbors" in answers[0]:
        arrays["neighbors"] = (
            "INT64", np.array([[n["index"] for n in a["neighbors"]] for a in answers], np.int64)
        )  # fmt: skip
        arrays["distances"] = (
            "FP64", np.array([[n["distance"] for n in a["neighbors"]] for a in answers])
        )  # fmt: skip
    return arrays


def infer_response(request: InferRequest, answers: list[dict], model):
    """``(body, extra headers)`` of the answer: JSON, or JSON + binary tensors."""
    arrays = _output_arrays(answers, model)
    outputs, chunks = [], []
    for name, binary in request.outputs.items():
        datatype, values = arrays[name]
        shape = [len(values)] if datatype == "BYTES" else list(values.shape)
        entry = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            raw = _bytes_tensor(values) if datatype == "BYTES" else values.astype(
                values.dtype.newbyteorder("<"), copy=False
            ).tobytes()  # fmt: skip
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = values if datatype == "BYTES" else values.ravel().tolist()
        outputs.append(entry)
    head = {"model_name": model.name, "model_version": "1", "outputs": outputs}
    if request.request_id is not None:
        head["id"] = request.request_id
    head["parameters"] = {"score": model.score_kind}
    body = json_bytes(head)
    if not chunks:
        return body, []
    return body + b"".join(chunks), [(HEADER_LENGTH, str(len(body)).encode())]


def _bytes_tensor(values: list[str]) -> bytes:
    """BYTES elements as the extension sends them: 4-byte little-endian length, then bytes."""
    out = []
    for value in values:
        raw = value.encode()
        out.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(out)
