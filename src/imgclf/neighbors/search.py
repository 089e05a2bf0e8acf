"""Exact k-nearest-neighbour search in bounded memory.

The engine never builds the full ``n_queries x n_database`` distance matrix.
It walks the database in blocks, asks a kernel (:mod:`imgclf.neighbors.kernels`)
for one block of distances at a time, and folds each block into a running
top-k per query (:func:`~imgclf.neighbors.kernels.topk.merge_block`). Query
blocks run on threads (the kernels release the GIL); when there are fewer
query blocks than threads, as for a single query, the database is split
between threads instead and the partial top-k lists are merged.

Results are exact and deterministic: sorted by distance, ties broken by the
lower database index.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from imgclf._validation import check_choice, check_finite, check_int
from imgclf.neighbors.kernels import PAD, l1, l2, topk
from imgclf.neighbors.pruning import LowerBoundPruner

__all__ = [
    "METRICS",
    "ExactIndex",
    "as_features",
    "as_queries",
    "available_cores",
    "match_queries",
    "one_by_one",
    "padded",
    "pairwise_distances",
    "prunes",
    "search",
]

METRICS = ("l1", "l2")
DEFAULT_WORKING_MEMORY = 256 * 2**20
PRUNE_MAX_QUERIES = 4
PRUNE_MIN_DATABASE = 4096

# metric name -> kernel module; each module serves uint8 and float32 (kernels/__init__.py)
_KERNELS = {"l1": l1, "l2": l2}


def as_features(X, name: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous ``(n, d)`` matrix of uint8 or float32.

    Images ``(n, H, W, C)`` (or any ``ndim > 2``) are flattened; uint8 stays
    uint8, every other numeric type becomes float32. Raises ValueError for
    empty input, a single vector, non-numeric data, NaN or infinity.
    """
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be 2D (n_samples, n_features) or images (n, H, W, C); got shape {X.shape}"
        )
    if X.dtype.kind == "O":  # Python numbers in an object array; NumPy says what won't convert
        X = X.astype(np.float32)
    if X.dtype.kind not in "uifb":
        raise ValueError(f"{name} must be numeric; got dtype {X.dtype}")
    X = X.reshape(X.shape[0], int(np.prod(X.shape[1:])))
    if X.size == 0:
        raise ValueError(f"{name} is empty: shape {X.shape}")
    dtype = np.uint8 if X.dtype == np.uint8 else np.float32
    return check_finite(name, np.ascontiguousarray(X, dtype=dtype))


def padded(X: np.ndarray) -> np.ndarray:
    """uint8 rows with zero columns up to a multiple of PAD, for the SIMD kernels (zeros
    add nothing to L1 or to dot products); float rows as they are: their kernels (BLAS,
    4 x 4 tiles) take any width, and 334 HOG + colour features padded to 384 made every
    float copy and product 15% larger (an IVF index 1.16x the data)."""
    extra = -X.shape[1] % PAD
    return X if extra == 0 or X.dtype != np.uint8 else np.pad(X, ((0, 0), (0, extra)))


class BatchCopy:
    """The kernel's copy of an index's rows that batches search (L2: packed), made on the
    first batch: single queries (the pruner's) read the database itself, so an index that
    only ever answers them holds the rows once. Subclasses set ``_kernel`` and ``_blocks =
    None`` and say which rows, in which order, by ``_batch_rows()``."""

    @property
    def _prepared(self):
        if self._blocks is None:
            self._blocks = self._kernel.prepare(padded(self._batch_rows()))
        return self._blocks

    def make_batch_copy(self):
        """Make the copy batches search now, not on the first batch; returns the index."""
        _ = self._prepared
        return self

    def release_batch_copy(self) -> None:
        """Free the copy (made again by the next batch): a server that answers one image
        at a time then holds the database once."""
        self._blocks = None


@dataclass(frozen=True)
class Kernel:
    """One kernel family bound to one dtype."""

    prepare: object
    block: object
    dist_dtype: type
    query_block: int
    database_block: int
    lean: bool = False  # prepare() keeps no reference to the rows it was given

    @classmethod
    def lookup(cls, metric: str, dtype, *, lean: bool = False) -> Kernel:
        """The kernel for ``metric`` and ``dtype``; ``lean``: one that drops the rows
        after preparing where it can (L2 on uint8 reads only its packed copy)."""
        module = _KERNELS[metric]
        if dtype != np.uint8:
            blocks = (module.QUERY_BLOCK, module.DATABASE_BLOCK)
            return cls(module.prepare_f32, module.block_f32, np.float32, *blocks)
        prepare = module.prepare_u8
        lean = lean and "keep_rows" in inspect.signature(prepare).parameters
        if lean:
            prepare = functools.partial(prepare, keep_rows=False)
        return cls(
            prepare, module.block_u8, np.int32, module.QUERY_BLOCK, module.DATABASE_BLOCK, lean
        )


