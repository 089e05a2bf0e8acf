"""``LowerBoundPruner``: builds the summaries, splits the rows between threads, merges.

The compiled stages below it (:mod:`.summaries`, :mod:`.bounds`,
:mod:`.stages`, :mod:`.cascade`) take plain arrays; this class owns them, checks
a search's arguments and runs one :func:`~.cascade._search_part` a thread.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imgclf._progress import notice_if_slow
from imgclf.neighbors.kernels import row_dtype, topk
from imgclf.neighbors.pruning.bounds import _BIG
from imgclf.neighbors.pruning.cascade import _search_classes, _search_part
from imgclf.neighbors.pruning.stages import _MIN_RUN
from imgclf.neighbors.pruning.summaries import (
    _coarse_sums,
    _codes,
    _group_sums,
    _pair_up,
    _paired_codes,
    _principal_axes,
    _project_rows,
)

GROUP = 16  # features per summed group: divides the engine's padding (64)
L1_GROUP = 8  # and, by default, in L1's second stage (sums rounded to uint8: 8 u within 4)
FIRST_DIMS = {"l1": 64, "l2": 32}  # numbers per row in the first bound
SECOND_DIMS = {"l2": 128}  # numbers per row in the second bound: L2 127 principal axes and
# the residual (int16), L1 the sums of d / 8 groups (uint8)
FIRST_CODES = {"l1": np.uint8, "l2": np.int8}  # and their storage
CASCADE_MIN_ROWS = 1024  # below this, one group-sum pass is as fast
MAX_CASCADE_D = 1 << 16  # the L2 projections stay exact in int32 (see _project)
_SAMPLE = 1024  # rows the coarse groups are estimated from
_ROUND_BLOCK = 2048  # rows of sums rounded at once
_PAIRING_SAMPLE = 256  # rows the groups are learned from
_NO_CLASSES = np.zeros(0, np.int32)  # a search without classes (see _search_part)
_COMPILING = "compiling the single-image k-NN search (once after installing imgclf, ~1 minute)"
_CALLED: set[str] = set()  # the search methods called in this process (see _notes_compiling)


def _notes_compiling(method):
    """The first call of a search method in a process compiles the cascade, unless numba
    has it cached on disk: ~45 s after a fresh installation (one large function and
    all it inlines), silent without this. Said on stderr if it takes a while."""
    name = method.__name__

    @functools.wraps(method)
    def noted(self, *args, **kwargs):
        if name in _CALLED:
            return method(self, *args, **kwargs)
        with notice_if_slow(_COMPILING):
            result = method(self, *args, **kwargs)
        _CALLED.add(name)
        return result

    return noted


class LowerBoundPruner:
    """Summaries of a padded uint8 database, for exact search of single queries.

    Parameters
    ----------
    database : ndarray of uint8, shape (n, d), d a multiple of :data:`GROUP`
    metric : {"l1", "l2"}
    n_jobs : int
        Threads; each runs the cascade on a share of the rows.
    cascade : bool, optional
        False: the single-stage pruner (sums of 16 consecutive features for
        every row, then exact distances), kept for comparison. The cascade
        also needs :data:`CASCADE_MIN_ROWS` rows, ``d <= 65,536`` and, for
        L1, ``d >= 32``.
    second_stage : bool, optional
        False: the cascade keeps only its first bound (a fraction of the memory).
    first_stage : bool, optional
        False: the cascade keeps only its second bound, and every candidate
        row gets it, the rows read in order. For an inverted file: the rows of
        its probed lists are all near the query, half of them passed the first
        bound, and the second bound of every one costs less (single CIFAR-10
        queries ~15% faster, and 1.8-3.2 MB less). Needs the second stage.
    second_dims : int, optional
        Numbers per row in the second bound: L2 principal axes and the
        residual (2 bytes each; default 128), L1 group sums (1 byte each;
        default ``d / 8``, at most this many groups of 8, 16, 32... features).
    order : (n,) int array, optional
        The rows in the order the summaries keep them: position ``p`` holds
        ``database[order[p]]``, and ``ranges`` refer to positions (an inverted
        file passes its list order, so that its lists are ranges). Search
        results are database rows.

    Building on CIFAR-10 (50,000 x 3,072, two threads) takes about 1 s: the
    principal axes and projections (L2), or the learned groups and their
    sums (L1). ``groups`` holds the features each group sums (consecutive
    without the cascade), ``summary`` every position's second-stage numbers.
    """

    def __init__(self, database: np.ndarray, metric: str, n_jobs: int = 1, *, cascade=True,
                 second_stage=True, first_stage=True, second_dims=None, order=None):  # fmt: skip
        self.database = np.ascontiguousarray(database, np.uint8)
        self.metric = metric
        self.n_jobs = n_jobs
        self.squared = metric == "l2"
        n, d = self.database.shape
        self.rowmap = (
            np.arange(n, dtype=row_dtype(n)) if order is None else _checked_order(order, n)
        )
        self._owns_rowmap = self.rowmap is not order  # (made here, or a converted copy)
        self.cascade = (
            cascade
            and n >= CASCADE_MIN_ROWS
            and d <= MAX_CASCADE_D
            and (self.squared or d >= 2 * GROUP)
        )
        self.second_stage = bool(second_stage) or not self.cascade
        self.first_stage = bool(first_stage) or not self.second_stage
        self.second_dims = (
            SECOND_DIMS.get(metric, d // L1_GROUP) if second_dims is None else second_dims
        )
        self.coded = self.cascade and self.second_stage  # the second stage's numbers are codes
        self._pool = ThreadPoolExecutor(n_jobs - 1) if n_jobs > 1 else None
        self._axes, self._mean = np.zeros((1, d), np.int16), np.zeros(d, np.int16)
        self._labels = np.zeros(1, np.int64)
        # nearest_classes' labels, reordered, and how many classes they name
        self._class_source = self._row_classes = self._n_classes = None
        self._arrays = self._summaries()
        self._all = np.array([[0, n]], np.int64)
        self._shares = self._parts(self._all, n)  # the usual split, made once
        # whether a search of every row runs the first stage, worked out once: the Python
        # around a lone query's kernels was a fifth of its ~0.5 ms
        self._cascades_all = self._cascades(self._all, n)

    def _summaries(self) -> tuple:
        """Every array :func:`~.cascade._search_part` takes before the query, built for
        this metric and these stages (stand-ins for the stages not kept)."""
        n, d = self.database.shape
        residual, sigma, largest = np.zeros(1), 1.0, 0.0
        first, codes = _absent(np.int8)
        codes2, norms1 = codes, np.zeros(1, np.float32)
        if self.cascade and self.squared:
            self.groups = np.zeros((0, GROUP), np.int64)  # no group sums: principal axes
            first, codes, self.summary, codes2, sigma, largest = self._projected()
            if self.first_stage:
                first, norms1 = _paired_codes(first, codes[1])
        else:
            self.groups = (
                self._learned_groups() if self.cascade else np.arange(d).reshape(-1, GROUP)
            )
            self.summary = np.empty((n, len(self.groups)), np.uint16)
            norms, residual = np.empty(n, np.int64), np.empty(n)  # |x|^2 for r_x only
            arrays = (self.database, self.rowmap, self.groups)
            self._over_rows(
                lambda lo, hi: _group_sums(*arrays, lo, hi, self.summary, norms, residual)
            )
            if self.cascade:
                if self.first_stage:
                    first, codes = self._coarse_codes(self.summary)
                residual = np.zeros(1)  # only the L2 group-sum bound needs it
                self.summary, codes2 = self._rounded_sums(self.summary)
        consts = np.array([sigma, largest, residual.max(), norms1.max()])
        return (
            *(self.database, self.rowmap, self.summary, residual, first, norms1),
            *(self.groups, self._axes, self._mean, self._labels, consts, codes, codes2),
        )

    @property
    def nbytes(self) -> int:
        """Bytes of the summaries (beyond the database and the ``order`` given)."""
        own = self._arrays[2:]
        return sum(a.nbytes for a in own) + (self.rowmap.nbytes if self._owns_rowmap else 0)

    def _learned_groups(self) -> np.ndarray:
        """L1: the features of each group, paired up by correlation on a sample (see _pair_up)."""
        n, d = self.database.shape
        sample = self.database[np.linspace(0, n - 1, _PAIRING_SAMPLE).astype(np.int64)]
        size = L1_GROUP  # features a group: a power of 2 times 8 (pairing rounds halve evenly)
        while d // size > self.second_dims and d % (2 * size) == 0:
            size *= 2
        labels = _pair_up(sample, d // size)
        return np.argsort(labels, kind="stable").reshape(d // size, size)

    def _coarse_codes(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """L1's first stage: sums over coarse groups (unions of the groups) rounded to uint8
        codes ``u = round(S / s)``, row-major, ``s`` the largest group's size; and
        (offset 0, scale ``s``, rounding error ``s / 2``) per coarse group."""
        n = len(sums)
        fine_sample = sums[np.linspace(0, n - 1, min(n, _SAMPLE)).astype(np.int64)]
        self._labels = _pair_up(fine_sample, min(FIRST_DIMS["l1"], len(self.groups) // 2))
        summary = np.empty((self._labels.max() + 1, n))
        self._over_rows(lambda lo, hi: _coarse_sums(sums, self._labels, lo, hi, summary))
        scale = float(np.bincount(self._labels).max() * self.groups.shape[1])  # 255 s: all of it
        codes = np.ascontiguousarray(np.rint(summary.T / scale).astype(FIRST_CODES["l1"]))
        m = len(summary)
        return codes, np.stack([np.zeros(m), np.full(m, scale), np.full(m, scale / 2)])

    def _rounded_sums(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """L1's second stage: the group sums as ``u = round(S / g)`` (uint8, ``|S - g u| <= g/2``,
        ``g`` features a group) and (offset 0, scale g, rounding error g / 2) per group; none
        without the stage."""
        if not self.second_stage:
            return _absent(np.uint8)
        g, size = sums.shape[1], self.groups.shape[1]
        rounded = np.empty(sums.shape, np.uint8)
        for lo in range(0, len(sums), _ROUND_BLOCK):  # (a float copy of all would be 8x)
            block = sums[lo : lo + _ROUND_BLOCK]
            rounded[lo : lo + len(block)] = np.rint(block / size)
        return rounded, np.stack([np.zeros(g), np.full(g, float(size)), np.full(g, size / 2)])

    def _projected(self):
        """L2: the principal axes; the first stage's codes (the leading ``m1`` axes and
        ``rho_1``, feature-major) and the second's (all ``m2`` and ``rho_2``, row-major),
        each with (offset, scale, rounding error); sigma and the largest ``|x - mu|``."""
        n, d = self.database.shape
        # at most an eighth of a row's bytes in the second stage, a sixteenth in the first
        m2 = min(self.second_dims - 1 if self.second_stage else FIRST_DIMS["l2"] - 1, d // 16)
        m1 = min(FIRST_DIMS["l2"] - 1, max(1, d // 16), m2)
        self._axes, self._mean, sigma = _principal_axes(self.database, m2)
        z, squares = np.empty((n, len(self._axes))), np.empty(n)
        arrays = (self.database, self.rowmap, self._axes, self._mean, sigma)
        self._over_rows(lambda lo, hi: _project_rows(*arrays, lo, hi, z, squares))

        def with_rho(m):  # (m + 1, n): the leading m projections and the rest's norm
            rho = np.sqrt(np.maximum(squares - np.einsum("ij,ij->i", z[:, :m], z[:, :m]), 0))
            return np.ascontiguousarray(np.vstack([z[:, :m].T, rho]))  # feature-major

        first, codes = _absent(np.int8)
        if self.first_stage:
            first, codes = _codes(with_rho(m1), FIRST_CODES["l2"], per_row=True)
        second, codes2 = _absent(np.int16)
        if self.second_stage:
            second, codes2 = _codes(with_rho(m2), np.int16)
            second = np.ascontiguousarray(second.T)
        return first, codes, second, codes2, sigma, float(np.sqrt(squares.max()))

    def _over_rows(self, fn) -> list:
        """``fn(lo, hi)`` over contiguous shares of the rows, on the threads."""
        n = len(self.database)
        edges = np.linspace(0, n, (self.n_jobs if n >= 4096 else 1) + 1).astype(np.int64)
        return self._on_threads(fn, list(zip(edges[:-1], edges[1:], strict=True)))

    def _on_threads(self, fn, calls: list[tuple]) -> list:
        """``fn(*args)`` for every ``args`` in ``calls`` at once: the first on this thread,
        the others in the pool."""
        later = [self._pool.submit(fn, *args) for args in calls[1:]]
        return [fn(*calls[0])] + [future.result() for future in later]

    # ------------------------------------------------------------------ search

    @_notes_compiling
    def search(self, query: np.ndarray, k: int, ranges=None, ids=None):
        """The k nearest rows of one padded uint8 ``query`` ``(d,)``: (distances, indices).

        Distances are L1, or *squared* L2, as int64; sorted, ties to the lower
        index (or id).

        ranges : (r, 2) int64 array, optional
            Only rows in these ``[lo, hi)`` ranges are candidates (only their
            bounds are computed). Disjoint; an inverted-file index passes the
            row ranges of the lists it probes.
        ids : (n,) int64 array, optional
            An external id per database row, returned instead of the row
            position and used by the tie rule (equal distances: lower id first).
        """
        dist, found, _ = self._search(query, k, ranges, ids)
        return dist, found

    @_notes_compiling
    def search_ranges(self, query: np.ndarray, k: int, ranges: np.ndarray):
        """:meth:`search` over ``ranges`` an inverted file made: ``(r, 2)`` int64, disjoint,
        in bounds and holding at least ``k`` rows (not checked), on this thread.

        For its single queries, where the checks and the hand-off to threads
        would cost a fifth of the search (~30 us of ~150).
        """
        query = np.ascontiguousarray(query, np.uint8).reshape(1, -1)
        cascade = self._cascades(ranges)
        shared = np.full(1, _BIG, np.int64)
        flags = (self.squared, cascade, self.coded, self.second_stage, shared)
        dist, found, _, _, _ = _search_part(
            *self._arrays, query, ranges, self.rowmap, k, *flags, 0, _NO_CLASSES, 0, 0
        )
        return dist, found

    @_notes_compiling
    def search_classes(self, query: np.ndarray, k: int, labels: np.ndarray, n_top: int,
                       ranges: np.ndarray | None = None):  # fmt: skip
        """:meth:`search` with what a k-NN vote's top classes need: ``(distances (k,), ids
        (k,), classes (m',), class distances (m',), class ids (m',))``.

        The classes, nearest first, are the nearest of those without a row among
        the k found, as many as make ``n_top`` classes with those that have one
        (``m' <= n_top - their number``: fewer when fewer such classes have rows),
        each by its nearest row: :meth:`nearest_classes` of them, in the same search.
        ``labels`` ``(n,)`` int: each database row's class, 0..C-1. ``ranges``: as
        :meth:`search_ranges` (None: every row). One thread; a pruner with more
        searches and then looks for the classes.
        """
        query = np.ascontiguousarray(query, np.uint8).reshape(1, -1)
        every = ranges is None
        ranges = self._all if every else ranges
        if every and len(self._shares) > 1:  # threads share the search: the classes after it
            return self._classes_after(query[0], k, labels, n_top)
        cascade = self._cascades(ranges)
        shared = np.full(1, _BIG, np.int64)
        flags = (self.squared, cascade, self.coded, self.second_stage, shared)
        classes, n_classes = self._classes_in_order(labels), self._n_classes
        dist, found, _, best, best_id = _search_part(
            *self._arrays, query, ranges, self.rowmap, k, *flags, 0, classes, n_classes, n_top
        )
        voted = np.zeros(n_classes, bool)
        voted[np.asarray(labels)[found]] = True
        return (dist, found, *_nearest_first(best, best_id, max(0, n_top - int(voted.sum()))))

    def _classes_after(self, query, k, labels, n_top):
        """:meth:`search_classes` as a search, then :meth:`nearest_classes`."""
        dist, found = self.search(query, k)
        self._classes_in_order(labels)
        wanted = np.ones(self._n_classes, bool)
        wanted[np.asarray(labels)[found]] = False
        m = n_top - int((~wanted).sum())
        if m <= 0:
            empty = np.zeros(0, np.int64)
            return dist, found, empty, empty, empty
        return (dist, found, *self.nearest_classes(query, labels, wanted, m))

    @_notes_compiling
    def nearest_classes(self, query: np.ndarray, labels: np.ndarray, wanted: np.ndarray, m: int,
                        ranges: np.ndarray | None = None):  # fmt: skip
        """The ``m`` nearest of the ``wanted`` classes to one padded uint8 ``query`` ``(d,)``:
        ``(classes (m',), distances (m',), ids (m',))``, nearest first, by the distance of
        each class's nearest row (L1, or squared L2), ties to the lower id; ``m' < m``
        when fewer wanted classes have rows. ``ranges`` ``(r, 2)``: only the rows there
        (disjoint positions, as :meth:`search_ranges`); None: every row.

        ``labels`` ``(n,)`` int: each database row's class, 0..C-1 (reordered as the
        summaries keep the rows once per labels array); ``wanted`` ``(C,)`` bool. For a
        classifier's top classes past its voters, without searching deeper for them.
        """
        query = np.ascontiguousarray(query, np.uint8).reshape(1, -1)
        if ranges is None:
            ranges = np.array([[0, len(self.rowmap)]], np.int64)
        cascade = self._cascades(ranges)
        flags = (self.squared, cascade, self.coded, self.second_stage)
        classes = self._classes_in_order(labels)
        wanted = np.asarray(wanted, bool)
        best, best_id = _search_classes(*self._arrays, query, ranges, self.rowmap, classes,
                                        wanted, m, *flags)  # fmt: skip
        return _nearest_first(best, best_id, m)

    def _classes_in_order(self, labels) -> np.ndarray:
        """``labels`` (database order) in the summaries' order, int32; kept for the next call
        with the same array (a classifier passes its own labels on every query)."""
        if self._class_source is not labels:
            self._row_classes = np.asarray(labels, np.int32)[self.rowmap]
            self._n_classes = int(self._row_classes.max()) + 1
            self._class_source = labels
        return self._row_classes

    def _cascades(self, ranges: np.ndarray, n_rows: int | None = None) -> bool:
        """Whether a search of ``ranges`` (``n_rows`` rows, counted here if needed) runs the
        first stage: scattered rows skip it (it reads rows in runs), unless it is the only
        one. (An inverted file's pruner has no first stage: no count, a few us a query.)"""
        if not (self.cascade and self.first_stage):
            return False
        if n_rows is None:
            n_rows = int((ranges[:, 1] - ranges[:, 0]).sum())
        return not self.second_stage or n_rows >= _MIN_RUN * len(ranges)

    def stage_counts(self, query: np.ndarray, k: int, ranges=None) -> dict:
        """How many rows one search considered, how many passed each stage, and how many
        it measured (``exact``: the seeds and the candidates after them, each row once)."""
        counts = self._search(query, k, ranges, None)[2]
        return dict(zip(("rows", "first", "second", "exact"), counts.tolist(), strict=True))

    def _parts(self, ranges: np.ndarray, n_rows: int) -> list[np.ndarray]:
        """The threads' shares of the rows (one thread below 4,096 rows: not worth waking more)."""
        return _split(ranges, self.n_jobs) if n_rows >= 4096 and self.n_jobs > 1 else [ranges]

    def _search(self, query, k, ranges, ids):
        n, d = self.database.shape
        query = np.ascontiguousarray(query, np.uint8).reshape(1, -1)
        if query.shape[1] != d:
            raise ValueError(f"query has {query.shape[1]} features, the database {d}")
        if ranges is None and ids is None:  # every row: the split and the flags are made
            parts, ids, cascade = self._shares, self.rowmap, self._cascades_all
            _check_k(k, n)
        else:
            parts, ids, cascade = self._checked_search(k, ranges, ids)
        shared = np.full(len(parts), _BIG, np.int64)
        flags = (self.squared, cascade, self.coded, self.second_stage, shared)
        calls = [
            (*self._arrays, query, part, ids, k, *flags, j, _NO_CLASSES, 0, 0)
            for j, part in enumerate(parts)
        ]
        return _merged(self._on_threads(_search_part, calls), k)

    def _checked_search(self, k: int, ranges, ids) -> tuple[list, np.ndarray, bool]:
        """The threads' shares of ``ranges``, the ids and whether the first stage runs,
        after checking them and ``k``."""
        n = len(self.database)
        ranges = self._all if ranges is None else _checked_ranges(ranges, n)
        if ids is None:
            ids = self.rowmap
        elif np.shape(ids) != (n,):
            raise ValueError(f"ids must have one entry per database row ({n}); got {np.shape(ids)}")
        n_rows = int((ranges[:, 1] - ranges[:, 0]).sum())
        _check_k(k, n_rows)
        parts = self._shares if ranges is self._all else self._parts(ranges, n_rows)
        return parts, _as_ids(ids), self._cascades(ranges, n_rows)


def _absent(dtype) -> tuple[np.ndarray, np.ndarray]:
    """A stage the pruner does not keep: a 1 x 1 stand-in for its codes, and (offset,
    scale, error) of one number. The cascade never reads them; they only give numba
    arrays of the types it compiled for."""
    return np.zeros((1, 1), dtype), np.ones((3, 1))


def _merged(results: list[tuple], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The threads' ``_search_part`` answers as one: the k nearest by (distance, id), and
    the stage counts summed."""
    dist, found, counts = results[0][:3]
    for other_dist, other_found, other_counts, _, _ in results[1:]:
        dist, found = topk.merge_two_by_id(dist, found, other_dist, other_found, k)
        counts = counts + other_counts
    return dist, found, counts


def _check_k(k: int, n_rows: int) -> None:
    if not 1 <= k <= n_rows:
        raise ValueError(f"k must be between 1 and the {n_rows} candidate rows; got {k}")


def _nearest_first(best: np.ndarray, best_id: np.ndarray, m: int):
    """The ``m`` nearest classes with a row (``best < _BIG``), ties to the lower id:
    ``(classes, distances, ids)``."""
    found = np.flatnonzero(best < _BIG)
    found = found[np.lexsort((best_id[found], best[found]))][:m]
    return found, best[found], best_id[found]


def _checked_order(order, n: int) -> np.ndarray:
    """``order`` as (n,) database rows, of :func:`row_dtype` (not copied if it is);
    checked before the cast, which could wrap a large value into range."""
    wide = np.asarray(order, np.int64)
    if wide.shape != (n,) or (n and (wide.min() < 0 or wide.max() >= n)):
        raise ValueError(f"order must hold {n} database rows (0..{n - 1}); got shape {wide.shape}")
    return np.ascontiguousarray(order, row_dtype(n))


def _as_ids(ids) -> np.ndarray:
    """External ids as int32 where they fit, as the row map is (one compiled variant of
    the search for both), else int64."""
    out = np.ascontiguousarray(ids, np.int64)
    fits = not len(out) or (out.min() >= -(2**31) and out.max() < 2**31)
    return out.astype(np.int32) if fits else out


def _checked_ranges(ranges, n: int) -> np.ndarray:
    """``ranges`` as an (r, 2) int64 array of disjoint ``[lo, hi)`` inside ``[0, n]``."""
    out = np.ascontiguousarray(np.asarray(ranges, np.int64).reshape(-1, 2))
    lo, hi = out[:, 0], out[:, 1]
    order = np.argsort(lo, kind="stable")
    overlap = (hi[order][:-1] > lo[order][1:]).any()
    if (lo < 0).any() or (hi < lo).any() or (hi > n).any() or overlap:
        raise ValueError(f"ranges must be disjoint [lo, hi) pairs within [0, {n}]; got {ranges!r}")
    return out


def _split(ranges: np.ndarray, parts: int) -> list[np.ndarray]:
    """Cut ``[lo, hi)`` ranges into ``parts`` lists of ranges with about equal numbers of rows."""
    sizes = ranges[:, 1] - ranges[:, 0]
    ends = np.cumsum(sizes)
    starts = ends - sizes  # each range's place in the concatenation of all ranges
    out = []
    for p in range(parts):
        a, b = ends[-1] * p // parts, ends[-1] * (p + 1) // parts
        lo, hi = np.maximum(starts, a), np.minimum(ends, b)
        keep = hi > lo
        shift = ranges[keep, 0] - starts[keep]
        out.append(np.stack([lo[keep] + shift, hi[keep] + shift], axis=1))
    return [part for part in out if len(part)]
