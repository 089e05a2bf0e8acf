"""An inverted-file (IVF) index: approximate k-NN that reads a few lists, not the database.

Build. A coarse quantizer cuts the space into ``n_lists`` cells: images are
projected on their first principal components (PCA on a sample: at 3,072
CIFAR dimensions 64 components keep 87% of the variance, make k-means 30x
faster, and lose no recall at a given scan fraction), and k-means on a sample
gives one centroid per cell. Every database row goes to the list of its
nearest centroid; the lists are stored one after another, so each is one
contiguous range of rows that the exact kernels scan like a small database.

Search. A query's ``n_probe`` nearest centroids name the lists to scan (for L1
over at most 1,024 features, the lists whose medians are nearest in L1: see
:mod:`imgclf.neighbors.coarse`). The
distances inside them are computed by the exact uint8/float32 kernels in the
original space, so every returned distance is a true L1 or L2 distance; only
neighbours in lists that were not probed can be missed (recall < 1). Batches
are processed list by list: all queries that probe a list are one block for the
kernel, which reads the list once for all of them. Results are sorted by
distance, ties to the lower database index, as in :class:`ExactIndex`; a query
whose probed lists hold fewer than ``k`` rows probes further lists, nearest
first, so every query gets ``k`` neighbours.

Float features (HOG + colour) are scanned as uint8 codes by default
(:mod:`imgclf.neighbors.scalar_codes`: one shared step, so code distances keep
the features' proportions up to rounding): a quarter of the bytes, and the
uint8 kernels. The best ``2 k`` codes of each query are then measured on the
float rows (:mod:`imgclf.neighbors.kernels.candidates`) and the best ``k``
returned, with their true distances. The rounding can cost a neighbour
whose code ranks past ``2 k``: recall@10 on HOG + colour features moved by
less than 0.001 at every setting measured. For L2 the codes are of the rows'
leading principal components where a sample shows that enough directions
rank neighbours as well (:mod:`imgclf.neighbors.projected_codes`; HOG +
colour: 128 code bytes, not 352), and the best ``3 k`` are measured: recall@10
0.9548 against 0.9550 at n_probe 96, 1.17x the batch queries a second and
single queries in 0.17 ms, not 0.27.

Deterministic for a fixed seed and thread count.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imgclf._kmeans import kmeans
from imgclf._validation import check_choice, check_int
from imgclf.neighbors.coarse import CoarseQuantizer, checked_pca_components
from imgclf.neighbors.kernels import l2, row_dtype, topk
from imgclf.neighbors.kernels.candidates import best_candidates
from imgclf.neighbors.kernels.ranges import scan_ranges_f32, scan_ranges_u8
from imgclf.neighbors.kernels.rows import SIMD_ROW_BYTES
from imgclf.neighbors.projected_codes import RERANK_FACTOR as PROJECTED_RERANK_FACTOR
from imgclf.neighbors.projected_codes import ProjectedCodes, checked_code_dims
from imgclf.neighbors.pruning import LowerBoundPruner
from imgclf.neighbors.scalar_codes import ScalarCodes
from imgclf.neighbors.search import (
    DEFAULT_WORKING_MEMORY,
    METRICS,
    PRUNE_MAX_QUERIES,
    BatchCopy,
    Kernel,
    as_features,
    as_queries,
    available_cores,
    database_block_rows,
    one_blas_thread_each,
    one_by_one,
    padded,
    prunes,
    true_distances,
    worst_distance,
)

__all__ = [
    "IVFIndex",
    "ProbedCells",
    "checked_n_probe",
    "default_n_lists",
    "default_n_probe",
    "labels_from_layout",
]

TRAIN_PER_LIST = 40  # k-means sample: 40 points per centroid (faiss warns below 39)
MIN_LIST_QUERIES = 1  # below this many queries per thread, threads split the lists instead
# the bound of single queries, within the index's 1.1x memory; no first bound (see _pruned).
# L2: 127 axes and the residual, int16, 256 bytes a row: four whole cache lines, and 9-15%
# faster a query than 96 numbers (fewer exact distances); 120 or 124 gained 6%. L1: 192
# sums of 16 features, uint8 (the next size, 384 sums of 8, would not fit).
SINGLE_QUERY_SECOND_DIMS = {"l2": 128, "l1": 192}
# float features scanned as uint8 codes: the best RERANK_FACTOR * k codes are measured exactly
# (codes of principal components rank less well, missing the residual: projected_codes' 3 k)
RERANK_FACTOR = 2


def default_n_lists(n: int) -> int:
    """``round(4 sqrt(n))`` lists, at most ``n``: 894 for 50,000 rows.

    On CIFAR-10 pixels this scans ~5% of the rows at recall@10 0.95, against
    ~9% with ``sqrt(n)`` lists, and the lists, ~56 rows each, are still long
    enough for the blocked kernels (benchmarks/bench_ann.py).
    """
    return max(1, min(n, round(4 * math.sqrt(n))))


def checked_n_probe(value, n_lists: int) -> int:
    """``value`` as lists to probe: an int >= 1 (else ValueError); more than ``n_lists`` is
    clamped to ``n_lists``, with a warning."""
    value = check_int("n_probe", value, low=1)
    if value > n_lists:
        warnings.warn(
            f"n_probe={value} is more than the index's {n_lists} lists; "
            f"using n_probe={n_lists} (every list)",
            stacklevel=3,
        )
    return min(value, n_lists)


def default_n_probe(n_lists: int) -> int:
    """``n_lists / 28`` (at least 1): 32 of 894 lists, recall@10 about 0.95 on CIFAR-10."""
    return max(1, round(n_lists / 28))


class ProbedCells:
    """``n_lists`` (of ``self.coarse``) and a settable ``n_probe``, checked and clamped as
    :func:`checked_n_probe` says: what every index over inverted lists shares
    (:class:`IVFIndex`, :class:`~imgclf.neighbors.StreamedIndex`,
    :class:`~imgclf.distributed.ShardedIndex`)."""

    @property
    def n_lists(self) -> int:
        return self.coarse.n_lists

    @property
    def n_probe(self) -> int:
        """Lists searched per query: ``1..n_lists`` (larger values are clamped, with a warning)."""
        return self._n_probe

    @n_probe.setter
    def n_probe(self, value: int) -> None:
        self._n_probe = checked_n_probe(value, self.n_lists)


class IVFIndex(ProbedCells, BatchCopy):
    """Approximate k-nearest-neighbour search over inverted lists.

    Parameters
    ----------
    database : array-like, shape (n, d) or (n, H, W, C)
        uint8 pixels or float features (as :class:`ExactIndex`).
    metric : {"l2", "l1"}
        Distances are exact in this metric; the coarse cells are Euclidean.
    n_lists : int, optional
        Cells of the coarse quantizer (default :func:`default_n_lists`).
    n_probe : int, optional
        Lists searched per query (default :func:`default_n_probe`); settable
        after the build. More lists: higher recall, slower search.
    seed : int, default=0
        Seeds the training sample, the PCA and k-means.
    pca_components : int, "auto" or None, default="auto"
        Dimensions of the coarse space (principal directions of a sample): ``"auto"``
        64 for rows wider than 1,024 numbers (images), else 96
        (:func:`~imgclf.neighbors.coarse.coarse_dims`); ``None`` (or ``>= d``)
        clusters the raw features.
    quantize : bool, optional
        Float features only (default: yes): scan the lists as uint8 codes
        (:class:`~imgclf.neighbors.scalar_codes.ScalarCodes`) and re-rank the best
        ``2 k`` of them by their true distances. A quarter of the bytes, and the uint8
        kernels: on HOG + colour features of CIFAR-10, ~1.2-1.6x (L2) and ~1.9x (L1)
        the queries a second at the same recall, and single queries in ~0.3-0.4 ms
        (float: 0.65). ``False``: the float kernels measure every row (with
        ``n_probe = n_lists``, an exact search).
    code_dims : int, "auto" or None, default="auto"
        L2 over float features only: codes of the rows' first ``code_dims`` principal
        components (:class:`~imgclf.neighbors.projected_codes.ProjectedCodes`), the
        best ``3 k`` re-ranked. ``"auto"``: as many directions as a sample shows rank
        neighbours well (:meth:`~imgclf.neighbors.projected_codes.ProjectedCodes.fit_auto`;
        128 of HOG + colour's 334), else plain codes; ``None`` or ``>= d``: plain codes.
    working_memory, n_jobs : as :class:`ExactIndex`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> db = rng.integers(0, 256, (1000, 48), dtype=np.uint8)
    >>> index = IVFIndex(db, "l2", n_lists=10, n_probe=10)   # every list: exact
    >>> index.search(db[:2], k=1)[1].tolist()
    [[0], [1]]
    """

    def __init__(
        self,
        database,
        metric: str = "l2",
        n_lists: int | None = None,
        n_probe: int | None = None,
        *,
        seed: int = 0,
        pca_components: int | str | None = "auto",
        quantize: bool | None = None,
        code_dims: int | str | None = "auto",
        working_memory: int | None = None,
        n_jobs: int | None = None,
    ):
        pca_components = checked_pca_components(pca_components)  # before the work
        code_dims = checked_code_dims(code_dims)
        self._setup(database, metric, working_memory, n_jobs)
        self.seed = check_int("seed", seed, low=0)
        self._codes = self._fit_codes(quantize, code_dims)
        n = len(self.database)
        n_lists = check_int("n_lists", default_n_lists(n) if n_lists is None else n_lists, low=1)
        if n_lists > n:
            noun = "sample" if n == 1 else "samples"
            raise ValueError(
                f"the database has {n} {noun}, fewer than n_lists={n_lists}: use "
                f"n_lists <= {n} (the default for {n} {noun}: {default_n_lists(n)})"
            )
        self.coarse = CoarseQuantizer.fit(
            self._training_sample(n_lists), n_lists, pca_components, seed=self.seed,
            cluster=kmeans, metric=self.metric,
        )  # fmt: skip
        self._store(self.coarse.assign(self.database))
        self.n_probe = default_n_probe(n_lists) if n_probe is None else n_probe

    def _setup(self, database, metric, working_memory, n_jobs) -> None:
        self.metric = check_choice("metric", metric, METRICS)
        self.database = as_features(database, "database")
        self.n_features = self.database.shape[1]
        self.working_memory = check_int(
            "working_memory", working_memory or DEFAULT_WORKING_MEMORY, low=2**16
        )
        self.n_jobs = check_int("n_jobs", n_jobs or available_cores(), low=1)
        self._kernel = Kernel.lookup(self.metric, self.database.dtype, lean=True)
        self._pruner = None

    def _quantizes(self, quantize: bool | None) -> bool:
        if quantize is not None and not isinstance(quantize, bool | np.bool_):
            raise TypeError(f"quantize must be True, False or None, got {quantize!r}")
        return self.database.dtype == np.float32 and quantize is not False

    def _fit_codes(self, quantize, code_dims) -> ScalarCodes | ProjectedCodes | None:
        """The codes a quantized index scans (see ``quantize`` and ``code_dims``)."""
        if not self._quantizes(quantize):
            return None
        if isinstance(code_dims, int) and self.metric != "l2":
            raise ValueError(
                f"code_dims={code_dims} projects codes for metric='l2' only (a rotation "
                "keeps Euclidean distances, not L1 ones); use code_dims='auto' or None"
            )
        if code_dims == "auto" and self.metric == "l2":
            projected = ProjectedCodes.fit_auto(self.database, seed=self.seed)
        elif isinstance(code_dims, int) and code_dims < self.n_features:
            projected = ProjectedCodes.fit(self.database, code_dims, seed=self.seed)
        else:
            projected = None
        return projected or ScalarCodes.fit(self.database)

    def _training_sample(self, n_lists: int) -> np.ndarray:
        n = len(self.database)
        size = min(n, TRAIN_PER_LIST * n_lists)
        rows = np.sort(np.random.default_rng(self.seed).choice(n, size, replace=False))
        return self.database[rows]

    def _store(self, labels: np.ndarray) -> None:
        """Lay the rows out list by list (ids ascending within a list) and prepare the kernel."""
        self.ids = np.argsort(labels, kind="stable").astype(row_dtype(len(labels)))
        counts = np.bincount(labels, minlength=self.n_lists)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._blocks = None
        self._lay_out_batch()
        self._scan = None if self._codes is None else self._code_index()

    def _lay_out_batch(self) -> None:
        """Where each list starts in the batch copy (``_starts``) and which row each copy
        row is (``_batch_ids``): here the lists one after another, as ``ids`` says."""
        self._starts, self._batch_ids = self.offsets[:-1], self.ids

    def _code_index(self) -> _CodeLists:
        """The same lists over the uint8 codes of the rows: what a quantized index scans."""
        # in list order (each list one range of rows: a single query streams its lists),
        # so its rows are positions in self.ids
        return _CodeLists(self._encoded(self.database, order=self.ids), self)

    def _encoded(self, rows: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
        """The codes of ``rows`` (``rows[order]``), zero-padded to whole SIMD chunks
        (:data:`~imgclf.neighbors.kernels.rows.SIMD_ROW_BYTES`: 334 HOG + colour
        features to 352), which single queries measure by ``vpmaddwd`` / ``vpsadbw``."""
        width = -(-self._codes.n_dims // SIMD_ROW_BYTES) * SIMD_ROW_BYTES
        return self._codes.encode(rows, order=order, width=width)

    def _batch_rows(self) -> np.ndarray:
        return self.database[self.ids]  # list by list: each list one range of the copy

    def __getstate__(self) -> dict:
        # The prepared lists are derived (and may hold a zero-stride stand-in): pickle the layout.
        derived = ("_kernel", "_blocks", "_pruner", "_scan")
        return {k: v for k, v in self.__dict__.items() if k not in derived}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kernel = Kernel.lookup(self.metric, self.database.dtype, lean=True)
        self._pruner = None
        self._blocks = None
        self._scan = None if self._codes is None else self._code_index()

    # --- the model-file form ----------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The built index as plain arrays: coarse quantizer, list order and list offsets,
        and the codes' ``low`` and ``step`` when it scans codes."""
        codes = {} if self._codes is None else self._codes.to_arrays()
        return {**self.coarse.to_arrays(), "ids": self.ids, "offsets": self.offsets, **codes}

    @classmethod
    def from_arrays(
        cls,
        database,
        arrays: dict,
        metric: str = "l2",
        *,
        n_probe: int | None = None,
        seed: int | None = None,
        working_memory: int | None = None,
        n_jobs: int | None = None,
    ) -> IVFIndex:
        """Rebuild an index saved by :meth:`to_arrays` over the same ``database``, without
        training; raises ValueError naming the array that does not fit. ``seed``: the
        one the index was built with, if known (it is not among the arrays)."""
        index = cls.__new__(cls)
        index._setup(database, metric, working_memory, n_jobs)
        index.seed = None if seed is None else check_int("seed", seed, low=0)
        index.coarse = CoarseQuantizer.from_arrays(arrays, index.n_features)
        index._codes = ProjectedCodes.from_arrays(arrays, index.n_features)
        index._codes = index._codes or ScalarCodes.from_arrays(arrays, index.n_features)
        if index._codes is not None and index.database.dtype != np.float32:
            raise ValueError("ivf arrays 'code_low' and 'code_step' are for float features")
        labels = labels_from_layout(arrays, len(index.database), index.coarse.n_lists)
        index._store(labels)
        index.n_probe = default_n_probe(index.n_lists) if n_probe is None else n_probe
        return index

    @classmethod
    def from_cells(
        cls, rows, coarse: CoarseQuantizer, labels, metric: str = "l2", **limits
    ) -> IVFIndex:
        """An index of some rows of a larger one, in its cells: ``labels (r,)`` is each
        row's list. Searched by :meth:`search_lists` with the larger index's probes (a
        shard of :class:`~imgclf.distributed.ShardedIndex`, a block of
        :class:`~imgclf.neighbors.StreamedIndex`). ``limits``: ``working_memory``, ``n_jobs``."""
        labels = np.asarray(labels, np.int64)
        layout = {
            **coarse.to_arrays(),
            "ids": np.argsort(labels, kind="stable").astype(row_dtype(len(labels))),
            "offsets": np.concatenate(
                [[0], np.cumsum(np.bincount(labels, minlength=coarse.n_lists))]
            ).astype(np.int64),
        }
        return cls.from_arrays(rows, layout, metric, n_probe=1, **limits)

    def __len__(self) -> int:
        return len(self.database)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds beyond the database it was given: the lists' copy for
        batches and the summaries for single queries, once each has been made."""
        own = [*(self._blocks or ()), *self.to_arrays().values()]
        own += [] if self._batch_ids is self.ids else [self._batch_ids]
        codes = 0 if self._scan is None else self._scan.nbytes
        return _held_bytes(own) + codes + (0 if self._pruner is None else self._pruner.nbytes)

    def make_batch_copy(self) -> IVFIndex:
        """Make the copy batches scan (of the codes, when quantized) now; returns the index."""
        if self._scan is None:
            return super().make_batch_copy()
        self._scan.make_batch_copy()
        return self

    def release_batch_copy(self) -> None:
        if self._scan is None:
            return super().release_batch_copy()
        self._scan.release_batch_copy()

    # --- search ---------------------------------------------------------------------------

    def prunes(self, n_queries: int, k: int) -> bool:
        """Whether :meth:`search` answers ``n_queries`` queries at depth ``k`` one by one
        with the cascade of lower bounds over the probed lists (as :class:`ExactIndex`)."""
        return prunes(self.database, n_queries, k)

    def single_query_threads(self, n_jobs: int | None) -> None:
        """As :meth:`ExactIndex.single_query_threads`; the probed lists of one query are
        searched on one thread whatever is asked (a few thousand rows: done before a
        second thread would start)."""
        if n_jobs is not None:
            check_int("n_jobs", n_jobs, low=1)

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows among the probed lists; same contract as
        :meth:`ExactIndex.search` (float64 true distances, int64 indices, ``(m, k)``)."""
        k = check_int("k", k, low=1, high=len(self))
        queries = as_queries(queries, self.database)
        if self._scan is not None:
            return self._reranked(queries, k)
        if prunes(self.database, len(queries), k):
            dist, index = self._pruned(queries, k)
        else:
            probes = self.coarse.probes(queries, self.n_probe, k, self.offsets, self.n_jobs)
            dist, index = _ListSearch(self, padded(queries), probes, k).run()
        dist = dist.astype(np.float64)
        return (np.sqrt(dist) if self.metric == "l2" else dist), index

    def search_lists(self, queries, k: int, probes) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of the given lists: the scan step of :meth:`search` alone.

        For an index that holds a part of a larger one's rows in the same cells (a
        shard of :class:`imgclf.distributed.ShardedIndex`): the larger index picks
        the lists (:meth:`CoarseQuantizer.probes`) and every part scans them.

        Parameters
        ----------
        queries : array-like, shape (m, d)
        k : int
        probes : (pair_query, pair_list), int64 arrays of equal length
            The (query row, list) pairs to scan, sorted by query.

        Returns
        -------
        distances : ndarray of float64, shape (m, k)
            True distances, ascending; ``inf`` where the lists held fewer than k rows.
        indices : ndarray of int64, shape (m, k)
            Database rows, ``-1`` in the unfilled slots.
        """
        k = check_int("k", k, low=1)
        queries = as_queries(queries, self.database)
        if self._scan is not None:
            return self._reranked(queries, k, probes)
        dist, index = _ListSearch(self, padded(queries), probes, k).run()
        dist = dist.astype(np.float64)
        dist = np.sqrt(dist) if self.metric == "l2" else dist
        return np.where(index >= 0, dist, np.inf), index

    def _reranked(self, queries: np.ndarray, k: int, probes=None) -> tuple[np.ndarray, np.ndarray]:
        """Scan the probed lists' codes for ``2 k`` candidates a query; the ``k`` best of
        them by true distance (``inf`` / -1 where the lists held fewer than ``k`` rows).
        ``probes``: as :meth:`search_lists` (default: this index's ``n_probe`` nearest)."""
        projected = isinstance(self._codes, ProjectedCodes)
        depth = (PROJECTED_RERANK_FACTOR if projected else RERANK_FACTOR) * k
        codes = self._encoded(queries)
        if probes is None and len(queries) <= PRUNE_MAX_QUERIES:
            candidates = self._few_codes(queries, codes, depth)
        else:
            if probes is None:
                probes = self.coarse.probes(queries, self.n_probe, depth, self.offsets, self.n_jobs)
            _, candidates = _ListSearch(self._scan, padded(codes), probes, depth).run()
        candidates = np.where(candidates >= 0, self.ids[np.maximum(candidates, 0)], -1)
        return best_candidates(self.database, queries, candidates, k, self.metric, self.n_jobs)

    def _few_codes(self, queries: np.ndarray, codes: np.ndarray, depth: int) -> np.ndarray:
        """A few queries' ``depth`` nearest codes in their probed lists, a query at a time
        (:func:`~imgclf.neighbors.kernels.ranges.scan_ranges_u8`: ~0.18 ms for ~6,700
        HOG + colour rows by ``vpmaddwd``, 0.32 by plain loops; a block kernel call per
        list took 2 ms, and the cascade of lower bounds, whose group sums bound HOG
        codes loosely, 1.8 ms)."""
        rows, squared = self._scan.database, self.metric == "l2"
        candidates = np.full((len(queries), depth), -1, np.int64)
        for i, query in enumerate(queries):
            ranges = self.coarse.probed_ranges(query, self.n_probe, depth, self.offsets)
            best = np.full(depth, np.iinfo(np.int32).max, np.int32)
            scan_ranges_u8(codes[i], rows, ranges, squared, best, candidates[i])
        return candidates

    def _pruned(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """A few uint8 queries: the exact cascade of lower bounds over the probed lists only.

        The pruner keeps its summaries in list order (so each probed list is one
        range of rows) and only the second stage, smaller than the exact index's
        (6% of the data): every probed row gets that bound, the lists read in
        order. The rows of the probed lists are near the query: half of them
        passed the first stage, whose bounds, and the second bounds of those
        scattered rows, cost more (CIFAR-10: ~15% slower a query). Built on the
        first such query, as :class:`ExactIndex` does. One thread: the rows are
        done before a second thread would start.
        """
        pruner = self._single_query_pruner()

        def search_one(i: int, query: np.ndarray):
            ranges = self.coarse.probed_ranges(queries[i], self.n_probe, k, self.offsets)
            return pruner.search_ranges(query, k, ranges)

        return one_by_one(search_one, padded(queries), k)

    def _single_query_pruner(self) -> LowerBoundPruner:
        if self._pruner is None:
            self._pruner = LowerBoundPruner(
                padded(self.database),
                self.metric,
                n_jobs=1,
                first_stage=False,
                second_dims=SINGLE_QUERY_SECOND_DIMS[self.metric],
                order=self.ids,
            )
        return self._pruner

    def search_classes(self, query, k: int, labels, n_top: int):
        """As :meth:`ExactIndex.search_classes`, among the rows of the lists the query
        probes: its k nearest there, and the nearest classes without one of them
        there, in one cascade. The classes come in the order a deeper search of this
        index gives them, as long as the probed lists hold as many rows as it would
        need (thousands, by default); fewer when the lists hold fewer classes."""
        query = as_queries(np.asarray(query)[None], self.database, "query")
        ranges = self.coarse.probed_ranges(query[0], self.n_probe, k, self.offsets)
        found = self._single_query_pruner().search_classes(
            padded(query)[0], k, labels, n_top, ranges
        )
        return true_distances(found, self.metric)


class _CodeLists(IVFIndex):
    """The lists of a quantized :class:`IVFIndex` over its rows' uint8 codes, each list
    starting on a panel of the L2 kernel (:func:`~imgclf.neighbors.kernels.l2.panel_rows`,
    64 rows with VNNI). The kernel computes whole panels at fixed positions: a list of
    ~56 rows placed anywhere touches two panels, 128 rows of work, and one that starts
    on a panel boundary mostly one. The gaps cost a quarter more bytes of codes; the
    scan of HOG + colour codes is ~1.5x faster (L1's kernel has no panels: no gaps).
    Its database is the codes in the owner's list order (:meth:`IVFIndex._code_index`),
    so the rows it returns are positions in the owner's ``ids``. It shares the owner's
    coarse quantizer but never uses it: the owner picks the lists it scans."""

    def __init__(self, codes: np.ndarray, owner: IVFIndex):
        self._setup(codes, owner.metric, owner.working_memory, owner.n_jobs)
        self.seed, self.coarse, self._codes = owner.seed, owner.coarse, None
        self._store(np.repeat(np.arange(owner.n_lists), np.diff(owner.offsets)))
        self._n_probe = 1

    @property
    def nbytes(self) -> int:
        """The codes, their batch copy and the lists' layout (the coarse step is the owner's)."""
        own = [self.database, self.ids, self.offsets, *(self._blocks or ())]
        return _held_bytes(own + ([] if self._batch_ids is self.ids else [self._batch_ids]))

    def _lay_out_batch(self) -> None:
        panel = l2.panel_rows() if self.metric == "l2" else 1
        if panel == 1:  # no panels: the lists one after another, as any index lays them
            return super()._lay_out_batch()
        counts = np.diff(self.offsets)
        padded_counts = -(-counts // panel) * panel
        self._starts = np.concatenate([[0], np.cumsum(padded_counts)[:-1]]).astype(np.int64)
        lists = np.repeat(np.arange(len(counts)), counts)
        place = np.arange(len(self.ids)) - self.offsets[lists] + self._starts[lists]
        self._batch_ids = np.full(int(padded_counts.sum()), -1, self.ids.dtype)
        self._batch_ids[place] = self.ids

    def _batch_rows(self) -> np.ndarray:
        rows = np.zeros((len(self._batch_ids), self.n_features), self.database.dtype)
        held = self._batch_ids >= 0
        rows[held] = self.database[self._batch_ids[held]]
        return rows


def _held_bytes(values) -> int:
    """Bytes of the arrays among ``values`` (a prepared kernel's fields may be numbers);
    a zero-stride stand-in (a lean kernel's dropped rows) holds none."""
    return sum(a.nbytes for a in values if isinstance(a, np.ndarray) and 0 not in a.strides)


def _narrowest(values: np.ndarray, limit: int) -> np.ndarray:
    """``values`` (all below ``limit``) as uint16 where they fit: NumPy's stable argsort
    of 16-bit integers is a radix sort (1.3 million probes of 894 lists: ~10x faster)."""
    return values.astype(np.uint16) if limit <= 1 << 16 else values


def labels_from_layout(arrays: dict, n: int, n_lists: int) -> np.ndarray:
    """The list of every row, from saved ``ids`` / ``offsets``; checks they are a layout."""
    ids, offsets = arrays.get("ids"), arrays.get("offsets")
    if not isinstance(ids, np.ndarray) or ids.shape != (n,) or ids.dtype.kind not in "iu":
        raise ValueError(f"ivf array 'ids' must be {n} integers (one per database row)")
    if not isinstance(offsets, np.ndarray) or offsets.shape != (n_lists + 1,):
        raise ValueError(f"ivf array 'offsets' must hold {n_lists + 1} integers")
    if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 0):
        raise ValueError(f"ivf array 'offsets' must rise from 0 to {n}")
    if ids.min() < 0 or ids.max() >= n or np.bincount(ids, minlength=n).max() != 1:
        raise ValueError(f"ivf array 'ids' must be a permutation of 0..{n - 1}")
    labels = np.empty(n, np.int64)
    labels[ids] = np.repeat(np.arange(n_lists), np.diff(offsets))
    return labels


class _ListSearch:
    """One :meth:`IVFIndex.search` call: groups (query, list) pairs by list, runs threads.

    Queries are split between threads; with fewer queries than threads (one
    image), the probed lists are split instead and the partial top-k merged.
    """

    def __init__(self, index: IVFIndex, queries: np.ndarray, probes, k: int):
        self.index, self.queries, self.k = index, queries, k
        self.pair_query, self.pair_list = probes
        self.db_block = database_block_rows(index)

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        m, jobs = len(self.queries), self.index.n_jobs
        if m <= PRUNE_MAX_QUERIES:  # an image or two: a pool and BLAS limits cost more
            if self.index.database.dtype == np.float32:
                return self._few_float()
            return self._task(0, m, 0, 1)
        query_parts = max(1, min(jobs, m // MIN_LIST_QUERIES))
        list_parts = max(1, jobs // query_parts)
        edges = np.linspace(0, m, query_parts + 1).astype(int)
        tasks = [
            (lo, hi, p, list_parts)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
            for p in range(list_parts)
        ]
        with one_blas_thread_each(self.index), ThreadPoolExecutor(jobs) as pool:
            results = list(pool.map(lambda task: self._task(*task), tasks))
        if list_parts > 1:
            results = [
                topk.merge_sorted(results[i : i + list_parts], self.k)
                for i in range(0, len(results), list_parts)
            ]
        return np.concatenate([d for d, _ in results]), np.concatenate([i for _, i in results])

    def _few_float(self) -> tuple[np.ndarray, np.ndarray]:
        """A few float queries: each one's probed rows in one compiled pass
        (:func:`~imgclf.neighbors.kernels.ranges.scan_ranges_f32`), not a block
        kernel call per list."""
        index, m = self.index, len(self.queries)
        prepared, squared = index._prepared, index.metric == "l2"
        rows = prepared.database if squared else prepared.rows
        norms = prepared.norms if squared else np.zeros(0, np.float32)
        best = np.full((m, self.k), np.inf, np.float32)
        best_index = np.full((m, self.k), -1, np.int64)
        for i in range(m):
            lists = self.pair_list[self.pair_query == i]
            ranges = np.stack([index.offsets[lists], index.offsets[lists + 1]], axis=1)
            scan_ranges_f32(self.queries[i], rows, norms, ranges, index.ids, squared,
                            best[i], best_index[i])  # fmt: skip
        return best, best_index

    def _task(self, q_lo: int, q_hi: int, part: int, n_parts: int):
        """Top-k of queries ``q_lo..q_hi`` over every ``n_parts``-th of their probed lists."""
        kernel = self.index._kernel
        lo_pair, hi_pair = np.searchsorted(self.pair_query, [q_lo, q_hi])
        lists = self.pair_list[lo_pair:hi_pair]
        order = np.argsort(_narrowest(lists, self.index.n_lists), kind="stable")
        local_query = self.pair_query[lo_pair:hi_pair][order] - q_lo
        starts = np.flatnonzero(np.diff(lists[order], prepend=-1))
        bounds = np.append(starts, len(order))
        best = np.full((q_hi - q_lo, self.k), worst_distance(kernel.dist_dtype), kernel.dist_dtype)
        best_index = np.full((q_hi - q_lo, self.k), -1, np.int64)
        queries = self.queries[q_lo:q_hi]
        fold = self._folder(queries)
        block = np.empty(kernel.query_block * self.db_block, kernel.dist_dtype)
        gathered = np.empty((kernel.query_block, queries.shape[1]), queries.dtype)
        for g in range(part, len(starts), n_parts):
            who = local_query[bounds[g] : bounds[g + 1]]
            self._scan(lists[order[bounds[g]]], queries, who, (gathered, block), fold,
                       (best, best_index))  # fmt: skip
        return best, best_index

    def _scan(self, lst: int, queries, who: np.ndarray, room, fold, best) -> None:
        """Distances from queries ``who`` to every row of list ``lst``, folded into their
        top-k. ``room``: buffers for the queries gathered and for a kernel block, used
        as contiguous arrays of the size at hand (a list is a few dozen rows: as a
        corner of a wide block, its rows strided, the float kernel's steps took half
        again as long; and a fresh array for each gather cost page faults; ``mode='clip'``:
        the rows are in range, and the default would copy through a buffer)."""
        index, kernel = self.index, self.index._kernel
        gathered, block = room
        lo = index._starts[lst]
        hi = lo + index.offsets[lst + 1] - index.offsets[lst]
        for q0 in range(0, len(who), kernel.query_block):
            rows = who[q0 : q0 + kernel.query_block]
            chunk = np.take(queries, rows, axis=0, out=gathered[: len(rows)], mode="clip")
            for start in range(lo, hi, self.db_block):
                stop = min(start + self.db_block, hi)
                out = block[: len(rows) * (stop - start)].reshape(len(rows), stop - start)
                fold(chunk, rows, start, stop, out, *best)

    def _folder(self, queries: np.ndarray):
        """``fold(chunk, rows, start, stop, out, best, best_index)``: the distances from
        ``chunk`` (queries ``rows``) to list rows ``start..stop``, into their top-k.

        Float L2 takes the dot products from BLAS and makes the distances while
        merging (:func:`~imgclf.neighbors.kernels.topk.merge_gathered_l2`); the
        others fold the kernel's block."""
        index = self.index
        prepared, ids = index._prepared, index._batch_ids
        if index.metric == "l2" and index.database.dtype == np.float32:
            query_norms = np.einsum("ij,ij->i", queries, queries)

            def fold(chunk, rows, start, stop, out, best, best_index):
                np.dot(chunk, prepared.database[start:stop].T, out=out)
                topk.merge_gathered_l2(out, query_norms, rows, prepared.norms[start:stop],
                                       ids[start:stop], best, best_index)  # fmt: skip

            return fold

        def fold(chunk, rows, start, stop, out, best, best_index):
            index._kernel.block(chunk, prepared, start, stop, out)
            topk.merge_gathered(out, rows, ids[start:stop], best, best_index)

        return fold
