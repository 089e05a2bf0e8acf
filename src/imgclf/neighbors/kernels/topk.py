"""Running top-k: keep the k smallest distances of each row, block by block.

The search engine computes distances one block of database rows at a time
and folds each block into a running list of the k best so far, so no full
``n_queries x n_database`` matrix and no full sort of a distance row is ever
needed.

Ties: database blocks arrive in increasing index order and each block is
scanned left to right, so every newcomer has a larger index than everything
already kept. Inserting it *after* all kept entries with an equal distance
therefore breaks ties by the lower database index, as the engine promises.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "insert_sorted",
    "merge_block",
    "merge_gathered",
    "merge_gathered_l2",
    "merge_sorted",
    "merge_two_by_id",
    "reference_topk",
]


@numba.njit(nogil=True, cache=True)
def merge_block(block, m, width, lo, best_dist, best_index):
    """Fold ``block[:m, :width]`` (database rows ``lo..lo+width``) into the top-k.

    ``best_dist`` / ``best_index`` are ``(m, k)``, sorted ascending by
    distance, padded with the dtype's maximum and index -1 while not yet full.
    """
    k = best_dist.shape[1]
    for i in range(m):
        worst = best_dist[i, k - 1]
        for j in range(width):
            value = block[i, j]
            if value < worst:
                insert_sorted(best_dist[i], best_index[i], value, lo + j)
                worst = best_dist[i, k - 1]


@numba.njit(nogil=True, cache=True, inline="always")
def insert_sorted(dist, index, value, position):
    """Insert ``value`` into the sorted row, behind equal distances; drop the last."""
    slot = dist.shape[0] - 1
    while slot > 0 and dist[slot - 1] > value:
        dist[slot] = dist[slot - 1]
        index[slot] = index[slot - 1]
        slot -= 1
    dist[slot] = value
    index[slot] = position


def merge_sorted(parts: list[tuple[np.ndarray, np.ndarray]], k: int):
    """Merge per-range top-k lists ``(dist (m, k_i), index (m, k_i))`` into one.

    Used when one query block was split over database ranges (a single query
    spread over the cores). Sorts by distance, then by index, so ties still
    go to the lower database index.
    """
    dist = np.concatenate([d for d, _ in parts], axis=1)
    index = np.concatenate([i for _, i in parts], axis=1)
    # unfilled slots (index -1) sort last: give them an index larger than any real one
    order_index = np.where(index < 0, np.iinfo(np.int64).max, index)
    order = np.lexsort((order_index, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(index, order, 1)


@numba.njit(nogil=True, cache=True)
def merge_two_by_id(dist_a, id_a, dist_b, id_b, k):
    """The ``k`` first of two lists, each sorted by ``(distance, id)``, in that order:
    ``(distances (k,), ids (k,))``, int64; ``k`` at most their total length.

    :func:`merge_sorted` for one query split over two threads, in one compiled
    call: its concatenations, sort and takes were ~10 us warm (NumPy calls on
    ten numbers), several times that right after a search has left the caches cold.
    """
    dist = np.empty(k, np.int64)
    ids = np.empty(k, np.int64)
    a = b = 0
    for j in range(k):
        take_a = b == dist_b.shape[0] or (
            a < dist_a.shape[0]
            and (dist_a[a] < dist_b[b] or (dist_a[a] == dist_b[b] and id_a[a] < id_b[b]))
        )
        if take_a:
            dist[j], ids[j] = dist_a[a], id_a[a]
            a += 1
        else:
            dist[j], ids[j] = dist_b[b], id_b[b]
            b += 1
    return dist, ids


def reference_topk(distances: np.ndarray, k: int):
    """The k smallest of each row of a full matrix, ties to the lower index (stable sort)."""
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, 1), order


@numba.njit(nogil=True, cache=True)
def merge_gathered(block, query_rows, row_ids, best_dist, best_index):
    """Fold ``block`` into the top-k of scattered queries, for rows in any order.

    ``block[i, j]`` is the distance from query ``query_rows[i]`` to the database
    row whose id is ``row_ids[j]``; ``best_dist`` / ``best_index`` hold every
    query's running top-k (as in :func:`merge_block`). Rows need not arrive in
    id order (an inverted index visits its lists by nearness), so ties are
    ordered by comparing ids: equal distances still go to the lower id.
    """
    for i in range(len(query_rows)):
        dist, index = best_dist[query_rows[i]], best_index[query_rows[i]]
        worst = dist[dist.shape[0] - 1]
        for j in range(len(row_ids)):
            if block[i, j] <= worst:
                worst = _offer(dist, index, block[i, j], row_ids[j], worst)


@numba.njit(nogil=True, cache=True)
def merge_gathered_l2(dots, query_norms, query_rows, row_norms, row_ids, best_dist, best_index):
    """:func:`merge_gathered` of squared L2 distances made from dot products on the way:
    ``max(|q|^2 + |x|^2 - 2 q.x, 0)``, float32, in the order of
    :func:`~imgclf.neighbors.kernels.l2.block_f32`'s in-place steps (so the same
    numbers), without its four passes over the block (an inverted list's block of
    256 x 56 took as long again as its product).

    ``dots (m, r)`` float32; ``query_norms`` float32, indexed by ``query_rows (m,)``;
    ``row_norms (r,)`` float32 and ``row_ids (r,)`` of the block's rows.
    """
    for i in range(len(query_rows)):
        q = query_rows[i]
        dist, index = best_dist[q], best_index[q]
        worst = dist[dist.shape[0] - 1]
        for j in range(len(row_ids)):
            value = dots[i, j] * np.float32(-2.0) + query_norms[q] + row_norms[j]
            value = max(value, np.float32(0.0))
            if value <= worst:
                worst = _offer(dist, index, value, row_ids[j], worst)


@numba.njit(nogil=True, cache=True, inline="always")
def _offer(dist, index, value, position, worst):
    """Keep ``(value, position)`` if it comes before the k-th, ``worst`` (equal distances:
    by id); returns the k-th after. Callers test ``value <= worst`` first: most rows fail
    it, and only then are the id and the row's top-k read."""
    last = dist.shape[0] - 1
    if value < worst or (value == worst and 0 <= position < index[last]):
        _insert_by_id(dist, index, value, position)
        return dist[last]
    return worst


@numba.njit(nogil=True, cache=True, inline="always")
def _insert_by_id(dist, index, value, position):
    """Insert ``(value, position)`` in (distance, id) order; unfilled slots (id -1) last."""
    slot = dist.shape[0] - 1
    while slot > 0 and (
        dist[slot - 1] > value
        or (dist[slot - 1] == value and (index[slot - 1] < 0 or index[slot - 1] > position))
    ):
        dist[slot] = dist[slot - 1]
        index[slot] = index[slot - 1]
        slot -= 1
    dist[slot] = value
    index[slot] = position
