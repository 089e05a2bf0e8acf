"""One fold's exact k-NN search when the training rows are a lazy array larger than memory.

The in-memory sweep builds ``ExactIndex(X[train])`` and searches ``X[held_out]``.
Here neither is ever read whole: the held-out rows come a window of whole chunks
at a time (:func:`~imgclf.datasets.chunked.windows`), and for each such window
the training rows are streamed the same way, each window searched by the engine's
own :class:`~imgclf.neighbors.ExactIndex` and its top-k merged into the running
one by ``(distance, position in train)``
(:func:`~imgclf.neighbors.kernels.topk.merge_sorted`). A window lists its rows in
ascending position, so a tie inside a window also goes to the lower position: the
neighbours are the in-memory search's, element for element, whatever order
``train`` is in.

Memory: a window of held-out rows and one of training rows, each at most an eighth of
:func:`~imgclf.datasets.store.in_memory_bytes` (whole chunks, at least one), the
fold's ``(m, k)`` results, and the search's own working memory.
"""

from __future__ import annotations

import numpy as np

from imgclf.datasets.chunked import windows
from imgclf.datasets.store import in_memory_bytes
from imgclf.neighbors.kernels import topk
from imgclf.neighbors.search import ExactIndex

__all__ = ["fold_neighbors"]


def fold_neighbors(
    X, train: np.ndarray, held_out: np.ndarray, metric: str, k: int, *, limits: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``X[train]`` to each row of ``X[held_out]``, read in windows.

    Parameters
    ----------
    X : lazy array, shape (n, d)
        Flat rows on disk (:class:`~imgclf.datasets.store.StoredArray`).
    train, held_out : ndarray of int
        Row indices of ``X``, in any order.
    metric : {"l2", "l1"}
    k : int
        At most ``len(train)``.
    limits : dict, optional
        ``working_memory`` and ``n_jobs`` of each window's :class:`ExactIndex`.

    Returns
    -------
    distances : ndarray of float64, shape (len(held_out), k)
    positions : ndarray of int64, shape (len(held_out), k)
        Indices into ``train`` (as ``ExactIndex(X[train]).search`` returns them); ties
        go to the lower one.
    """
    train, held_out = np.asarray(train, np.int64), np.asarray(held_out, np.int64)
    budget = max(1, in_memory_bytes() // 4)  # what `windows` lets two windows hold: 1/8 each
    distances = np.empty((len(held_out), k))
    positions = np.empty((len(held_out), k), np.int64)
    for where, queries in windows(X, held_out, budget=budget):
        distances[where], positions[where] = _nearest(X, train, queries, metric, k, budget, limits)
    return distances, positions


def _nearest(X, train, queries, metric: str, k: int, budget: int, limits) -> tuple:
    """Top ``k`` of ``queries`` over every window of ``X[train]``, merged as they come."""
    best = (np.empty((len(queries), 0)), np.empty((len(queries), 0), np.int64))
    for where, rows in windows(X, train, budget=budget):
        index = ExactIndex(rows, metric, **(limits or {}))
        dist, local = index.search(queries, min(k, len(rows)))
        best = topk.merge_sorted([best, (dist, where[local])], k)
    return best
