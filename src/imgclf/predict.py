"""Classify new images with a saved model: the one path the command line (and a server) use.

:func:`image_files` expands files and folders into image paths;
:func:`predict_file` decodes one image exactly as the dataset loader does and
ranks the model's classes for it; :func:`score_kind` says what the scores mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from imgclf._validation import check_int, final_estimator

__all__ = ["image_files", "predict_file", "rank_top", "score_kind"]


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


def predict_file(saved, path: str | os.PathLike, *, top: int = 5) -> dict:
    """Decode one image as training did and rank the model's classes for it.

    Returns ``{"file", "resized", "score": <what scores are>, "top": [{"class",
    "score"}, ...]}``; ``resized`` is ``"HxW"`` when the image had another size.
    """
    from imgclf.datasets.folder import image_size, read_image

    if saved.image_shape is None:
        raise ValueError("this model was not trained on images; it cannot classify image files")
    height, width, channels = saved.image_shape
    same_size = image_size(path) == (height, width)
    # decode as training did: a size would also let Pillow's JPEG draft mode change pixels
    image = read_image(
        path, mode="L" if channels == 1 else "RGB", size=None if same_size else (height, width)
    )
    ranking, scores = rank_top(saved.model, image.reshape(1, -1), top)
    names = _class_names(saved)
    return {
        "file": str(path),
        "resized": None if same_size else f"{height}x{width}",
        "score": score_kind(saved.model),
        "top": [{"class": names[i], "score": float(scores[0, i])} for i in ranking[0]],
    }


def _class_names(saved) -> list[str]:
    """Names of the model's classes, in ``classes_`` order."""
    labels = final_estimator(saved.model).classes_
    if saved.class_names:
        return [saved.class_names[int(label)] for label in labels]
    return [str(label) for label in labels]
