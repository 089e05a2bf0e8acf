"""How good is a classifier: accuracy, top-k accuracy, per-class accuracy, confusion.

Top-k accuracy is scored from class scores (:func:`top_k_accuracy`) or from a
ranking of classes the model made itself (:func:`top_k_accuracy_from_ranking`).

Labels are class indices ``0..C-1`` (or any labels, given ``labels=``), and
every function equals scikit-learn's counterpart where one exists (tested).
"""

from __future__ import annotations

import numpy as np

from imgclf._validation import check_int

__all__ = [
    "accuracy",
    "confusion_matrix",
    "per_class_accuracy",
    "top_k_accuracy",
    "top_k_accuracy_from_ranking",
]


def _paired(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1D of equal length; got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    if len(y_true) == 0:
        raise ValueError("y_true is empty")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Share of predictions equal to the truth.

    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    y_true, y_pred = _paired(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def top_k_accuracy(y_true, scores, k: int = 5) -> float:
    """Share of rows whose true class is among the ``k`` highest ``scores``.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        Class indices into the columns of ``scores``.
    scores : array-like, shape (n, n_classes)
        Class scores, probabilities or kNN vote counts.
    k : int
        ImageNet's measure is k = 5.

    Ties are ordered deterministically: among equal scores, the lower class
    index ranks first (a stable sort), as ``predict`` breaks vote ties. (scikit-learn
    ranks the higher index first; without ties the two agree.)

    >>> top_k_accuracy([2, 0], [[0.1, 0.5, 0.4], [0.2, 0.5, 0.3]], k=2)
    0.5
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(y_true):
        raise ValueError(
            f"scores must be (n, n_classes) with n = len(y_true) = {len(y_true)}; "
            f"got shape {scores.shape}"
        )
    k = check_int("k", k, low=1, high=scores.shape[1])
    ranking = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top_k_accuracy_from_ranking(y_true, ranking, k)


def top_k_accuracy_from_ranking(y_true, ranking, k: int = 5) -> float:
    """Share of rows whose true class is among the first ``k`` of its ``ranking``.

    For models whose scores cannot rank every class, such as k-NN vote shares
    (zero for each class without a voter): rank the classes first, e.g. with
    :meth:`imgclf.neighbors.KNNClassifier.rank_classes`.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        True labels.
    ranking : array-like, shape (n, top)
        Labels of the same kind as ``y_true``, best first (map class indices
        from ``rank_classes`` to labels with ``classes_[ranking]``).
    k : int, 1 <= k <= top

    >>> top_k_accuracy_from_ranking([2, 0], [[1, 2, 0], [1, 2, 0]], k=2)
    0.5
    """
    y_true, ranking = np.asarray(y_true), np.asarray(ranking)
    if y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"y_true must be 1D and non-empty; got shape {y_true.shape}")
    if ranking.ndim != 2 or len(ranking) != len(y_true):
        raise ValueError(
            f"ranking must be (n, top) with n = len(y_true) = {len(y_true)}; "
            f"got shape {ranking.shape}"
        )
    k = check_int("k", k, low=1, high=ranking.shape[1])
    return float(np.mean((ranking[:, :k] == y_true[:, None]).any(axis=1)))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """``(C, C)`` counts: row = true class, column = predicted class.

    >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
    [[1, 0], [1, 1]]
    """
    y_true, y_pred = _paired(y_true, y_pred)
    n = n_classes or int(max(y_true.max(), y_pred.max())) + 1
    flat = np.bincount(y_true.astype(np.int64) * n + y_pred.astype(np.int64), minlength=n * n)
    return flat.reshape(n, n)


def per_class_accuracy(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Recall of each class ``(C,)``: correct predictions over members; NaN for an absent class."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    members = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(members > 0, np.diag(matrix) / members, np.nan)
