"""What runs on the workers: read a shard, build its index, search it, fit a quantizer.

Every function here is a plain top-level function of arrays, so Dask ships
it by reference (imgclf is installed on the workers). They call the engine's
own indexes and kernels (:class:`~imgclf.neighbors.ExactIndex`,
:class:`~imgclf.neighbors.IVFIndex` and its list scan); nothing is
reimplemented. A shard answers with its local top-k, its rows named by the
ids the caller gave it (global rows, or positions in a fold's training set),
so the client merges shards by ``(distance, id)`` exactly as one process
would break ties.
"""

from __future__ import annotations

import numpy as np

from imgclf.neighbors.search import ExactIndex, as_features

__all__ = [
    "ShardIndex",
    "build_shard",
    "fit_coarse",
    "gather_rows",
    "ivf_probes",
    "read_rows",
    "search_shard",
    "shard_labels",
    "take_rows",
]


def read_rows(reader, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo..hi`` read by the worker from a store, as ``(rows, d)`` features."""
    return as_features(reader(lo, hi), "database")


def take_rows(data: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Rows ``local`` of a shard (queries or a sample, on their way to another task)."""
    return data[local]


def gather_rows(order: np.ndarray, *parts: np.ndarray) -> np.ndarray:
    """The rows several shards sent (each ascending, shards in order), put in ``order``."""
    rows = np.concatenate(parts) if len(parts) != 1 else parts[0]
    return rows[order]


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):  # called outside a worker (tests)
        return 1


class ShardIndex:
    """One shard's index and the ids its rows answer with.

    ``ids (r,)`` ascending, so a tie inside the shard (to the lower local
    row) is a tie to the lower id, the rule the client's merge applies between
    shards. ``index`` is None for a shard with no selected rows.
    """

    def __init__(self, index, ids: np.ndarray, metric: str):
        self.index, self.ids, self.metric = index, ids, metric

    def search(self, queries: np.ndarray, k: int, probes=None) -> tuple[np.ndarray, np.ndarray]:
        """``(dist float64 (m, k'), ids int64 (m, k'))``: unfilled slots are ``(inf, -1)``."""
        m = len(queries)
        if self.index is None:
            return np.empty((m, 0)), np.empty((m, 0), np.int64)
        if probes is None:
            dist, local = self.index.search(queries, min(k, len(self.ids)))
        else:
            # the whole index's probes: lists absent from the shard leave slots unfilled
            dist, local = self.index.search_lists(queries, k, probes)
        ids = np.where(local >= 0, self.ids[np.maximum(local, 0)], -1)
        return np.where(local >= 0, dist, np.inf), ids

    def __len__(self) -> int:
        return len(self.ids)


def _selection(n_rows: int, lo: int, ids) -> tuple[np.ndarray, np.ndarray]:
    """Local rows to index, ordered by the ids they answer with, and those ids."""
    if ids is None:
        return np.arange(n_rows), np.arange(lo, lo + n_rows, dtype=np.int64)
    ids = np.asarray(ids, np.int64)
    local = np.flatnonzero(ids >= 0)
    local = local[np.argsort(ids[local], kind="stable")]
    return local, ids[local]


def build_shard(
    data: np.ndarray,
    lo: int,
    metric: str,
    *,
    ids=None,
    coarse=None,
    labels=None,
    working_memory=None,
    n_jobs=None,
) -> ShardIndex:
    """The index of one shard's rows (``data`` holds database rows ``lo..``).

    Parameters
    ----------
    data : ndarray, shape (r, d)
    lo : int
        The database row of ``data[0]``.
    metric : {"l1", "l2"}
    ids : ndarray of int64, shape (r,), optional
        The id each row answers with, -1 for rows left out (a fold's validation
        rows); default: the database row.
    coarse : CoarseQuantizer, optional
        Build an IVF shard with these cells (``labels``: each selected row's list).
    labels : ndarray of int64, shape (r,), optional
        With ``coarse``: the list of every row of ``data``.
    """
    local, answer_ids = _selection(len(data), lo, ids)
    if not len(local):
        return ShardIndex(None, answer_ids, metric)
    rows = data if len(local) == len(data) and ids is None else data[local]
    limits = {"working_memory": working_memory, "n_jobs": n_jobs or _worker_threads()}
    if coarse is None:
        return ShardIndex(ExactIndex(rows, metric, **limits), answer_ids, metric)
    from imgclf.neighbors.ivf import IVFIndex

    index = IVFIndex.from_cells(rows, coarse, np.asarray(labels, np.int64)[local], metric, **limits)
    return ShardIndex(index, answer_ids, metric)


def search_shard(shard: ShardIndex, queries: np.ndarray, k: int, probes=None):
    """One shard's top-k of ``queries`` (see :meth:`ShardIndex.search`)."""
    return shard.search(queries, k, probes)


def shard_labels(data: np.ndarray, coarse, local=None) -> np.ndarray:
    """The IVF list of each row of a shard (of rows ``local`` only, when given)."""
    return coarse.assign(data if local is None else data[local])


def fit_coarse(sample: np.ndarray, n_lists: int, pca_components, seed: int, metric: str):
    """The coarse quantizer of an IVF index, fitted as :class:`IVFIndex` fits its own."""
    from imgclf._kmeans import kmeans
    from imgclf.neighbors.coarse import CoarseQuantizer

    return CoarseQuantizer.fit(sample, n_lists, pca_components, seed=seed, cluster=kmeans,
                               metric=metric)  # fmt: skip


def ivf_probes(coarse, queries: np.ndarray, n_probe: int, k: int, offsets: np.ndarray):
    """The (query, list) pairs every shard scans: the whole index's, as one process's."""
    return coarse.probes(queries, n_probe, k, offsets)