class ExactIndex(BatchCopy):
    """A database prepared once for many exact searches.

    Parameters
    ----------
    database : array-like, shape (n, d) or (n, H, W, C)
        uint8 pixels (kept as uint8: the fastest kernels want them) or floats.
    metric : {"l2", "l1"}
        Euclidean distance, or the sum of absolute differences.
    working_memory : int, optional
        Bytes the distance blocks may use at once (default 256 MiB).
    n_jobs : int, optional
        Threads; defaults to the cores this process may use.
    """

    def __init__(
        self,
        database,
        metric: str = "l2",
        *,
        working_memory: int | None = None,
        n_jobs: int | None = None,
    ):
        self.metric = check_choice("metric", metric, METRICS)
        self.database = as_features(database, "database")
        self.n_features = self.database.shape[1]
        self.working_memory = check_int(
            "working_memory", working_memory or DEFAULT_WORKING_MEMORY, low=2**16
        )
        self.n_jobs = check_int("n_jobs", n_jobs or available_cores(), low=1)
        self._query_jobs = None  # threads of a single query's cascade: single_query_threads
        self._prepare()

    def _prepare(self) -> None:
        self._pruner = None
        self._kernel = Kernel.lookup(self.metric, self.database.dtype)
        self._blocks = None

    def prunes(self, n_queries: int, k: int) -> bool:
        """Whether :meth:`search` answers ``n_queries`` queries at depth ``k`` one by one
        with the cascade of lower bounds (:func:`prunes`), not with the batch kernels."""
        return prunes(self.database, n_queries, k)

    def search_classes(self, query, k: int, labels, n_top: int):
        """One uint8 ``query`` ``(d,)``'s k nearest rows and the classes a k-NN vote's
        ``n_top`` best need past them, from one cascade
        (:meth:`LowerBoundPruner.search_classes`): ``(distances (k,), rows (k,), classes
        (m',), class distances (m',), class rows (m',))``, distances float64 as
        :meth:`search` gives them.

        The classes are the nearest of those without a row among the k, by each
        one's nearest row (ties: the lower row), as many as make ``n_top`` classes
        with those that have one. ``labels`` ``(n,)``
        int: each database row's class (0..C-1); uint8 databases that prune only.
        """
        row = padded(as_queries(np.asarray(query)[None], self.database, "query"))
        return true_distances(self._single_query_pruner().search_classes(row[0], k, labels, n_top),
                               self.metric)  # fmt: skip

    def single_query_threads(self, n_jobs: int | None) -> None:
        """Threads that share one single query's cascade (None: ``n_jobs``). A server
        that runs one query per worker process wants 1: its other requests, and the
        other workers, keep the other cores busy (on CIFAR-10 at load 4, L2: 0.57 ms
        on one thread, 0.82 ms on two; on a quiet machine the two are within 10%,
        either way from one day to the next)."""
        self._query_jobs = None if n_jobs is None else check_int("n_jobs", n_jobs, low=1)
        if self._pruner is not None and self._pruner.n_jobs != self._pruner_jobs():
            self._pruner = None  # built again, with that many threads

    def _pruner_jobs(self) -> int:
        return self.n_jobs if self._query_jobs is None else self._query_jobs

    def _batch_rows(self) -> np.ndarray:
        return self.database

    def __getstate__(self) -> dict:
        # The prepared database is derived (and holds compiled kernels): pickle the source only.
        derived = ("_kernel", "_blocks", "_pruner")
        return {k: v for k, v in self.__dict__.items() if k not in derived}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._prepare()

    def __len__(self) -> int:
        return len(self.database)

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database rows of every query.

        Parameters
        ----------
        queries : array-like, shape (m, d) or (m, H, W, C)
        k : int, 1 <= k <= len(database)

        Returns
        -------
        distances : ndarray of float64, shape (m, k)
            Ascending; true Euclidean (not squared) for ``"l2"``.
        indices : ndarray of int64, shape (m, k)
            Database rows; ties go to the lower index.
        """
        k = check_int("k", k, low=1, high=len(self))
        queries = padded(as_queries(queries, self.database))
        if prunes(self.database, len(queries), k):
            dist, index = self._pruned(queries, k)
        else:
            dist, index = _Search(self, queries, k).run()
        dist = dist.astype(np.float64)
        return (np.sqrt(dist) if self.metric == "l2" else dist), index

    def _pruned(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        pruner = self._single_query_pruner()
        return one_by_one(lambda _, query: pruner.search(query, k), queries, k)

    def _single_query_pruner(self) -> LowerBoundPruner:
        if self._pruner is None:  # built on first use: batch-only users never pay for it
            self._pruner = LowerBoundPruner(padded(self.database), self.metric, self._pruner_jobs())
        return self._pruner


def true_distances(found: tuple, metric: str) -> tuple:
    """A pruner's ``search_classes`` answer with float64 distances, square roots for L2."""
    dist, rows, classes, class_dist, class_rows = found
    dist, class_dist = dist.astype(np.float64), class_dist.astype(np.float64)
    if metric == "l2":
        dist, class_dist = np.sqrt(dist), np.sqrt(class_dist)
    return dist, rows, classes, class_dist, class_rows


