"""Classify new images with a saved model: the one path the command line (and a server) use.

:func:`image_files` expands files and folders into image paths;
:func:`predict_file` decodes one image exactly as the dataset loader does and
ranks the model's classes for it, in two steps a server can batch:
:func:`decode_for_model` and :func:`rank_images`; :func:`score_kind` says what the
scores mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from imgclf._validation import check_int, final_estimator

__all__ = [
    "decode_for_model",
    "image_files",
    "predict_file",
    "rank_images",
    "rank_top",
    "score_kind",
]


def image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Each path as given, or, for a folder, the images below it in sorted order.

    A folder's images are the files whose ending names one of the formats the
    dataset loader reads (:func:`imgclf.datasets.folder.image_extensions`).
    """
    from imgclf.datasets.folder import image_extensions

    endings = image_extensions()
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in endings)
        else:
            yield path


def score_kind(model) -> str:
    """What a model's class scores are: ``"vote share"``, ``"probability"`` or ``"margin"``."""
    clf = final_estimator(model)
    if hasattr(clf, "rank_classes"):  # k-NN
        return "vote share"
    return "probability" if hasattr(model, "predict_proba") else "margin"


def class_scores(model, X) -> np.ndarray:
    """``(n, n_classes)`` scores: probabilities (or vote shares), else decision values."""
    method = "predict_proba" if hasattr(model, "predict_proba") else "decision_function"
    scores = getattr(model, method)(X)
    return scores if scores.ndim == 2 else np.column_stack([-scores, scores])


def rank_top(model, X, top: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ranking, scores)``: the ``top`` best class positions per row, and all scores.

    Positions index ``classes_``. k-NN ranks by votes, then by each class's
    nearest neighbour (:meth:`~imgclf.neighbors.KNNClassifier.rank_classes`),
    so classes without a vote are still ordered meaningfully; other models
    rank by score.
    """
    check_int("top", top, low=1)
    clf = final_estimator(model)
    if hasattr(clf, "rank_classes"):
        rows = model[:-1].transform(X) if hasattr(model, "steps") else X
        ranking, shares = clf.rank_classes(rows, top=top, return_shares=True)
        return ranking, shares
    scores = class_scores(model, X)
    return np.argsort(-scores, axis=1, kind="stable")[:, :top], scores


def predict_file(
    saved, path: str | os.PathLike, *, top: int = 5, data: bytes | None = None
) -> dict:
    """Decode one image as training did and rank the model's classes for it.

    Returns ``{"file", "resized", "score": <what scores are>, "top": [{"class",
    "score"}, ...]}``; ``resized`` is ``"HxW"`` when the image had another size.
    ``data``: the file's bytes, already in memory (``path`` then only names them).
    """
    image, resized = decode_for_model(saved, path, data=data)
    (ranked,) = rank_images(saved, image.reshape(1, -1), top=top)
    return {"file": str(path), "resized": resized, **ranked}


def decode_for_model(
    saved, path: str | os.PathLike, *, data: bytes | None = None, max_bytes: int | None = None
) -> tuple[np.ndarray, str | None]:
    """One image decoded as training did: ``(uint8 (H, W, C) image, resized)``.

    ``resized`` is ``"HxW"`` when the image had another size than the model's
    input, else None. ``data``: the file's bytes, already in memory;
    ``max_bytes``: the decoded-pixel budget (:func:`~imgclf.datasets.folder.read_image`).
    """
    from imgclf.datasets.folder import image_size, read_image

    if saved.image_shape is None:
        raise ValueError("this model was not trained on images; it cannot classify image files")
    height, width, channels = saved.image_shape
    same_size = image_size(path, data=data) == (height, width)
    # decode as training did: a size would also let Pillow's JPEG draft mode change pixels
    image = read_image(
        path,
        mode="L" if channels == 1 else "RGB",
        size=None if same_size else (height, width),
        max_bytes=max_bytes,
        data=data,
    )
    return image, None if same_size else f"{height}x{width}"


def rank_images(saved, X, *, top: int = 5, all_scores: bool = False) -> list[dict]:
    """``[{"score": <what scores are>, "top": [{"class", "score"}, ...]}, ...]``, one per row.

    ``X``: ``(n, d)`` rows of decoded images (:func:`decode_for_model`), ranked
    together in one call of the model. ``all_scores``: each answer also holds
    ``"scores"``, every class's score in ``classes_`` order.
    """
    ranking, scores = rank_top(saved.model, X, top)
    names, kind = _class_names(saved), score_kind(saved.model)
    answers = [
        {"score": kind, "top": [{"class": names[i], "score": float(row[i])} for i in ranks]}
        for ranks, row in zip(ranking, scores, strict=True)
    ]
    if all_scores:
        for answer, row in zip(answers, scores.tolist(), strict=True):
            answer["scores"] = row
    return answers


def _class_names(saved) -> list[str]:
    """Names of the model's classes, in ``classes_`` order."""
    labels = final_estimator(saved.model).classes_
    if saved.class_names:
        return [saved.class_names[int(label)] for label in labels]
    return [str(label) for label in labels]
