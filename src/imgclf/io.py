"""Model files: arrays in an ``.npz`` plus a JSON header; never pickle.

A model file is one zip archive (NumPy's ``.npz``) whose member ``__header__``
holds a JSON header::

    {"format": "imgclf-model", "format_version": 1, "imgclf_version": "...",
     "model_type": "knn" | "linear" | ..., "steps": [{"name", "class", "params",
     "state"}, ...], "classes": [...], "class_names": [...], "image_shape": [H, W, C],
     "preprocessing": "...", "dataset": "...", "checksum": "sha256 of the header and every array"}

and whose other members are the fitted arrays, named ``<step>/<attribute>``.
Loading reads arrays with ``allow_pickle=False`` and instantiates only the
estimator classes of :func:`model_classes`, so a model file cannot run code.
The checksum covers the header and every array, so a truncated or tampered
file fails with :class:`~imgclf.errors.ModelFileError` instead of loading
wrong numbers. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

import imgclf
from imgclf._atomic import atomic_path
from imgclf.errors import ModelFileError

__all__ = ["FORMAT_VERSION", "SavedModel", "load", "model_classes", "save"]

FORMAT = "imgclf-model"
FORMAT_VERSION = 1
_HEADER = "__header__"


def model_classes() -> dict[str, type]:
    """Estimator classes a model file may name (and nothing else)."""
    from imgclf import features
    from imgclf.linear import LinearClassifier, MeanImage
    from imgclf.neighbors import KNNClassifier
    from imgclf.nn import TwoLayerNet

    extractors = [
        features.FeatureSet,
        features.HOG,
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
    """

    def __init__(self, model, header: dict):
        self.model = model
        self.header = header
        self.model_type = header["model_type"]
        self.class_names = header.get("class_names")
        shape = header.get("image_shape")
        self.image_shape = tuple(shape) if shape else None


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
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                value = value.astype(str)
            arrays[f"{name}/{attr}"] = value
        elif isinstance(value, np.generic):
            state[attr] = value.item()
        elif _json_able(value):
            state[attr] = value
    return state, arrays


def _json_able(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def _checksum(header: dict, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(
    model,
    path: str | os.PathLike,
    *,
    model_type: str,
    class_names=None,
    image_shape=None,
    preprocessing: str | None = None,
    dataset: str | None = None,
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
    """
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
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as out:
        np.savez(out, **{_HEADER: blob}, **arrays)
    return Path(path)


# --- loading -----------------------------------------------------------------------------


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    if path.is_file() and not zipfile.is_zipfile(path):
        # checked first: np.load would take any other file for a pickle
        raise ModelFileError(f"{path}: not an imgclf model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable imgclf model file ({exc})") from None
    if _HEADER not in arrays:
        raise ModelFileError(f"{path}: no imgclf header; not an imgclf model file")
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupt header ({exc})") from None
    return header, arrays


def _check_header(path: Path, header: dict, arrays: dict) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an imgclf model file")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {version!r}; this imgclf "
            f"({imgclf.__version__}) reads version {FORMAT_VERSION}"
        )
    expected = header.pop("checksum", None)
    if expected != _checksum(header, arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the file was modified or damaged")


def _build_step(path: Path, step: dict, arrays: dict):
    known = model_classes()
    cls = known.get(step.get("class"))
    if cls is None:
        raise ModelFileError(
            f"{path}: unknown estimator class {step.get('class')!r}; known: {sorted(known)}"
        )
    estimator = cls(**step["params"])
    for attr, value in step["state"].items():
        setattr(estimator, attr, value)
    prefix = f"{step['name']}/"
    for key, array in arrays.items():
        if key.startswith(prefix):
            setattr(estimator, key[len(prefix) :], array)
    if hasattr(estimator, "_rebuild"):
        estimator._rebuild()  # derived state (e.g. a search index) is recomputed, not stored
    return estimator


def load(path: str | os.PathLike) -> SavedModel:
    """Read a model written by :func:`save`; raise ModelFileError on any damage."""
    path = Path(path)
    header, arrays = _read(path)
    _check_header(path, header, arrays)
    steps = [(s["name"], _build_step(path, s, arrays)) for s in header["steps"]]
    model = Pipeline(steps) if header.get("pipeline") else steps[0][1]
    return SavedModel(model, header)