def one_by_one(search_one, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, indices)``, each ``(m, k)`` int64, from ``search_one(i, queries[i])``
    for every query in turn (written in place: no list of small arrays to stack)."""
    dist = np.empty((len(queries), k), np.int64)
    index = np.empty((len(queries), k), np.int64)
    for i, query in enumerate(queries):
        dist[i], index[i] = search_one(i, query)
    return dist, index


def prunes(database: np.ndarray, n_queries: int, k: int) -> bool:
    """Lower-bound pruning pays for a few uint8 queries with a small k in a large database.

    Batches are compute-bound and the blocked kernels win; a few queries are
    bound by reading the database, which pruning mostly avoids.
    """
    return (
        database.dtype == np.uint8
        and n_queries <= PRUNE_MAX_QUERIES
        and len(database) >= PRUNE_MIN_DATABASE
        and k <= len(database) // 64
    )


def as_queries(queries, database: np.ndarray, name: str = "queries") -> np.ndarray:
    """``queries`` as :func:`as_features` makes them, in ``database``'s dtype
    (:func:`match_queries`).

    A block already so (non-empty, C-contiguous, writeable, as wide as the database and
    of its dtype, uint8 or float32 without NaN or infinity) is returned as it is,
    without the general checks: a lone image's search takes ~0.4 ms, and right after
    one (caches cold, the search's helper thread still finishing) those checks took
    ~35 us of it (CIFAR-10, L2; ~25 us of a HOG + colour query's ~0.3 ms).
    """
    if (
        type(queries) is np.ndarray
        and queries.dtype == database.dtype
        and queries.ndim == 2
        and queries.shape[0] > 0
        and queries.shape[1] == database.shape[1]
        and queries.flags.c_contiguous
        and queries.flags.writeable
        and (queries.dtype == np.uint8 or (queries.dtype == np.float32 and _finite(queries)))
    ):
        return queries
    return match_queries(as_features(queries, name), database)


def _finite(values: np.ndarray) -> bool:
    """Whether float ``values`` hold no NaN or infinity: their sum is finite unless one is
    not, or it overflowed (then the slower check decides)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(values, axis=None)))


def match_queries(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """``queries`` (from :func:`as_features`) in the database's dtype; widths must agree."""
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} features but the database has {database.shape[1]}"
        )
    if queries.dtype == database.dtype:
        # numba compiles every kernel again for read-only arrays (Pillow decodes into them):
        # a copy of a few queries costs far less than 10-20 s of compiling
        return queries if queries.flags.writeable else queries.copy()
    if queries.dtype == np.uint8:
        return queries.astype(database.dtype)
    return _float_queries_on_uint8(queries)


def _float_queries_on_uint8(queries: np.ndarray) -> np.ndarray:
    # Float queries against a uint8 database are exact only if they are byte values.
    if np.array_equal(queries, np.clip(np.rint(queries), 0, 255)):
        return queries.astype(np.uint8)
    raise ValueError(
        "queries are float with non-integer or out-of-range values but the "
        "database is uint8; convert both to float32"
    )


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def database_block_rows(index) -> int:
    """Database rows per kernel call: the kernel's preference, within the working memory
    that ``index.n_jobs`` threads share (one distance block each)."""
    kernel = index._kernel
    itemsize = np.dtype(kernel.dist_dtype).itemsize
    budget_rows = index.working_memory // (index.n_jobs * itemsize * kernel.query_block)
    return int(max(16, min(kernel.database_block, budget_rows)))


