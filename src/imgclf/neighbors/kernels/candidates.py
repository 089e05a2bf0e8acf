"""Exact distances from each query to its own candidate rows: the re-ranking step.

An approximate index proposes ``c`` database rows per query (faiss, hnswlib, or
imgclf's IVF scanning uint8 codes of float features); re-ranking measures each
proposal exactly and keeps the best ``k``. Here the measuring, in one compiled
pass that reads each candidate row in place (the plain NumPy way gathers an
``(m, c, d)`` float64 copy first: 1.2 s for 10,000 queries x 16 HOG rows):

- L2: ``sqrt(sum_j (q_j - x_j)^2)``, the Euclidean distance (not squared);
- L1: ``sum_j |q_j - x_j|``;

accumulated in float64 over uint8 or float32 rows, so they are the true
distances of the stored numbers, whatever kernel proposed the rows.
"""

from __future__ import annotations

import numba
import numpy as np

from imgclf._threads import on_shares

__all__ = ["best_candidates", "reference_best_candidates", "reference_candidate_distances"]

THREAD_MIN_QUERIES = 512  # fewer queries a thread: one thread measures them all


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _distance(query, row, squared):
    total = 0.0
    for j in range(query.shape[0]):
        diff = np.float64(query[j]) - np.float64(row[j])
        total += diff * diff if squared else abs(diff)
    return np.sqrt(total) if squared else total


def best_candidates(database, queries, candidates, k: int, metric: str, n_jobs: int = 1):
    """The ``k`` best of each query's candidates by true distance.

    Parameters
    ----------
    database : ndarray (n, d), uint8 or float32
    queries : ndarray (m, d), the database's dtype
    candidates : ndarray of int64 (m, c), rows in ``[0, n)`` or -1 (an empty slot)
    k : int
    metric : {"l1", "l2"}
    n_jobs : int, default=1
        Threads sharing the queries (each a share of at least :data:`THREAD_MIN_QUERIES`).

    Returns
    -------
    distances : ndarray of float64 (m, k'), ascending: Euclidean (L2, not squared) or
        L1; ``inf`` in empty slots. ``k' = min(k, c)``.
    indices : ndarray of int64 (m, k'): equal distances by the lower row, empty slots
        (-1) last.

    One compiled pass (measure, keep): for a single query, ~3 us where NumPy's
    lexsort and gathers took ~30.

    >>> db = np.array([[0, 0], [3, 4], [0, 1]], np.float32)
    >>> dist, rows = best_candidates(db, db[:1], np.array([[1, -1, 2]]), 3, "l2")
    >>> dist.tolist(), rows.tolist()
    ([[1.0, 5.0, inf]], [[2, 1, -1]])
    """
    candidates = np.ascontiguousarray(candidates, np.int64)
    width = min(k, candidates.shape[1])
    dist = np.empty((len(queries), width), np.float64)
    rows = np.empty((len(queries), width), np.int64)

    def keep(lo: int, hi: int) -> None:
        _keep_best(database, queries[lo:hi], candidates[lo:hi], metric == "l2",
                   dist[lo:hi], rows[lo:hi])  # fmt: skip

    on_shares(keep, len(queries), n_jobs, THREAD_MIN_QUERIES)
    return dist, rows


@numba.njit(nogil=True, cache=True)
def _keep_best(database, queries, candidates, squared, dist, rows):
    """Each query's ``dist.shape[1]`` best candidates into ``dist`` / ``rows``, by
    insertion: sorted by (distance, row), empty slots (-1: ``inf``) after every row."""
    n, k = database.shape[0], dist.shape[1]
    for i in range(candidates.shape[0]):
        dist[i, :], rows[i, :] = np.inf, n  # (n: after every row; -1 once done)
        for j in range(candidates.shape[1]):
            row = candidates[i, j]
            value = np.inf if row < 0 else _distance(queries[i], database[row], squared)
            row = n if row < 0 else row
            slot = k
            while slot > 0 and (
                dist[i, slot - 1] > value
                or (dist[i, slot - 1] == value and rows[i, slot - 1] > row)
            ):
                slot -= 1
            if slot < k:
                for t in range(k - 1, slot, -1):
                    dist[i, t], rows[i, t] = dist[i, t - 1], rows[i, t - 1]
                dist[i, slot], rows[i, slot] = value, row
        for j in range(k):
            if rows[i, j] == n:
                rows[i, j] = -1


def reference_best_candidates(database, queries, candidates, k: int, metric: str):
    """:func:`best_candidates` the NumPy way: every distance, then a lexsort (for tests)."""
    candidates = np.asarray(candidates, np.int64)
    dist = reference_candidate_distances(database, queries, candidates, metric)
    empty_last = np.where(candidates < 0, len(database), candidates)
    order = np.lexsort((empty_last, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(candidates, order, axis=1)


def reference_candidate_distances(database, queries, candidates, metric: str) -> np.ndarray:
    """The same distances the obvious NumPy way (for tests)."""
    rows = database[np.maximum(candidates, 0)].astype(np.float64) - queries[:, None, :]
    dist = np.sqrt((rows**2).sum(-1)) if metric == "l2" else np.abs(rows).sum(-1)
    return np.where(candidates < 0, np.inf, dist)
