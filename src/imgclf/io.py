"""Model files: arrays in an ``.npz`` plus a JSON header; never pickle.

A model file is one zip archive (NumPy's ``.npz``) whose member ``__header__``
holds a JSON header::

    {"format": "imgclf-model", "format_version": 1, "imgclf_version": "...",
     "model_type": "knn" | "linear" | ..., "steps": [{"name", "class", "params",
     "state"}, ...], "pipeline": bool, "class_names": [...], "image_shape": [H, W, C],
     "preprocessing": "...", "dataset": "...", "checksum": "sha256 of the header and
     every array", "signature": "hmac-sha256:..." (only in signed files)}

and whose other members are the fitted arrays, named ``<step>/<attribute>``.

Reading treats the file as hostile. Only regular files are opened (a FIFO
would block forever). Members are read through :mod:`zipfile`, never
inflated beyond their declared size; each ``.npy`` header is parsed here,
object and structured dtypes are refused, and exactly the bytes the header
declares are read. The whole model may hold at most :data:`MAX_MODEL_BYTES`
of array data (``max_bytes=`` or ``$IMGCLF_MAX_MODEL_BYTES`` raise it). The
JSON header is bounded in size (:data:`MAX_HEADER_BYTES`), nesting
(:data:`MAX_HEADER_DEPTH`) and number length, then checked against a strict
schema - field types and ranges, estimator classes from :func:`model_classes`
only, array names, dtypes and shapes consistent with the parameters and with
each other - before any array is read. Every failure is a
:class:`~imgclf.errors.ModelFileError` naming the file and what is wrong.

**The checksum is not a signature.** It detects corruption (a truncated
download, a flipped bit), not tampering: anyone can edit a model file and
recompute it. For authenticity, sign: ``save(..., key=KEY)`` adds an
HMAC-SHA256 over the header and every array, and ``load(path, key=KEY)``
refuses a file that is unsigned or signed with another key. Without a
``key`` argument both use ``$IMGCLF_MODEL_KEY`` when it is set. A key is
written as hexadecimal text, at least 32 digits (16 bytes), in the variable
or in a key file (:func:`read_key_file`); make one with
``python -c "import secrets; print(secrets.token_hex(32))" > model.key``.
Loading never instantiates a class outside :func:`model_classes`, so even an
unsigned model file cannot run code; signing guards the numbers. Writes are
atomic.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import math
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format
from sklearn.pipeline import Pipeline

import imgclf
from imgclf._atomic import atomic_path
from imgclf.errors import FormatError, ModelFileError, SigningKeyError

__all__ = [
    "FORMAT_VERSION",
    "KEY_ENV",
    "MAX_MODEL_BYTES",
    "SavedModel",
    "load",
    "model_classes",
    "read_key_file",
    "save",
]

FORMAT = "imgclf-model"
FORMAT_VERSION = 1
_HEADER = "__header__"

KEY_ENV = "IMGCLF_MODEL_KEY"
MIN_KEY_BYTES = 16
_SIGNATURE_PREFIX = "hmac-sha256:"

# Limits on what a model file may ask of the reader. Array data: CIFAR-10's 50,000
# training images as float32 features are 614 MB, so 2 GiB leaves room.
MAX_MODEL_BYTES = 2 << 30
MAX_MODEL_BYTES_ENV = "IMGCLF_MAX_MODEL_BYTES"
MAX_HEADER_BYTES = 1 << 20  # a header with 50,000 class names is ~1 MB
MAX_HEADER_DEPTH = 8  # the format nests 4 deep: {"steps": [{"params": {"x": [..]}}]}
MAX_NUMBER_DIGITS = 40  # longer numbers hit int()'s digit limit or are forged
MAX_MEMBERS = 256
MAX_STEPS = 16
MAX_STRING = 10_000
MAX_IMAGE_SIDE = 1 << 16
MAX_FEATURES = 1 << 26  # values per input row (a 4096x4096x3 image is 50 M)
SMOKE_TEST_VALUES = 1 << 20  # larger inputs skip the one-image prediction at load
_NPY_HEADER_BYTES = 10_000  # numpy's own cap for .npy headers it parses


def model_classes() -> dict[str, type]:
    """Estimator classes a model file may name (and nothing else)."""
    from imgclf import features
    from imgclf.linear import LinearClassifier, MeanImage
    from imgclf.neighbors import KNNClassifier
    from imgclf.nn import TwoLayerNet

    extractors = [
        features.FeatureSet,
        features.HOG,
        features.KMeansFeatures,
        features.ColorHistogram,
        features.Pixels,
        features.Standardize,
    ]
    classes = [KNNClassifier, LinearClassifier, MeanImage, TwoLayerNet, *extractors]
    return {cls.__name__: cls for cls in classes}


class SavedModel:
    """A loaded model with what the file says about it.

    Attributes
    ----------
    model : estimator
        Ready to ``predict``.
    model_type : str
    class_names : list of str
        Names of ``model.classes_`` (label indices) for printing.
    image_shape : tuple of int or None
        ``(H, W, C)`` the model expects, for resizing new images.
    header : dict
    signed : bool
        Whether the file carries a signature.
    verified : bool
        Whether that signature was checked against a key (and matched).
    """

    def __init__(self, model, header: dict, *, verified: bool = False):
        self.model = model
        self.header = header
        self.model_type = header["model_type"]
        self.class_names = header.get("class_names")
        shape = header.get("image_shape")
        self.image_shape = tuple(shape) if shape else None
        self.signed = "signature" in header
        self.verified = verified


# --- keys --------------------------------------------------------------------------------


def _parse_key(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SigningKeyError(
            f"{source}: a signing key must be hexadecimal text "
            f"(e.g. from `openssl rand -hex 32`); got {len(text)} characters that are not"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"{source}: a signing key must be at least {MIN_KEY_BYTES} bytes "
            f"({2 * MIN_KEY_BYTES} hex digits); got {len(key)} bytes"
        )
    return key


def read_key_file(path: str | os.PathLike) -> bytes:
    """The signing key in the file at ``path`` (hexadecimal text, >= 32 digits).

    For the command line's ``--sign-key-file``. Raises
    :class:`~imgclf.errors.SigningKeyError` naming the file when it is missing,
    not a regular file, too large, or not a key.
    """
    path = Path(path)
    try:
        with _open_regular(path, "key file", SigningKeyError) as f:
            text = f.read(4097)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the key file ({exc.strerror})") from None
    if len(text) > 4096:
        raise SigningKeyError(f"{path}: a key file holds a short hex key; this is over 4 KiB")
    try:
        return _parse_key(text.decode("ascii"), str(path))
    except UnicodeDecodeError:
        raise SigningKeyError(f"{path}: a key file must hold hexadecimal text") from None


def key_from_env() -> bytes | None:
    """The key in ``$IMGCLF_MODEL_KEY`` (hexadecimal), or None when it is unset or empty."""
    text = os.environ.get(KEY_ENV, "")
    return _parse_key(text, f"${KEY_ENV}") if text.strip() else None


def _resolve_key(key) -> bytes | None:
    if key is None:
        return key_from_env()
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(f"key must be at least {MIN_KEY_BYTES} bytes; got {key!r:.40}")
    return bytes(key)


# --- digests -----------------------------------------------------------------------------


def _update(digest, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Feed the header (without checksum and signature) and every array to ``digest``."""
    body = {k: v for k, v in header.items() if k not in ("checksum", "signature")}
    digest.update(json.dumps(body, sort_keys=True).encode())
    for key in sorted(arrays):
        for data in _array_bytes(key, arrays[key]):
            digest.update(data)


