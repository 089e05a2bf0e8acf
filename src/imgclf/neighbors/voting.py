"""From neighbour lists to class votes and predictions.

Pure functions on ``(n, k)`` arrays, shared by :class:`KNNClassifier` and the
fast cross-validation sweep, which scores many k from one neighbour list.
:func:`first_ranks` and :func:`class_ranking` order every class for top-k
answers (see :func:`class_ranking` for the rule); :func:`rank_one` does all of
it for one row in plain Python, the same numbers, for single queries (a dozen
NumPy calls on ten numbers cost ~100 us, a sixth of a served k-NN answer).

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
    "class_ranking",
    "cumulative_votes",
    "first_ranks",
    "neighbor_weights",
    "rank_one",
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
    if weights is None:  # counts: whole numbers, exact in any order, so one bincount
        n = len(labels)
        cells = (np.arange(n)[:, None] * n_classes + labels).ravel()
        return np.bincount(cells, minlength=n * n_classes).reshape(n, n_classes).astype(float)
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


def first_ranks(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Position of each class's first (nearest) neighbour in each row of ``labels``.

    Parameters
    ----------
    labels : ndarray of int, shape (n, depth)
        Class indices of neighbours, nearest first (as the search returns them).
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n, n_classes)
        The column of the class's first appearance, or ``depth`` where it is absent.
        Ordering classes by it is ordering them by the distance to their nearest
        member, equal distances going to the lower training index (the search's rule).

    >>> first_ranks(np.array([[2, 0, 2]]), 4).tolist()
    [[1, 3, 0, 3]]
    """
    n, depth = labels.shape
    ranks = np.full((n, n_classes), depth, dtype=np.int64)
    cells = (np.arange(n)[:, None] * n_classes + labels).ravel()
    # np.unique gives each (row, class) cell's first place in row-major order: the nearest
    cell, first = np.unique(cells, return_index=True)
    ranks.ravel()[cell] = first % depth
    return ranks


def class_ranking(tally: np.ndarray, ranks: np.ndarray, top: int, tie_break: str) -> np.ndarray:
    """The ``top`` best classes of each row, best first.

    Classes are ordered by votes (most first). Equal votes are ordered by
    ``tie_break``, as :func:`winners` breaks them, so column 0 is the winner:

    - ``"nearest"``: by ``ranks``, i.e. the class whose nearest member is closer
      comes first (equal distances: the lower training index).
    - ``"smallest"``: classes with equal *positive* votes by class index; classes
      without votes (none, or only zero-weight voters) have nothing to tie on
      and are ordered by ``ranks`` as for ``"nearest"``.

    Remaining ties (classes absent from the neighbour lists) go to the lower
    class index.

    Parameters
    ----------
    tally : ndarray, shape (n, n_classes)
        Votes, from :func:`votes`.
    ranks : ndarray of int, shape (n, n_classes)
        Nearness order of each class's nearest member, from :func:`first_ranks`.
    top : int, 1 <= top <= n_classes
    tie_break : {"smallest", "nearest"}

    Returns
    -------
    ndarray of int64, shape (n, top)
        Class indices.

    >>> tally = np.array([[1.0, 0.0, 1.0, 0.0]])
    >>> ranks = np.array([[1, 3, 0, 2]])  # neighbours: class 2, then 0, then 3
    >>> class_ranking(tally, ranks, 4, "smallest").tolist()
    [[0, 2, 3, 1]]
    >>> class_ranking(tally, ranks, 4, "nearest").tolist()
    [[2, 0, 3, 1]]
    """
    classes = np.broadcast_to(np.arange(tally.shape[1]), tally.shape)
    # one secondary key per vote level: zero votes never share a level with positive ones
    near = ranks if tie_break == "nearest" else np.where(tally > 0, classes, ranks)
    order = np.lexsort((classes, near, -tally), axis=-1)
    return order[:, :top].astype(np.int64)


def rank_one(labels, distances, n_classes: int, top: int, weights: str = "uniform",
             tie_break: str = "smallest", after=()) -> tuple[list[int], list[float]]:  # fmt: skip
    """One row's ``top`` best classes and its votes: :func:`votes` (of
    :func:`neighbor_weights`), :func:`first_ranks` and :func:`class_ranking` of a
    single row, to the last bit, without NumPy.

    Parameters
    ----------
    labels : sequence of int
        The row's neighbours' classes, nearest first.
    distances : sequence of float
        Their distances (used by ``weights="distance"``).
    n_classes, top : int
    weights, tie_break : str
        As :func:`neighbor_weights` and :func:`class_ranking`.
    after : sequence of int
        Classes without a neighbour here, nearest first: they rank after every
        class with one, in this order (as a deeper search would place them); the
        classes in neither follow, by class index.

    Returns
    -------
    ranking : list of int, length ``top``
    tally : list of float, length ``n_classes``
        Votes, summed rank by rank as :func:`cumulative_votes` sums them.

    >>> rank_one([2, 0, 2], [1.0, 2.0, 3.0], 4, 4, after=[3])
    ([2, 0, 3, 1], [1.0, 0.0, 2.0, 0.0])
    """
    tally = [0.0] * n_classes
    for c, w in zip(labels, _row_weights(distances, weights), strict=True):
        tally[c] += w
    near: dict[int, int] = {}
    for place, c in enumerate([*labels, *after]):
        near.setdefault(c, place)
    absent = len(labels) + len(after)
    by_class = tie_break == "smallest"

    def key(c: int):
        voted = by_class and tally[c] > 0  # equal positive votes: by class index
        return (-tally[c], c if voted else near.get(c, absent), c)

    if top == 1:  # the winner alone: no need to order the rest
        return [min(range(n_classes), key=key)], tally
    return sorted(range(n_classes), key=key)[:top], tally


def _row_weights(distances, weights: str) -> list[float]:
    """:func:`neighbor_weights` of one row, as Python floats (the same divisions)."""
    if weights == "uniform":
        return [1.0] * len(distances)
    if any(d == 0 for d in distances):
        return [1.0 if d == 0 else 0.0 for d in distances]
    return [1.0 / d for d in distances]