def one_blas_thread_each(index):
    """Float kernels call BLAS; our threads already fill the cores, so BLAS must not
    start its own on top (oversubscription halves the speed). uint8 kernels need no BLAS."""
    if index.n_jobs == 1 or index.database.dtype == np.uint8:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class _Search:
    """One call of :meth:`ExactIndex.search`: plans blocks, runs them on threads."""

    def __init__(self, index: ExactIndex, queries: np.ndarray, k: int):
        self.index, self.queries, self.k = index, queries, k
        self.db_block = database_block_rows(index)
        self.q_block = index._kernel.query_block

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        n_db, m = len(self.index), len(self.queries)
        query_starts = range(0, m, self.q_block)
        ranges = self._database_ranges(len(query_starts), n_db)
        tasks = [(q, lo, hi) for q in query_starts for lo, hi in ranges]
        if len(tasks) == 1:  # (a few queries in a small database: a pool would cost more)
            return self._combine([self._task(*tasks[0])], 1)
        with one_blas_thread_each(self.index), ThreadPoolExecutor(self.index.n_jobs) as pool:
            results = list(pool.map(lambda task: self._task(*task), tasks))
        return self._combine(results, len(ranges))

    def _database_ranges(self, n_query_blocks: int, n_db: int) -> list[tuple[int, int]]:
        """All of the database, or one slice per idle thread when queries are few."""
        parts = max(1, min(self.index.n_jobs // n_query_blocks, n_db // self.db_block))
        edges = np.linspace(0, n_db, parts + 1).astype(int)
        return list(zip(edges[:-1], edges[1:], strict=True))

    def _task(self, q_start: int, lo: int, hi: int):
        """Top-k of one query block over database rows ``lo..hi``."""
        queries = self.queries[q_start : q_start + self.q_block]
        kernel, m = self.index._kernel, len(queries)
        block = np.empty((m, self.db_block), kernel.dist_dtype)
        best = np.full((m, self.k), worst_distance(kernel.dist_dtype), kernel.dist_dtype)
        best_index = np.full((m, self.k), -1, np.int64)
        for start in range(lo, hi, self.db_block):
            stop = min(start + self.db_block, hi)
            kernel.block(queries, self.index._prepared, start, stop, block)
            topk.merge_block(block, m, stop - start, start, best, best_index)
        return best, best_index

    def _combine(self, results: list, n_ranges: int):
        if n_ranges > 1:
            results = [
                topk.merge_sorted(results[i : i + n_ranges], self.k)
                for i in range(0, len(results), n_ranges)
            ]
        return (np.concatenate([d for d, _ in results]), np.concatenate([i for _, i in results]))


def worst_distance(dtype) -> float | int:
    return np.iinfo(dtype).max if np.dtype(dtype).kind == "i" else np.inf


def search(
    queries,
    database,
    k: int,
    metric: str = "l2",
    *,
    working_memory: int | None = None,
    n_jobs: int | None = None,
):
    """Exact k-nearest neighbours of each query in ``database``.

    Parameters
    ----------
    queries : array-like, shape (m, d) or (m, H, W, C)
    database : array-like, shape (n, d) or (n, H, W, C)
        uint8 or float (float64 is converted to float32).
    k : int
        Neighbours per query, ``1 <= k <= n``.
    metric : {"l2", "l1"}
    working_memory : int, optional
        Byte budget of the distance blocks (default 256 MiB).
    n_jobs : int, optional
        Threads (default: all available cores).

    Returns
    -------
    distances : ndarray of float64, shape (m, k)
    indices : ndarray of int64, shape (m, k)

    Examples
    --------
    >>> import numpy as np
    >>> db = np.array([[0, 0], [3, 4], [1, 0]], dtype=np.uint8)
    >>> dist, idx = search(np.array([[0, 0]], np.uint8), db, k=2)
    >>> dist.tolist(), idx.tolist()
    ([[0.0, 1.0]], [[0, 2]])
    """
    index = ExactIndex(database, metric, working_memory=working_memory, n_jobs=n_jobs)
    return index.search(queries, k)


def pairwise_distances(queries, database, metric: str = "l2") -> np.ndarray:
    """Every query-to-database distance, ``(m, n)`` float64: for small sets and pictures.

    Uses the same exact kernels as :func:`search` (it is a search with k = n,
    put back in database order), so it needs ``m x n`` memory.
    """
    index = ExactIndex(database, metric)
    dist, order = index.search(queries, len(index))
    full = np.empty_like(dist)
    np.put_along_axis(full, order, dist, axis=1)
    return full