def _array_bytes(key: str, array):
    """What the digest reads of one array: its name, dtype and shape, then its bytes.

    A lazy array (the training rows of a k-NN model fitted out of core) is read a
    chunk at a time, so hashing, writing and verifying it never hold it whole; its
    bytes are the same as an in-memory copy's, and so is the digest.
    """
    if getattr(array, "lazy", False):
        yield f"{key}\0{array.dtype.str}\0{tuple(array.shape)}\0".encode()
        for _, block in array.chunks():
            yield np.ascontiguousarray(block).reshape(-1).view(np.uint8)
        return
    array = np.ascontiguousarray(array)
    yield f"{key}\0{array.dtype.str}\0{array.shape}\0".encode()
    yield array.reshape(-1).view(np.uint8)  # the array's own bytes: no copy


def _checksum(header: dict, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    _update(digest, header, arrays)
    return digest.hexdigest()


def _signature(key: bytes, header: dict, arrays: dict[str, np.ndarray]) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    _update(mac, header, arrays)
    return _SIGNATURE_PREFIX + mac.hexdigest()


# --- saving ------------------------------------------------------------------------------


def _steps_of(model) -> list[tuple[str, object]]:
    return list(model.steps) if isinstance(model, Pipeline) else [("model", model)]


def _split_state(name: str, estimator) -> tuple[dict, dict[str, np.ndarray]]:
    """Fitted attributes: arrays go to the archive, JSON-able values to the header.

    Anything else (a search index, a compiled kernel) is derived state that the
    estimator's ``_rebuild`` recomputes after loading.
    """
    params = estimator.get_params(deep=False)
    state, arrays = {}, {}
    for attr, value in vars(estimator).items():
        if attr in params:
            continue
        if getattr(value, "lazy", False):  # rows on disk: written to the file chunk by chunk
            arrays[f"{name}/{attr}"] = value
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                value = value.astype(str)
            arrays[f"{name}/{attr}"] = value
        elif isinstance(value, np.generic):
            state[attr] = value.item()
        elif _json_able(value):
            state[attr] = value
    if hasattr(estimator, "_saved_arrays"):  # e.g. a k-NN model's built search index
        arrays |= {f"{name}/{attr}": a for attr, a in estimator._saved_arrays().items()}
    return state, arrays


def _json_able(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def save(
    model,
    path: str | os.PathLike,
    *,
    model_type: str,
    class_names=None,
    image_shape=None,
    preprocessing: str | None = None,
    dataset: str | None = None,
    key: bytes | None = None,
) -> Path:
    """Write a fitted ``model`` (an estimator or a Pipeline of them) to ``path``, atomically.

    Parameters
    ----------
    model : fitted estimator or Pipeline
    path : path
    model_type : str
        ``"knn"``, ``"linear"``, ``"net"``: what the model is, for people and tools.
    class_names : sequence of str, optional
        Names of the label indices in ``model.classes_``.
    image_shape : (H, W, C), optional
        The input image shape, so new images can be resized to it.
    preprocessing : str, optional
        A human-readable note (e.g. the feature pipeline).
    dataset : str, optional
        What the model was trained on (a dataset spec), for messages.
    key : bytes, optional
        Sign the file with HMAC-SHA256 under this key (at least 16 bytes);
        default: the key in ``$IMGCLF_MODEL_KEY``, else the file is unsigned.
    """
    key = _resolve_key(key)
    steps, arrays = [], {}
    for name, estimator in _steps_of(model):
        state, step_arrays = _split_state(name, estimator)
        steps.append(
            {
                "name": name,
                "class": type(estimator).__name__,
                "params": estimator.get_params(deep=False),
                "state": state,
            }
        )
        arrays.update(step_arrays)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "imgclf_version": imgclf.__version__,
        "model_type": model_type,
        "steps": steps,
        "pipeline": isinstance(model, Pipeline),
        "class_names": None if class_names is None else [str(c) for c in class_names],
        "image_shape": None if image_shape is None else [int(s) for s in image_shape],
        "preprocessing": preprocessing,
        "dataset": dataset,
    }
    header["checksum"] = _checksum(header, arrays)
    if key is not None:
        header["signature"] = _signature(key, header, arrays)
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as out:
        if any(getattr(a, "lazy", False) for a in arrays.values()):
            _write_streamed(out, {_HEADER: blob, **arrays})
        else:
            np.savez(out, **{_HEADER: blob}, **arrays)
    return Path(path)


def _write_streamed(out, arrays: dict) -> None:
    """The ``.npz`` ``np.savez`` writes (stored members, ZIP64), lazy arrays chunk by chunk.

    A lazy array is never read whole: its ``.npy`` header is written from its dtype
    and shape, then its rows a chunk at a time, so the memory this takes is one chunk
    however large the training set.
    """
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                if not getattr(array, "lazy", False):
                    npy_format.write_array(member, np.asanyarray(array), allow_pickle=False)
                    continue
                header = {"descr": npy_format.dtype_to_descr(array.dtype),
                          "fortran_order": False, "shape": tuple(array.shape)}  # fmt: skip
                npy_format.write_array_header_2_0(member, header)
                for _, block in array.chunks():
                    member.write(np.ascontiguousarray(block).tobytes())


# --- loading: the archive ----------------------------------------------------------------


def _open_regular(path: Path, what: str, error: type = ModelFileError):
    """Open ``path`` for reading if it is a regular file, without blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{path}: is a directory, not a {what}")
        if not stat.S_ISREG(mode):
            raise error(f"{path}: not a regular file (a FIFO, device or socket); need a {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@dataclass
class _Member:
    """One ``.npy`` member: where it is and what its own header declares."""

    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple
    fortran: bool
    offset: int  # bytes of .npy header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    text = os.environ.get(MAX_MODEL_BYTES_ENV)
    if text:
        try:
            return int(text)
        except ValueError:
            raise ModelFileError(
                f"${MAX_MODEL_BYTES_ENV} must be a number of bytes; got {text!r:.40}"
            ) from None
    return MAX_MODEL_BYTES


def _directory(path: Path, archive: zipfile.ZipFile, max_bytes: int) -> dict[str, _Member]:
    """Every member's name and declared array, checked; no array data is read."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(
            f"{path}: {len(infos)} archive members; a model has at most {MAX_MEMBERS}"
        )
    members, total = {}, 0
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            raise ModelFileError(f"{path}: archive member {name!r:.80} is not an .npy array")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(
                f"{path}: archive member {name!r:.80} uses compression method "
                f"{info.compress_type}; only stored or deflated members are read"
            )
        total += info.file_size
        if total > max_bytes:
            raise ModelFileError(
                f"{path}: the arrays declare over {max_bytes:,} bytes, the maximum model size "
                f"(raise it with max_bytes= or ${MAX_MODEL_BYTES_ENV})"
            )
        key = name[: -len(".npy")]
        if key in members:
            raise ModelFileError(f"{path}: archive member {name!r:.80} appears twice")
        members[key] = _npy_member(path, archive, info)
    return members


