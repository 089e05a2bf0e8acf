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
    "Ranker",
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
    scores = _decoded_scores(model, X) if _decoded_rows(model, X) else None
    if scores is None:
        method = "predict_proba" if hasattr(model, "predict_proba") else "decision_function"
        scores = getattr(model, method)(X)
    return _two_columns(scores)


def _two_columns(scores: np.ndarray) -> np.ndarray:
    """A binary model's ``(n,)`` decision values as ``(n, 2)`` class scores."""
    return scores if scores.ndim == 2 else np.column_stack([-scores, scores])


def _best(scores: np.ndarray, top: int) -> np.ndarray:
    """The ``top`` highest-scoring class positions of each row, ties to the lower class."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :top]


def rank_top(model, X, top: int, *, neighbors: bool = False) -> tuple:
    """``(ranking, scores)``: the ``top`` best class positions per row, and all scores.

    Positions index ``classes_``. k-NN ranks by votes, then by each class's
    nearest neighbour (:meth:`~imgclf.neighbors.KNNClassifier.rank_classes`),
    so classes without a vote are still ordered meaningfully; other models
    rank by score. ``neighbors``: a third item, k-NN's voters ``(distances,
    indices)`` from the same search (None for other models).
    """
    check_int("top", top, low=1)
    clf = final_estimator(model)
    if hasattr(clf, "rank_classes"):
        if _decoded_rows(model, X):  # what the search would check, known: straight to it
            ranking, shares, voters = clf._rank(X, top)
        else:
            rows = model[:-1].transform(X) if hasattr(model, "steps") else X
            ranking, shares, voters = clf.rank_classes(
                rows, top=top, return_shares=True, return_neighbors=True
            )
        return (ranking, shares, voters) if neighbors else (ranking, shares)
    scores = class_scores(model, X)
    ranking = _best(scores, top)
    return (ranking, scores, None) if neighbors else (ranking, scores)


# Rows of decoded images skip scikit-learn's per-call checks (about 0.4 ms a call, most
# of the time one image takes on a server): the same arithmetic, by the estimators' own
# methods, on arrays already known to be what the checks would pass.
DECODED_MAX_ROWS = 4096  # (the minibatch classifiers score this many rows in one block)


def _decoded_rows(model, X) -> bool:
    """Whether ``X`` is what :func:`decode_for_model` makes for ``model``: C-contiguous
    uint8 rows ``(n, d)``, ``1 <= n <= DECODED_MAX_ROWS``, ``d`` the model's input width,
    and the model has no feature step (only k-NN, or mean-image steps before a
    minibatch classifier)."""
    return _takes_decoded_rows(model) and _are_decoded_rows(X, model)


def _takes_decoded_rows(model) -> bool:
    """The model's half of :func:`_decoded_rows`: k-NN alone, or mean-image steps before a
    minibatch classifier."""
    from imgclf.preprocessing import MeanImage

    *transforms, clf = _steps(model)
    known = hasattr(clf, "_block_scores") or (not transforms and hasattr(clf, "_rank"))
    return known and all(isinstance(step, MeanImage) for step in transforms)


def _are_decoded_rows(X, model) -> bool:
    """The rows' half of :func:`_decoded_rows`."""
    return (
        isinstance(X, np.ndarray)
        and X.dtype == np.uint8
        and X.ndim == 2
        and X.flags.c_contiguous
        and 1 <= len(X) <= DECODED_MAX_ROWS
        and X.shape[1] == getattr(model, "n_features_in_", None)
    )


def _steps(model) -> list:
    return [step for _, step in model.steps] if hasattr(model, "steps") else [model]


def _decoded_scores(model, X: np.ndarray) -> np.ndarray | None:
    """``predict_proba`` or ``decision_function`` of decoded rows (see :func:`_decoded_rows`)
    by the steps' own arithmetic; None for k-NN (its :meth:`_rank` does it)."""
    scorer = _decoded_scorer(model)
    return None if scorer is None else scorer(X)


