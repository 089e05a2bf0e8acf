"""The coarse step of an inverted file, query by query, in compiled code.

For one query the NumPy way (a BLAS product, an ``argpartition`` and a
``lexsort``) is a dozen small NumPy calls (~0.2 ms on CIFAR's 894 lists, more
than the rest of an approximate single query); here it is ~20 us. Batches take
the same code one query at a time (:func:`nearest_lists_of_rows`): a BLAS
product over many queries sums in another order than over one, so a query near
the boundary of two lists could probe another list in a batch than alone, and
its answer would depend on the other queries sent with it.

The same quantities: ``z = q P^T - mu P^T`` (float32; ``P`` the principal
directions, or ``z = q`` without them), the score ``|c|^2 - 2 z.c`` of every
centroid ``c`` (the squared distance less ``|z|^2``: the same order), and the
``n_probe`` least scores, nearest first, equal scores to the lower list.
Sums are float32 in another order than :meth:`CoarseQuantizer.assign`'s BLAS
product, so a row's own list need not be the first its query probes when two
centroids are within rounding of each other; rows are still found (each list
is scanned whole), and the choice is the same in every batch.

A quantizer with ``medians`` (L1 search, see :mod:`imgclf.neighbors.coarse`)
scores every list by ``sum_j |q_j - m_j|`` instead, in the original space
(float32 sums: exact for uint8 rows).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "nearest_lists",
    "nearest_lists_of_rows",
    "reference_l1_scores",
    "reference_nearest_lists",
]


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _projected(query, components, projected_mean):
    """``z`` (float32): the query on the principal directions, or the query itself."""
    q = query.astype(np.float32)
    if components.shape[0] == 0:
        return q
    z = np.empty(components.shape[0], np.float32)
    for c in range(components.shape[0]):
        total = np.float32(0)
        for j in range(q.shape[0]):
            total += q[j] * components[c, j]
        z[c] = total - projected_mean[c]
    return z


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _scores(z, centroids, centroid_norms):
    """``|c|^2 - 2 z.c`` for every centroid (float32)."""
    scores = np.empty(centroids.shape[0], np.float32)
    for i in range(centroids.shape[0]):
        dot = np.float32(0)
        for j in range(z.shape[0]):
            dot += z[j] * centroids[i, j]
        scores[i] = centroid_norms[i] - 2 * dot
    return scores


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def _l1_scores(query, medians):
    """``sum_j |q_j - m_j|`` for every list's medians ``m``, float32 (exact for uint8
    rows: integer terms, sums below 2^24 up to 65,793 features)."""
    scores = np.empty(medians.shape[0], np.float32)
    for i in range(medians.shape[0]):
        total = np.float32(0)
        for j in range(medians.shape[1]):
            total += abs(np.float32(query[j]) - np.float32(medians[i, j]))
        scores[i] = total
    return scores


@numba.njit(nogil=True, cache=True)
def _list_scores(query, components, projected_mean, centroids, centroid_norms, medians):
    """The score of every list for one query: its L1 distance to the medians where the
    quantizer has them, else ``|c|^2 - 2 z.c`` of the centroids."""
    if medians.shape[0] > 0:
        return _l1_scores(query, medians)
    return _scores(_projected(query, components, projected_mean), centroids, centroid_norms)


INSERTION_MAX_PROBE = 20
"""Up to this many lists a query's are kept by insertion (:func:`_least_by_insertion`),
beyond by selection (:func:`_least_by_selection`): of 894 random scores, 2.5 against
3.1 us at ``n_probe=16``, 4.7 against 3.6 at 32, 16.8 against 6.5 at 112 (HOG +
colour features need 112-128 for recall 0.95)."""


@numba.njit(nogil=True, cache=True)
def _least(scores, n_probe):
    """The ``n_probe`` lists of least score, ascending, equal scores to the lower list."""
    if n_probe <= INSERTION_MAX_PROBE:
        return _least_by_insertion(scores, n_probe)
    return _least_by_selection(scores, n_probe)


@numba.njit(nogil=True, cache=True)
def _least_by_selection(scores, n_probe):
    """:func:`_least` by selection on the scores' order keys (:func:`_order_keys`): the
    ``n_probe``-th least key ``cut`` (:func:`_kth_least_key`), every list below it and
    the lowest lists equal to it, then one sort of (key, list) packed in 64 bits."""
    keys = _order_keys(scores)
    cut = _kth_least_key(keys, n_probe - 1)
    packed = np.empty(n_probe, np.uint64)
    count = 0
    for i in range(keys.shape[0]):
        if keys[i] < cut:
            packed[count] = (np.uint64(keys[i]) << np.uint64(32)) | np.uint64(i)
            count += 1
    for i in range(keys.shape[0]):  # ties at the cut: the lower lists
        if count == n_probe:
            break
        if keys[i] == cut:
            packed[count] = (np.uint64(cut) << np.uint64(32)) | np.uint64(i)
            count += 1
    packed.sort()
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)


@numba.njit(nogil=True, cache=True)
def _kth_least_key(keys, kth):
    """The ``kth`` (0-based) least of uint32 ``keys``, by bisection: 32 branch-free
    counting passes that the compiler vectorises (~1 us for 894 lists; numba's
    ``np.partition``, a quickselect whose compares the CPU mispredicts half the
    time, took 12 us)."""
    lo, hi = np.uint32(0), np.uint32(0xFFFFFFFF)
    while lo < hi:
        mid = lo + (hi - lo) // np.uint32(2)
        at_most = 0
        for i in range(keys.shape[0]):
            at_most += keys[i] <= mid
        if at_most > kth:
            hi = mid
        else:
            lo = mid + np.uint32(1)
    return lo


@numba.njit(nogil=True, cache=True)
def _order_keys(scores):
    """uint32 keys in the order of the float32 ``scores``, equal where they are equal
    (-0.0 made 0.0 first): the sign bit flipped for positives, every bit for negatives."""
    keys = np.empty(scores.shape[0], np.uint32)
    bits = (scores + np.float32(0)).view(np.uint32)
    for i in range(scores.shape[0]):
        b = bits[i]
        keys[i] = ~b if b >> np.uint32(31) else b | np.uint32(0x80000000)
    return keys


@numba.njit(nogil=True, cache=True)
def _least_by_insertion(scores, n_probe):
    """:func:`_least` by insertion into a short sorted list (most lists are rejected by
    one comparison)."""
    kept = np.empty(n_probe, np.int64)
    count = 0
    for i in range(scores.shape[0]):
        s = scores[i]
        if count == n_probe and s >= scores[kept[count - 1]]:
            continue
        slot = count if count < n_probe else n_probe - 1
        while slot > 0 and scores[kept[slot - 1]] > s:  # after equals: they are lower lists
            kept[slot] = kept[slot - 1]
            slot -= 1
        kept[slot] = i
        count = min(count + 1, n_probe)
    return kept


@numba.njit(nogil=True, cache=True)
def nearest_lists_of_rows(queries, components, projected_mean, centroids, centroid_norms,
                          medians, n_probe, offsets, k):  # fmt: skip
    """The ``n_probe`` nearest lists of every query, nearest first: ``lists (m, n_probe)``
    int64, and ``short (m,)`` bool, True where those lists hold fewer than ``k`` rows
    (the caller then probes on, as :meth:`CoarseQuantizer.probes` does).

    ``queries (m, d)`` uint8 or float; ``components (c, d)``, ``projected_mean (c,)``,
    ``centroids (n_lists, c or d)``, ``centroid_norms (n_lists,)`` float32;
    ``medians (n_lists, d)`` of the queries' kind (uint8 or float32), or ``(0, d)``
    to rank by the centroids; ``offsets (n_lists + 1,)`` the lists' row ranges. Query
    by query, by the same compiled code whatever ``m``: a query's lists do not depend
    on its batch.
    """
    lists = np.empty((queries.shape[0], n_probe), np.int64)
    short = np.zeros(queries.shape[0], np.bool_)
    for i in range(queries.shape[0]):
        scores = _list_scores(queries[i], components, projected_mean, centroids,
                              centroid_norms, medians)  # fmt: skip
        lists[i] = _least(scores, n_probe)
        rows = 0
        for j in range(n_probe):
            rows += offsets[lists[i, j] + 1] - offsets[lists[i, j]]
        short[i] = rows < k
    return lists, short


@numba.njit(nogil=True, cache=True)
def nearest_lists(query, components, projected_mean, centroids, centroid_norms, medians,
                  n_probe, offsets, k):  # fmt: skip
    """The row ranges ``(n_probe, 2)`` of one query's ``n_probe`` nearest lists, nearest
    first (:func:`nearest_lists_of_rows`, so the same lists as in any batch); an empty
    ``(0, 2)`` array when they hold fewer than ``k`` rows.

    ``query (d,)``; the rest as :func:`nearest_lists_of_rows`.
    """
    lists, short = nearest_lists_of_rows(
        np.ascontiguousarray(query).reshape(1, -1), components, projected_mean, centroids,
        centroid_norms, medians, n_probe, offsets, k,
    )  # fmt: skip
    ranges = np.empty((n_probe, 2), np.int64)
    for i in range(n_probe):
        ranges[i, 0], ranges[i, 1] = offsets[lists[0, i]], offsets[lists[0, i] + 1]
    return ranges[:0] if short[0] else ranges


def reference_nearest_lists(query, components, mean, centroids, n_probe) -> np.ndarray:
    """The ``n_probe`` nearest lists of ``query``, the obvious NumPy way (float64)."""
    q = np.asarray(query, np.float64)
    z = (q - mean) @ components.T.astype(np.float64) if len(components) else q
    distances = ((z - centroids.astype(np.float64)) ** 2).sum(axis=1)
    return np.lexsort((np.arange(len(centroids)), distances))[:n_probe]


def reference_l1_scores(query, medians) -> np.ndarray:
    """``sum_j |q_j - m_j|`` for every row of ``medians``, the obvious NumPy way (float64)."""
    return np.abs(np.asarray(medians, np.float64) - np.asarray(query, np.float64)).sum(axis=1)
