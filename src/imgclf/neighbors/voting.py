"""From neighbour lists to class votes and predictions.

Pure functions on ``(n, k)`` arrays, shared by :class:`KNNClassifier` and the
fast cross-validation sweep, which scores many k from one neighbour list.

Vote weights follow scikit-learn exactly (so predictions match it bit for
bit): ``"uniform"`` gives each neighbour 1; ``"distance"`` gives 1/d, except
that a row with any exact match (d = 0) gives weight 1 to its exact matches
and 0 to the rest.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TIE_BREAKS",
    "WEIGHTS",
    "cumulative_votes",
    "neighbor_weights",
    "vote_shares",
    "votes",
    "winners",
]

WEIGHTS = ("uniform", "distance")
TIE_BREAKS = ("smallest", "nearest")


def neighbor_weights(distances: np.ndarray, weights: str) -> np.ndarray | None:
    """``(n, k)`` vote weights, or None for uniform votes."""
    if weights == "uniform":
        return None
    with np.errstate(divide="ignore"):
        inverse = 1.0 / distances
    exact = np.isinf(inverse)
    rows = exact.any(axis=1)
    inverse[rows] = exact[rows]
    return inverse


def votes(labels: np.ndarray, n_classes: int, weights: np.ndarray | None) -> np.ndarray:
    """``(n, n_classes)`` summed votes of neighbour ``labels`` ``(n, k)`` (class indices)."""
    *_, (_, tally) = cumulative_votes(labels, n_classes, weights)
    return tally


def cumulative_votes(labels: np.ndarray, n_classes: int, weights: np.ndarray | None):
    """Yield ``(k, tally)`` for k = 1, 2, ...: the votes of the k nearest, built up rank by rank.

    One pass serves every k of a sweep. Ranks are added in the order
    scikit-learn adds them, so float sums round identically. The same
    ``tally`` array is updated in place between yields.
    """
    n, k_max = labels.shape
    tally = np.zeros((n, n_classes))
    rows = np.arange(n)
    for rank in range(k_max):
        tally[rows, labels[:, rank]] += 1.0 if weights is None else weights[:, rank]
        yield rank + 1, tally


def vote_shares(tally: np.ndarray) -> np.ndarray:
    """Votes normalised per row to sum to 1 (a row of zero weight stays uniform-zero safe)."""
    total = tally.sum(axis=1, keepdims=True)
    total[total == 0.0] = 1.0
    return tally / total


def winners(tally: np.ndarray, labels: np.ndarray, tie_break: str) -> np.ndarray:
    """The winning class index of each row.

    ``"smallest"``: among tied classes, the smallest class index (what
    ``argmax`` returns; scikit-learn and CS231n do the same).
    ``"nearest"``: among tied classes, the one whose best-ranked neighbour comes first.
    """
    if tie_break == "smallest":
        return tally.argmax(axis=1)
    tied = tally == tally.max(axis=1, keepdims=True)
    # first rank at which each neighbour's class is tied: the earliest tied neighbour wins
    is_tied_neighbor = np.take_along_axis(tied, labels, axis=1)
    first = is_tied_neighbor.argmax(axis=1)
    return labels[np.arange(len(labels)), first]