def _decoded_scorer(model):
    """``scores(X)`` for decoded rows, as :func:`_decoded_scores`, with the weights in
    float64 made once; None for k-NN."""
    *transforms, clf = _steps(model)
    if not hasattr(clf, "_block_scores"):
        return None
    weights = clf._float64_weights()
    proba = hasattr(model, "predict_proba")

    def scores(X: np.ndarray) -> np.ndarray:
        for step in transforms:
            X = step._centred(X)
        scores = clf._block_scores(X.astype(np.float64), *weights)
        if proba:  # as MinibatchClassifier.predict_proba
            from imgclf._minibatch import softmax

            return softmax(scores)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    return scores


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
    from imgclf.datasets.folder import read_image_as

    if saved.image_shape is None:
        raise ValueError("this model was not trained on images; it cannot classify image files")
    height, width, channels = saved.image_shape
    image, resized = read_image_as(
        path,
        size=(height, width),
        mode="L" if channels == 1 else "RGB",
        max_bytes=max_bytes,
        data=data,
    )
    return image, f"{height}x{width}" if resized else None


def rank_images(
    saved, X, *, top: int = 5, all_scores: bool = False, neighbors: bool = False
) -> list[dict]:
    """``[{"score": <what scores are>, "top": [{"class", "score"}, ...]}, ...]``, one per row.

    ``X``: ``(n, d)`` rows of decoded images (:func:`decode_for_model`), ranked
    together in one call of the model. ``all_scores``: each answer also holds
    ``"scores"``, every class's score in ``classes_`` order. ``neighbors``: a
    k-NN model's answers also hold ``"neighbors"``, its ``k`` voters nearest
    first (``{"index", "class", "distance"}``, the training index).
    """
    return Ranker(saved)(X, top=top, all_scores=all_scores, neighbors=neighbors)


class Ranker:
    """:func:`rank_images` for one saved model, with what depends on the model alone
    worked out once (a server ranks thousands of images with one model).

    Asking the model what it is on every call (scikit-learn's ``available_if``
    checks, the class names, the weights in float64) cost more than scoring a
    32x32 image with a linear model: ~60 us of ~100.
    """

    def __init__(self, saved):
        self.saved, self.model = saved, saved.model
        self.clf = final_estimator(saved.model)
        self.kind, self.names = score_kind(saved.model), _class_names(saved)
        self.takes_decoded = _takes_decoded_rows(saved.model)
        self.scorer = _decoded_scorer(saved.model) if self.takes_decoded else None

    def __call__(self, X, *, top: int = 5, all_scores: bool = False, neighbors: bool = False):
        """:func:`rank_images` of ``X``."""
        ranking, scores, voters = self._rank_top(X, top)
        names, kind = self.names, self.kind
        answers = [
            {"score": kind, "top": [{"class": names[i], "score": float(row[i])} for i in ranks]}
            for ranks, row in zip(ranking, scores, strict=True)
        ]
        if all_scores:
            for answer, row in zip(answers, scores.tolist(), strict=True):
                answer["scores"] = row
        if neighbors and voters is not None:
            found = _neighbor_records(self.clf, voters, names)
            for answer, row in zip(answers, found, strict=True):
                answer["neighbors"] = row
        return answers

    def _rank_top(self, X, top: int) -> tuple:
        """:func:`rank_top` with neighbours, by the prepared path when ``X`` are decoded rows."""
        if not (self.takes_decoded and _are_decoded_rows(X, self.model)):
            return rank_top(self.model, X, top, neighbors=True)
        check_int("top", top, low=1)
        if self.scorer is None:  # k-NN
            return self.clf._rank(X, top)
        scores = _two_columns(self.scorer(X))
        return _best(scores, top), scores, None


def _neighbor_records(clf, voters: tuple, names: list[str]) -> list[list[dict]]:
    """Each row's voters as ``{"index", "class", "distance"}``, nearest first."""
    dist, index = voters
    labels = clf._y[index]  # label positions in classes_
    return [
        [
            {"index": i, "class": names[c], "distance": d}
            for i, c, d in zip(idx, lab, dst, strict=True)
        ]
        for idx, lab, dst in zip(index.tolist(), labels.tolist(), dist.tolist(), strict=True)
    ]


def _class_names(saved) -> list[str]:
    """Names of the model's classes, in ``classes_`` order."""
    labels = final_estimator(saved.model).classes_
    if saved.class_names:
        return [saved.class_names[int(label)] for label in labels]
    return [str(label) for label in labels]
