"""Open Inference Protocol (KServe v2) REST, spoken by a real client: ``tritonclient[http]``.

Every tensor a model returns is compared with the library's answer for the same
pixels, row by row: JSON and binary tensors, UINT8 and FP32 inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

httpclient = pytest.importorskip(
    "tritonclient.http", reason="needs tritonclient[http] (a dev extra): pip install -e '.[dev]'"
)
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def client(server):
    triton = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=60)
    yield triton
    triton.close()


def _pixels(saved_models, name: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` test images of the model's dataset (uint8 ``(n, H, W, C)``)."""
    from imgclf.datasets import load_digits

    if name.startswith("digits"):
        return load_digits()["test"].images[seed : seed + n]
    rng = np.random.default_rng(seed)  # CIFAR-sized: random pixels are fine for equality
    return rng.integers(0, 256, (n, *saved_models[name].image_shape), dtype=np.uint8)


def _library(saved, images: np.ndarray, top: int) -> dict:
    """What each output must hold, computed one row at a time by the library."""
    from imgclf._validation import final_estimator
    from imgclf.predict import rank_top

    rows = images.reshape(len(images), -1)
    ranks, scores = zip(*(rank_top(saved.model, row[None], top) for row in rows), strict=True)
    clf = final_estimator(saved.model)
    names = saved.class_names
    expected = {
        "label": np.array([names[int(clf.classes_[r[0, 0]])] for r in ranks], dtype=object),
        "scores": np.vstack(scores),
        "top_classes": np.vstack(ranks),
    }
    if hasattr(clf, "kneighbors"):
        dist, index = clf.kneighbors(rows)
        expected |= {"neighbors": index, "distances": dist}
    return expected


def _check(result, expected: dict) -> None:
    for name, want in expected.items():
        got = result.as_numpy(name)
        if name == "label":
            got = np.array([v.decode() if isinstance(v, bytes) else v for v in got], dtype=object)
        assert got.shape == want.shape and np.array_equal(got, want), name


def test_health_and_metadata(client, saved_models):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "imgclf" and "binary_tensor_data" in meta["extensions"]
    for name in saved_models:
        assert client.is_model_ready(name)
        model = client.get_model_metadata(name)
        assert model["inputs"][0]["name"] == "image"
        assert model["inputs"][0]["shape"] == [-1, *saved_models[name].image_shape]
        outputs = {o["name"] for o in model["outputs"]}
        assert {"label", "scores", "top_classes"} <= outputs
        assert ("neighbors" in outputs) == name.endswith("knn")
    with pytest.raises(InferenceServerException, match="no model named"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", ["UINT8", "FP32"])
def test_infer_equals_the_library(client, saved_models, binary, datatype):
    for name, saved in saved_models.items():
        images = _pixels(saved_models, name, 7)
        tensor = httpclient.InferInput("image", list(images.shape), datatype)
        tensor.set_data_from_numpy(
            images if datatype == "UINT8" else images.astype(np.float32), binary_data=binary
        )
        expected = _library(saved, images, top=3)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in expected]
        result = client.infer(name, [tensor], outputs=outputs, parameters={"top": 3})
        _check(result, expected)


def test_infer_without_named_outputs_returns_all_in_binary(client, saved_models):
    images = _pixels(saved_models, "digits-knn", 3, seed=11)
    tensor = httpclient.InferInput("image", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    result = client.infer("digits-knn", [tensor], request_id="r-1")
    _check(result, _library(saved_models["digits-knn"], images, top=5))
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_name"] == "digits-knn"
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])


def test_hand_built_json_request(server, saved_models):
    """Nested JSON data, as a client without the extension would send it."""
    images = _pixels(saved_models, "digits-linear", 2, seed=5)
    body = {
        "inputs": [
            {"name": "image", "datatype": "UINT8", "shape": list(images.shape),
             "data": images.tolist()}
        ],
        "outputs": [{"name": "label"}, {"name": "scores"}],
    }  # fmt: skip
    status, got = server.post(
        "/v2/models/digits-linear/infer", json.dumps(body).encode(), "application/json"
    )
    assert status == 200
    expected = _library(saved_models["digits-linear"], images, top=5)
    outputs = {o["name"]: o for o in got["outputs"]}
    assert outputs["label"]["data"] == list(expected["label"])
    assert outputs["scores"]["data"] == expected["scores"].ravel().tolist()
    assert outputs["scores"]["shape"] == [2, 10] and outputs["scores"]["datatype"] == "FP64"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "pixels"}, "unknown input 'pixels'"),
        ({"datatype": "INT32"}, "datatype 'INT32'"),
        ({"shape": [1, 8, 8, 3]}, "expected [N, 8, 8, 1]"),
        ({"data": [1] * 10}, "10 values; its shape needs 64"),
        ({"data": [300] * 64}, "integers from 0 to 255"),
        ({"data": ["a"] * 64}, "integers from 0 to 255"),
        ({"data": [[0] * 32, [0] * 31]}, "nested arrays of one shape"),
        ({"datatype": "FP32", "data": [-1.0] * 64}, "in [0, 255]"),
    ],
)
def test_infer_errors_name_the_field(server, change, message):
    tensor = {"name": "image", "datatype": "UINT8", "shape": [1, 8, 8, 1], "data": [0] * 64}
    body = json.dumps({"inputs": [tensor | change]}).encode()
    status, got = server.post("/v2/models/digits-net/infer", body, "application/json")
    assert status == 400 and message in got["error"], got


def test_binary_sizes_must_add_up(server):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "UINT8",
                    "shape": [1, 8, 8, 1],
                    "parameters": {"binary_data_size": 64},
                }
            ]
        }  # fmt: skip
    ).encode()
    for extra, length in ((b"\0" * 63, len(header)), (b"\0" * 64, len(header) + 100)):
        status, got = server.post(
            "/v2/models/digits-net/infer",
            header + extra,
            "application/octet-stream",
            {"Inference-Header-Content-Length": str(length)},
        )
        assert status == 400 and ("binary_data_size" in got["error"] or "Length" in got["error"])


def test_client_errors_surface_in_tritonclient(client):
    tensor = httpclient.InferInput("image", [1, 4, 4, 1], "UINT8")
    tensor.set_data_from_numpy(np.zeros((1, 4, 4, 1), np.uint8))
    with pytest.raises(InferenceServerException, match=r"expected \[N, 8, 8, 1\]"):
        client.infer("digits-knn", [tensor])