def _npy_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """Parse one member's ``.npy`` header ourselves: dtype, shape, and its size agrees."""
    where = f"{path}: array {info.filename!r:.80}"
    with archive.open(info) as f:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(f, _NPY_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(f, _NPY_HEADER_BYTES)
        else:
            raise ModelFileError(f"{where}: .npy format version {version}; expected 1.0 or 2.0")
        offset = f.tell()
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{where}: dtype {dtype} is refused (objects need pickle)")
    if dtype.kind not in "biufU" or dtype.itemsize == 0:
        raise ModelFileError(f"{where}: dtype {dtype}; expected numbers or text")
    if any(not isinstance(n, int) or n < 0 for n in shape) or len(shape) > 4:
        raise ModelFileError(f"{where}: shape {shape!r:.80} is not an array shape")
    member = _Member(info, dtype, tuple(shape), bool(fortran), offset)
    if member.nbytes != info.file_size - offset:
        raise ModelFileError(
            f"{where}: declares {member.nbytes:,} bytes of {dtype} {tuple(shape)} "
            f"but holds {info.file_size - offset:,}"
        )
    return member


def _read_array(path: Path, archive: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """Exactly the bytes the member declares, into one buffer; the CRC is checked."""
    data = np.empty(member.nbytes, np.uint8)
    with archive.open(member.info) as f:
        f.read(member.offset)
        view, done = memoryview(data), 0
        while done < member.nbytes:
            got = f.readinto(view[done:])
            if not got:
                raise ModelFileError(f"{path}: array {member.info.filename!r} is truncated")
            done += got
        f.read(1)  # reaching the end makes zipfile check the CRC
    order = "F" if member.fortran else "C"
    return data.view(member.dtype).reshape(member.shape, order=order)


# --- loading: the header -----------------------------------------------------------------


_JSON_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def _nesting_depth(text: str) -> int:
    """How deep brackets nest in JSON ``text``, strings skipped: no recursion."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ValueError(f"a number of {len(text):,} digits (at most {MAX_NUMBER_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 4 * MAX_NUMBER_DIGITS:
        raise ValueError(f"a number of {len(text):,} characters")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _parse_constant(text: str):
    raise ValueError(f"{text} is not a number the format allows")


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ValueError(f"a key appears twice in one object ({sorted(keys)!r:.80})")
    return dict(pairs)


def _parse_header(path: Path, archive: zipfile.ZipFile, members: dict) -> dict:
    member = members.pop(_HEADER, None)
    if member is None:
        raise ModelFileError(f"{path}: no imgclf header; not an imgclf model file")
    if member.dtype != np.uint8 or len(member.shape) != 1:
        raise ModelFileError(
            f"{path}: the header is {member.dtype} {member.shape}; expected uint8 bytes"
        )
    if member.nbytes > MAX_HEADER_BYTES:
        raise ModelFileError(
            f"{path}: header of {member.nbytes:,} bytes; at most {MAX_HEADER_BYTES:,}"
        )
    raw = _read_array(path, archive, member).tobytes()
    try:
        text = raw.decode("utf-8")
        depth = _nesting_depth(text)
        if depth > MAX_HEADER_DEPTH:
            raise ValueError(f"brackets nest {depth} deep; the format needs {MAX_HEADER_DEPTH}")
        header = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: corrupt header ({str(exc)[:200]})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an imgclf model file (no imgclf-model header)")
    return header


# --- loading: the schema -----------------------------------------------------------------

_TOP_FIELDS = {
    "format",
    "format_version",
    "imgclf_version",
    "model_type",
    "steps",
    "pipeline",
    "class_names",
    "image_shape",
    "preprocessing",
    "dataset",
    "checksum",
}
_STEP_FIELDS = {"name", "class", "params", "state"}
_STEP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_STATE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}_")
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Arrays each class may have: name -> (dtype kinds, ndim); required, then optional.
_LABELS = ("biufU", 1)
_VECTOR = ("f", 1)
_MATRIX = ("f", 2)
_SCALING = {"mean_": _VECTOR, "scale_": _VECTOR}
_OPTIONAL = {"feature_names_in_": ("U", 1)}
# k-means patch features: whitening (mean, ZCA matrix) and centroids in the whitened space
_PATCH_DICTIONARY = {"patch_mean_": _VECTOR, "whitening_": _MATRIX, "centroids_": _MATRIX}
_ARRAYS = {
    "KNNClassifier": (
        {"classes_": _LABELS, "_y": ("iu", 1), "_fit_X": ("uf", 2)},
        {  # an approximate index (neighbors.algorithms), checked by its from_arrays
            "_index_mean": _VECTOR,
            "_index_components": _MATRIX,
            "_index_centroids": _MATRIX,
            "_index_medians": ("uf", 2),  # L1 over features of modest width (neighbors.coarse)
            "_index_ids": ("iu", 1),
            "_index_offsets": ("iu", 1),
            "_index_faiss_index": ("u", 1),
            "_index_hnsw_index": ("u", 1),
            "_index_ef_search": ("iu", 1),
            "_index_code_low": _VECTOR,  # float features scanned as uint8 codes
            "_index_code_step": ("f", 0),
            "_index_code_mean": _VECTOR,  # ... of their principal components (L2)
            "_index_code_components": _MATRIX,
        },
    ),
    "LinearClassifier": (
        {"classes_": _LABELS, "coef_": _MATRIX, "intercept_": _VECTOR, **_SCALING},
        {"loss_history_": _VECTOR, "val_score_history_": _VECTOR},
    ),
    "TwoLayerNet": (
        {"classes_": _LABELS, "W1_": _MATRIX, "b1_": _VECTOR, "W2_": _MATRIX, "b2_": _VECTOR}
        | _SCALING,
        {"loss_history_": _VECTOR, "train_acc_history_": _VECTOR, "val_acc_history_": _VECTOR},
    ),
    "MeanImage": (_SCALING, {}),
    "Standardize": (_SCALING, {}),
    "KMeansFeatures": (_PATCH_DICTIONARY, {}),
    "FeatureSet": ({}, _PATCH_DICTIONARY),  # with a "kmeans" part only
}
# Integer parameters that size work at prediction time: (low, high).
# Parameters added after files were first written: older files lack them and get these.
_ADDED_PARAMS = {
    "KNNClassifier": {
        "algorithm": "exact",
        "n_lists": None,
        "n_probe": None,
        "ef_search": None,
        "seed": 0,
    },
    "LinearClassifier": {"solver": "sgd", "max_iter": 1000},  # files before the L-BFGS solver
    # files before the soft encoder (alpha), and before power, mirror and whiten_eps
    "KMeansFeatures": {"alpha": 0.25, "power": 1.0, "mirror": False, "whiten_eps": 0.1},
}
_INT_PARAMS = {
    "n_jobs": (1, 4096),
    "working_memory": (1 << 10, 1 << 40),
    "n_lists": (1, 1 << 24),
    "n_probe": (1, 1 << 24),
    "ef_search": (1, 1 << 20),
    "n_centroids": (1, 1 << 16),
    "patch_size": (1, MAX_IMAGE_SIDE),
    "stride": (1, MAX_IMAGE_SIDE),
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short_str(value, limit: int = MAX_STRING) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _wrong(path: Path, field: str, value, expected: str) -> ModelFileError:
    return ModelFileError(f"{path}: header field {field} is {value!r:.80}; expected {expected}")


def _check_top(path: Path, header: dict) -> None:
    version = header.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {version!r:.40}; this imgclf "
            f"({imgclf.__version__}) reads version {FORMAT_VERSION}"
        )
    missing = sorted(_TOP_FIELDS - header.keys())
    extra = sorted(header.keys() - _TOP_FIELDS - {"signature"})
    if missing or extra:
        raise ModelFileError(
            f"{path}: header fields missing {missing}, unknown {extra!r:.200}; not a model "
            f"this imgclf wrote"
        )
    for field in ("imgclf_version", "model_type"):
        if not _short_str(header[field], 100) or not header[field]:
            raise _wrong(path, field, header[field], "a short string")
    for field in ("preprocessing", "dataset"):
        if header[field] is not None and not _short_str(header[field]):
            raise _wrong(path, field, header[field], f"null or a string of <= {MAX_STRING:,}")
    if not isinstance(header["pipeline"], bool):
        raise _wrong(path, "pipeline", header["pipeline"], "true or false")
    steps = header["steps"]
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise _wrong(path, "steps", steps, f"a list of 1 to {MAX_STEPS} steps")
    if not header["pipeline"] and len(steps) != 1:
        raise _wrong(path, "steps", f"{len(steps)} steps", "one step (pipeline is false)")
    _check_names_and_shape(path, header)
    if not isinstance(header["checksum"], str) or not _HEX64.fullmatch(header["checksum"]):
        raise _wrong(path, "checksum", header["checksum"], "64 hexadecimal digits")
    signature = header.get("signature", _SIGNATURE_PREFIX + "0" * 64)
    if not _short_str(signature, 100) or not _HEX64.fullmatch(
        signature.removeprefix(_SIGNATURE_PREFIX)
    ):
        raise _wrong(path, "signature", signature, f"{_SIGNATURE_PREFIX}<64 hex digits>")


def _check_names_and_shape(path: Path, header: dict) -> None:
    names = header["class_names"]
    if names is not None and (
        not isinstance(names, list) or not all(_short_str(n, 1000) for n in names)
    ):
        raise _wrong(path, "class_names", names, "null or a list of strings")
    shape = header["image_shape"]
    if shape is None:
        return
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(_is_int(n) and 1 <= n <= MAX_IMAGE_SIDE for n in shape)
        or math.prod(shape) > MAX_FEATURES
    ):
        raise _wrong(
            path,
            "image_shape",
            shape,
            f"null or [H, W, C], each 1 to {MAX_IMAGE_SIDE}, at most {MAX_FEATURES:,} values",
        )


def _param_ok(value) -> bool:
    if value is None or isinstance(value, bool) or _short_str(value, 256):
        return True
    if _is_int(value):
        return abs(value) < 1 << 63
    if isinstance(value, float):
        return True  # finite: the JSON parser refused the rest
    if isinstance(value, list):
        return len(value) <= 16 and all(_short_str(v, 256) or _is_int(v) for v in value)
    return False


def _check_step(path: Path, index: int, step, seen: set) -> type:
    """One step's fields: name, class from the allow-list, params and state by type."""
    where = f"steps[{index}]"
    if not isinstance(step, dict) or step.keys() != _STEP_FIELDS:
        raise _wrong(path, where, step, f"an object with fields {sorted(_STEP_FIELDS)}")
    name, cls_name = step["name"], step["class"]
    if not isinstance(name, str) or not _STEP_NAME.fullmatch(name) or "__" in name:
        raise _wrong(path, f"{where}.name", name, "an identifier (letters, digits, one _)")
    if name in seen:
        raise _wrong(path, f"{where}.name", name, "a name no other step has")
    seen.add(name)
    known = model_classes()
    cls = known.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None:
        raise ModelFileError(
            f"{path}: unknown estimator class {cls_name!r:.80}; known: {sorted(known)}"
        )
    params, state = step["params"], step["state"]
    expected = set(inspect.signature(cls.__init__).parameters) - {"self"}
    if not isinstance(params, dict):
        raise _wrong(path, f"{where}.params", params, f"an object of {cls_name}'s parameters")
    params = _with_added_params(cls_name, params)
    if params.keys() != expected:
        unknown = sorted(params.keys() - expected)
        raise ModelFileError(
            f"{path}: header field {where}.params of {cls_name} lacks "
            f"{sorted(expected - params.keys())} and has unknown {unknown!r:.100}"
        )
    for key, value in params.items():
        if not _param_ok(value):
            raise _wrong(path, f"{where}.params.{key}", value, "a number, string or short list")
        low, high = _INT_PARAMS.get(key, (None, None))
        if low is not None and value is not None and not (_is_int(value) and low <= value <= high):
            raise _wrong(path, f"{where}.params.{key}", value, f"null or an integer {low}..{high}")
    _check_state(path, where, cls, state)
    return cls


def _check_state(path: Path, where: str, cls: type, state) -> None:
    if not isinstance(state, dict) or len(state) > 16:
        raise _wrong(path, f"{where}.state", state, "an object of fitted attributes")
    for key, value in state.items():
        # fitted attributes end in "_"; never a method or other class attribute
        if not _STATE_NAME.fullmatch(key) or hasattr(cls, key):
            raise _wrong(path, f"{where}.state", key, "fitted attribute names such as n_iter_")
        if not _param_ok(value):
            raise _wrong(path, f"{where}.state.{key}", value, "a number, string or short list")
    n = state.get("n_features_in_")
    if not _is_int(n) or not 1 <= n <= MAX_FEATURES:
        raise _wrong(path, f"{where}.state.n_features_in_", n, f"an integer 1..{MAX_FEATURES:,}")
    if "n_iter_" in state and not (_is_int(state["n_iter_"]) and state["n_iter_"] >= 0):
        raise _wrong(path, f"{where}.state.n_iter_", state["n_iter_"], "an integer >= 0")


def _step_arrays(path: Path, step: dict, cls: type, members: dict) -> dict[str, _Member]:
    """The step's members, by attribute: exactly the names and kinds its class has."""
    required, optional = _ARRAYS.get(cls.__name__, ({}, {}))
    allowed = {**required, **optional, **_OPTIONAL}
    prefix = f"{step['name']}/"
    found = {k[len(prefix) :]: m for k, m in members.items() if k.startswith(prefix)}
    missing = sorted(required.keys() - found.keys())
    unknown = sorted(found.keys() - allowed.keys())
    if missing or unknown:
        raise ModelFileError(
            f"{path}: step {step['name']!r} ({cls.__name__}) has arrays missing {missing}, "
            f"unknown {unknown!r:.200}: arrays of another estimator?"
        )
    for attr, member in found.items():
        kinds, ndim = allowed[attr]
        if member.dtype.kind not in kinds or len(member.shape) != ndim:
            raise ModelFileError(
                f"{path}: array {step['name']}/{attr} is {member.dtype} {member.shape}; "
                f"expected {ndim}-D of kind {kinds!r}"
            )
    return found


def _expect(path: Path, step: str, arrays: dict, attr: str, shape: tuple) -> None:
    if attr in arrays and arrays[attr].shape != shape:
        raise ModelFileError(
            f"{path}: array {step}/{attr} has shape {arrays[attr].shape}; expected {shape} "
            f"to match the step's other arrays and parameters"
        )


def _check_shapes(path: Path, step: dict, cls: type, arrays: dict) -> tuple[int | None, int]:
    """Check a step's arrays against each other; (output width or None, n_classes or 0)."""
    name, d = step["name"], step["state"]["n_features_in_"]
    classes = arrays["classes_"].shape[0] if "classes_" in arrays else 0
    for attr in ("mean_", "scale_"):
        _expect(path, name, arrays, attr, (d,))
    if cls.__name__ == "KNNClassifier":
        n = arrays["_fit_X"].shape[0]
        _expect(path, name, arrays, "_fit_X", (n, d))
        _expect(path, name, arrays, "_y", (n,))
        k = step["params"]["k"]
        if n < 1 or classes < 1 or (_is_int(k) and k > n):
            raise ModelFileError(
                f"{path}: k-NN step {name!r} holds {n} training rows, {classes} classes and "
                f"k={k!r:.20}; expected at least one of each and k <= rows"
            )
    elif cls.__name__ == "LinearClassifier":
        _expect(path, name, arrays, "coef_", (classes, d))
        _expect(path, name, arrays, "intercept_", (classes,))
    elif cls.__name__ == "TwoLayerNet":
        hidden = step["params"]["hidden"]
        _expect(path, name, arrays, "W1_", (d, hidden))
        _expect(path, name, arrays, "b1_", (hidden,))
        _expect(path, name, arrays, "W2_", (hidden, classes))
        _expect(path, name, arrays, "b2_", (classes,))
    if cls.__name__ in ("KMeansFeatures", "FeatureSet"):
        _check_patch_dictionary(path, step, arrays)
    if "classes_" in _ARRAYS.get(cls.__name__, ({}, {}))[0] and classes < 1:
        raise ModelFileError(f"{path}: step {name!r} has no classes")
    shape = step["params"].get("image_shape")
    if isinstance(shape, list) and (len(shape) != 3 or math.prod(shape) != d):
        raise _wrong(path, f"{name}.params.image_shape", shape, f"[H, W, C] of {d} values")
    width = None if _is_feature_extractor(cls) and cls.__name__ != "Pixels" else d
    return width, classes


def _check_patch_dictionary(path: Path, step: dict, arrays: dict) -> None:
    """Whitening and centroids agree with each other and with the number of centroids."""
    name, params = step["name"], step["params"]
    expected = _n_centroids(path, step)
    if expected is None:
        if arrays:
            raise ModelFileError(f"{path}: step {name!r} has k-means arrays but no kmeans feature")
        return
    if "centroids_" not in arrays:
        raise ModelFileError(f"{path}: step {name!r} has k-means features but no centroids")
    k, d = arrays["centroids_"].shape
    if k != expected or d < 1:
        raise _wrong(path, f"{name}.centroids_", arrays["centroids_"].shape, f"({expected}, d)")
    _expect(path, name, arrays, "whitening_", (d, d))
    _expect(path, name, arrays, "patch_mean_", (d,))
    size = params.get("patch_size", 6)
    if _is_int(size) and d % (size * size):
        raise _wrong(path, f"{name}.params.patch_size", size, f"a patch of {d} values")


def _n_centroids(path: Path, step: dict) -> int | None:
    """Centroids the step's parameters ask for (None: no k-means part)."""
    params = step["params"]
    if step["class"] == "KMeansFeatures":
        return params["n_centroids"]
    names = params.get("names")
    names = names.split(",") if isinstance(names, str) else names
    if not isinstance(names, list):
        return None  # FeatureSet's own check refuses it when the step is built
    kmeans = [n for n in names if isinstance(n, str) and n.partition(":")[0] == "kmeans"]
    if not kmeans:
        return None
    text = kmeans[0].partition(":")[2] or "1600"
    if not text.isdigit() or len(text) > 6:
        raise _wrong(path, f"{step['name']}.params.names", names, "kmeans or kmeans:N")
    return int(text)


def _is_feature_extractor(cls: type) -> bool:
    # the features package's modules (imgclf.features.hog, ...); Standardize is not one
    return cls.__module__.startswith("imgclf.features") and cls.__name__ != "Standardize"


def _check_header(path: Path, header: dict, members: dict) -> list[tuple[dict, type, dict]]:
    """The whole schema, before any array is read; each step with its class and members."""
    _check_top(path, header)
    seen, plan, width, classes = set(), [], None, 0
    names = {m.split("/", 1)[0] for m in members}
    for index, step in enumerate(header["steps"]):
        cls = _check_step(path, index, step, seen)
        last = index == len(header["steps"]) - 1
        if ("classes_" in _ARRAYS.get(cls.__name__, ({}, {}))[0]) != last:
            raise ModelFileError(
                f"{path}: step {step['name']!r} ({cls.__name__}) "
                + ("must be a classifier" if last else "is a classifier but not the last step")
            )
        arrays = _step_arrays(path, step, cls, members)
        d = step["state"]["n_features_in_"]
        if width is not None and d != width:
            raise ModelFileError(
                f"{path}: step {step['name']!r} takes {d} values per row but the step "
                f"before it gives {width}"
            )
        width, classes = _check_shapes(path, step, cls, arrays)
        plan.append((step, cls, arrays))
    stray = sorted(names - seen)
    if stray:
        raise ModelFileError(f"{path}: arrays of no step: {stray!r:.200}")
    first = header["steps"][0]["state"]["n_features_in_"]
    shape = header["image_shape"]
    if shape is not None and math.prod(shape) != first:
        raise _wrong(path, "image_shape", shape, f"H*W*C = {first}, what the model takes")
    if header["class_names"] is not None and len(header["class_names"]) != classes:
        raise _wrong(
            path, "class_names", f"{len(header['class_names'])} names", f"{classes}, one a class"
        )
    return plan


# --- loading: arrays, checks, estimators -------------------------------------------------


def _lazy_members(header: dict, members: dict) -> set[str]:
    """The members left on disk: an exact or IVF k-NN step's training rows, stored uncompressed,
    larger than the in-memory limit (:func:`~imgclf.datasets.store.in_memory_bytes`).

    The search streams them from the file (:class:`~imgclf.datasets.file_rows.FileRows`),
    as it streams a store; everything else is read into memory, within ``max_bytes``.
    """
    from imgclf.datasets.store import in_memory_bytes

    limit, lazy = in_memory_bytes(), set()
    for step in header["steps"]:
        member = members.get(f"{step['name']}/_fit_X")
        if (
            step["class"] == "KNNClassifier"
            and step["params"].get("algorithm", "exact") in ("exact", "ivf")
            and member is not None
            and member.nbytes > limit
            and member.info.compress_type == zipfile.ZIP_STORED
            and not member.info.flag_bits & 1  # not encrypted: the bytes are the rows
            and not member.fortran
        ):
            lazy.add(f"{step['name']}/_fit_X")
    return lazy


# a zip member's local header (PKWARE APPNOTE 4.3.7): 30 bytes ending with the lengths of
# the name and of the extra field that come before the member's data
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def _lazy_rows(path: Path, f, member: _Member):
    """A member's array as :class:`~imgclf.datasets.file_rows.FileRows`: rows read when
    searched. Its place in the archive: the local file header's own lengths, then the
    ``.npy`` header."""
    from imgclf.datasets.file_rows import FileRows

    f.seek(member.info.header_offset)
    local = f.read(_LOCAL_HEADER.size)
    if len(local) != _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
        raise ModelFileError(f"{path}: array {member.info.filename!r:.80} has no local header")
    name_length, extra_length = _LOCAL_HEADER.unpack(local)[-2:]
    start = member.info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    try:
        return FileRows(path, start + member.offset, member.shape, member.dtype)
    except FormatError as exc:
        raise ModelFileError(str(exc)) from None


def _verify(path: Path, header: dict, arrays: dict, key: bytes | None) -> bool:
    """Checksum always; the signature when a key is given. True if a signature matched."""
    if header["checksum"] != _checksum(header, arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the file was modified or damaged")
    if key is None:
        return False
    if "signature" not in header:
        raise ModelFileError(
            f"{path}: the model file is not signed, and a signing key was given "
            f"(--sign-key-file or ${KEY_ENV}): only models signed with it load"
        )
    if not hmac.compare_digest(header["signature"], _signature(key, header, arrays)):
        raise ModelFileError(
            f"{path}: the signature does not match the signing key: the file was signed "
            f"with another key, or changed after signing"
        )
    return True


def _check_values(path: Path, step: dict, arrays: dict) -> None:
    """What shapes cannot say: labels within the classes, classes distinct."""
    name = step["name"]
    classes = arrays.get("classes_")
    if classes is not None and len(np.unique(classes)) != len(classes):
        raise ModelFileError(f"{path}: array {name}/classes_ repeats a class")
    labels = arrays.get("_y")
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ModelFileError(
            f"{path}: array {name}/_y holds label indices {labels.min()}..{labels.max()}; "
            f"expected 0..{len(classes) - 1} (one per class)"
        )


def _check_scale(value) -> None:
    """MeanImage checks ``scale`` only in ``fit``; a loaded one must be checked here."""
    if value is None or value == "std":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"scale must be None, 'std' or a positive number; got {value!r}")


def _with_added_params(cls_name: str, params: dict) -> dict:
    """``params`` with the defaults of parameters newer than the file (the header stays as
    read: its checksum covers it)."""
    return {**_ADDED_PARAMS.get(cls_name, {}), **params}


def _build_step(step: dict, cls: type, arrays: dict, trusted: bool):
    estimator = cls(**_with_added_params(cls.__name__, step["params"]))
    if hasattr(estimator, "_check_params"):
        estimator._check_params()
    if "scale" in step["params"]:
        _check_scale(step["params"]["scale"])
    for attr, value in step["state"].items():
        setattr(estimator, attr, value)
    for attr, array in arrays.items():
        setattr(estimator, attr, array)
    if hasattr(estimator, "_rebuild"):
        # derived state (a search index) is recomputed, or restored from its saved arrays
        estimator._rebuild(trusted=trusted)
    return estimator


def _smoke_test(model, header: dict) -> None:
    """Predict one blank image, so a model that cannot predict fails here, named."""
    first = header["steps"][0]
    shape = header["image_shape"]
    if shape is None and _is_feature_extractor(model_classes()[first["class"]]):
        return  # the extractor's input shape is unknown without image_shape
    shape = shape or [first["state"]["n_features_in_"]]
    if math.prod(shape) <= SMOKE_TEST_VALUES:
        model.predict(np.zeros((1, *shape), np.uint8))


def _load(path: Path, key, max_bytes: int | None) -> SavedModel:
    key, max_bytes = _resolve_key(key), _max_bytes(max_bytes)
    with _open_regular(path, "model file") as f:
        if f.read(4) != b"PK\x03\x04":
            # checked first: np.load would take any other file for a pickle or an .npy
            raise ModelFileError(f"{path}: not an imgclf model file (not an .npz archive)")
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            members = _directory(path, archive, max_bytes)
            header = _parse_header(path, archive, members)
            plan = _check_header(path, header, members)
            lazy = _lazy_members(header, members)
            read = {
                n: _lazy_rows(path, f, m) if n in lazy else _read_array(path, archive, m)
                for n, m in members.items()
            }
    verified = _verify(path, header, read, key)
    steps = []
    for step, cls, arrays in plan:
        arrays = {attr: read[f"{step['name']}/{attr}"] for attr in arrays}
        _check_values(path, step, arrays)
        try:
            steps.append((step["name"], _build_step(step, cls, arrays, verified)))
        except Exception as exc:  # noqa: BLE001 - any failure of a forged step is the file's
            raise ModelFileError(
                f"{path}: step {step['name']!r} ({cls.__name__}) cannot be rebuilt: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from None
    model = Pipeline(steps) if header["pipeline"] else steps[0][1]
    try:
        _smoke_test(model, header)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(
            f"{path}: the model cannot predict: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return SavedModel(model, header, verified=verified)


def load(
    path: str | os.PathLike, *, key: bytes | None = None, max_bytes: int | None = None
) -> SavedModel:
    """Read a model written by :func:`save`; raise ModelFileError on anything wrong.

    Parameters
    ----------
    path : path
        A regular file (a FIFO or device is refused, not waited on).
    key : bytes, optional
        Accept only files signed with this key (see :func:`read_key_file`);
        default: the key in ``$IMGCLF_MODEL_KEY``, else signatures are not checked.
    max_bytes : int, optional
        The most array data to read (default :data:`MAX_MODEL_BYTES`, 2 GiB, or
        ``$IMGCLF_MAX_MODEL_BYTES``).

    Raises
    ------
    ModelFileError
        Naming the file and what is wrong with it: missing, not a model,
        truncated, damaged, forged, unsigned or signed with another key.
    """
    path = Path(path)
    try:
        return _load(path, key, max_bytes)
    except (ModelFileError, SigningKeyError):
        raise
    except OSError as exc:
        raise ModelFileError(
            f"{path}: cannot read the model file ({exc.strerror or exc})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - zipfile, numpy's npy parser, a forged field...
        raise ModelFileError(
            f"{path}: not a readable imgclf model file ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
