"""One thread's whole cascade: stages in order, the threshold shared between threads.

:func:`_search_part` is the k nearest rows of a share (and, asked for classes,
the nearest rows of the classes without one among them); :func:`_search_classes`
the nearest row of each of the ``m`` nearest classes. Each is one compiled
call, so a thread runs without the GIL from the query to its answer.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int64

from imgclf.neighbors.kernels.rows import _prefetch_row
from imgclf.neighbors.pruning.bounds import _BIG, _second_bound, _summarise, _thresholds
from imgclf.neighbors.pruning.stages import (
    _MIN_RUN,
    _SEEDS,
    _chunk_minima,
    _first_pass,
    _insert,
    _measure,
    _second_pass,
    _seeds,
    _survivors,
)

_SEEDS_EXACT = 16  # of the seeds (stages._SEEDS), those (at least k) with the least second
# bounds are measured: their k-th distance is the thread's first threshold
_AHEAD_EXACT = 2  # candidates whose pixels are fetched ahead of their exact distance


# (a module-level function: numba caches it on disk, which it does not for a
# closure over another jitted function)
@numba.njit(nogil=True, cache=True)
def _search_part(pixels, rowmap, sums, residual, first, norms1, groups, axes, mean,
                labels, consts, codes, codes2, query, ranges, ids, k, squared, cascade, coded,
                has_second, shared, part, classes, n_classes, n_top):  # fmt: skip
    """(distances (k,), ids (k,), [rows, past stage 1, past stage 2, measured], class
    distances (C,), class ids (C,)).

    ``shared[part]`` holds this thread's k-th distance so far; any thread's
    is at least the k-th of the whole search, so all prune with the least.

    ``classes`` ``(positions,)`` int32, each row's class (0..``n_classes`` - 1), or
    empty: then the class arrays are empty. Else, on one thread only (``shared`` of
    length 1), the search goes on for the ``n_top`` best classes of a k-NN vote: the
    classes of the k found come first, and the nearest of the others follow, as many
    as make ``n_top``. The class arrays are then :func:`_class_cascade`'s (or, when
    the k found hold ``n_top`` classes, each class's nearest measured row). It reuses
    this search's bounds and exact distances: ~65% less work than a second search
    for the classes (:meth:`LowerBoundPruner.nearest_classes`).
    """
    qsums, qres, qfirst, qcodes, slack, step, q2, slack2, step2 = _summarise(
        query, groups, axes, mean, labels, consts, codes, codes2, squared, cascade, coded
    )
    group, spread = groups.shape[1], (qres + consts[2]) ** 2
    n = 0
    for r in range(ranges.shape[0]):
        n += ranges[r, 1] - ranges[r, 0]
    bounds = np.empty(n, np.float32)
    need = max(_SEEDS_EXACT, k)
    minima = np.empty(max(_SEEDS, need), np.int64)
    chunks = 0
    if cascade:
        scales = codes[1].astype(np.float32)
        chunks = _first_pass(
            first, norms1, qfirst, qcodes, scales, consts, ranges, squared, bounds, minima
        )
    else:
        _second_pass(sums, residual, qsums, qres, q2, qcodes, ranges, squared, coded, bounds)
        if n >= _MIN_RUN * ranges.shape[0]:  # runs of rows (an inverted file's lists)
            chunks = _chunk_minima(bounds, ranges, minima)
    from_minima = chunks >= 2 * need and has_second
    if from_minima:  # the chunks' least bounds: seeds enough
        seeds, seed_bounds = minima[:chunks], bounds[:0].astype(np.float64)
    else:
        seeds, seed_bounds = _seeds(bounds, ranges, need)

    best = np.full(k, _BIG, np.int64)
    best_id = np.full(k, _BIG, np.int64)
    finer = np.empty(seeds.shape[0])  # the seeds' finest bounds pick those measured
    for i in range(seeds.shape[0]):
        if has_second and (cascade or from_minima):
            finer[i] = _second_bound(
                sums, residual, seeds[i], qsums, qres, q2, qcodes, squared, coded
            )
        else:
            finer[i] = seed_bounds[i]
    seeds = seeds[np.argsort(finer)]
    tracked = classes.shape[0] > 0
    class_best = np.full(n_classes if tracked else 0, _BIG, np.int64)
    class_id = np.full(class_best.shape[0], _BIG, np.int64)
    first_measured = seeds[: max(_SEEDS_EXACT, k)]
    for row in first_measured:
        d = _measure(pixels, rowmap, row, query, squared)
        _insert(best, best_id, d, ids[row])
        if tracked:
            _keep_least(class_best, class_id, classes[row], d, ids[row])
    shared[part] = best[k - 1]
    setting = (squared, cascade, coded, group, slack, spread, step, slack2, step2)
    limits = _thresholds(shared.min(), setting)
    # without the first stage, coded bounds are already the second (float32 holds them
    # exactly: L2's are float32 sums, L1's integers below 2^24): not computed again
    again = has_second and (cascade or not coded)
    rows, second, passed = _survivors(bounds, ranges, *limits, sums, residual, qsums, qres,
                                      q2, qcodes, squared, coded, again)  # fmt: skip
    stage = 1 if has_second or not cascade else 0  # the limit ``second`` is compared with

    # exact distances in increasing order of bound, until no bound can beat the k-th
    order = np.argsort(second)  # (equal bounds in any order: all are measured or none)
    for i in range(min(_AHEAD_EXACT, order.shape[0])):
        _prefetch_row(pixels, int64(rowmap[rows[order[i]]]))
    seeded = np.sort(first_measured)  # measured already: most are candidates again
    exact, reached = first_measured.shape[0], 0
    for i in range(order.shape[0]):
        shared[part] = best[k - 1]
        if second[order[i]] > _thresholds(shared.min(), setting)[stage]:
            break
        reached = i + 1
        if i + _AHEAD_EXACT < order.shape[0]:
            _prefetch_row(pixels, int64(rowmap[rows[order[i + _AHEAD_EXACT]]]))
        row = rows[order[i]]
        if _holds(seeded, row):
            continue
        d = _measure(pixels, rowmap, row, query, squared)
        _insert(best, best_id, d, ids[row])
        if tracked:
            _keep_least(class_best, class_id, classes[row], d, ids[row])
        exact += 1
    shared[part] = best[k - 1]
    counts = np.array([n, passed, rows.shape[0], exact], np.int64)
    if tracked:
        wanted, m = _unvoted(class_best, class_id, best[k - 1], best_id[k - 1], n_top)
        if m > 0:
            measured = np.sort(np.concatenate((seeded, rows[order[:reached]])))
            _class_cascade(pixels, rowmap, sums, residual, query, qsums, qres, q2,
                           qcodes, bounds, ranges, ids, classes, wanted, m, class_best, class_id,
                           setting, stage, measured, squared, coded, has_second)  # fmt: skip
    return best, best_id, counts, class_best, class_id


@numba.njit(nogil=True, cache=True, inline="always")
def _keep_least(best, best_id, c, value, ident):
    """Class ``c``'s nearest so far: ``(value, ident)`` if it is nearer (ties: lower id)."""
    if value < best[c] or (value == best[c] and ident < best_id[c]):
        best[c], best_id[c] = value, ident


@numba.njit(nogil=True, cache=True, inline="always")
def _holds(sorted_values, value):
    """Whether ``value`` is in the ascending array ``sorted_values``."""
    at = np.searchsorted(sorted_values, value)
    return at < sorted_values.shape[0] and sorted_values[at] == value


@numba.njit(nogil=True, cache=True)
def _unvoted(class_best, class_id, kth, kth_id, n_top):
    """The classes without a row among the k found (``wanted``, bool ``(C,)``), and how
    many of them make ``n_top`` classes with those that have (``m``, may be <= 0).

    ``class_best`` holds each class's nearest measured row; the k found are the k
    least measured, so a class has one of them iff its nearest is at most the k-th.
    """
    wanted = np.ones(class_best.shape[0], np.bool_)
    for c in range(class_best.shape[0]):
        b = class_best[c]
        wanted[c] = not (b < kth or (b == kth and class_id[c] <= kth_id))
    return wanted, n_top - (class_best.shape[0] - wanted.sum())


@numba.njit(nogil=True, cache=True)
def _class_cascade(pixels, rowmap, sums, residual, query, qsums, qres, q2,
                   qcodes, bounds, ranges, ids, classes, wanted, m, best, best_id, setting,
                   stage, measured, squared, coded, has_second):  # fmt: skip
    """The cascade for classes, from a query's first ``bounds`` (in range order): into
    ``best`` / ``best_id`` ``(C,)`` the nearest row of each ``wanted`` class, exact for
    the ``m`` nearest, ``_BIG`` for the classes not wanted (see :func:`_search_classes`).

    ``best`` may hold each class's nearest of rows already measured (``measured``,
    sorted: :func:`_search_part` passes those of its search, which are not measured
    again); a wanted class without one starts from its row of least first bound.
    """
    n_classes = wanted.shape[0]
    seed = np.full(n_classes, -1, np.int64)
    seed_bound = np.full(n_classes, np.inf, np.float32)
    p = 0
    for r in range(ranges.shape[0]):
        for row in range(ranges[r, 0], ranges[r, 1]):
            c = classes[row]
            if not wanted[c]:
                bounds[p] = np.inf  # never a survivor
            elif best[c] == _BIG and bounds[p] < seed_bound[c]:
                seed[c], seed_bound[c] = row, bounds[p]
            p += 1
    for c in range(n_classes):
        if seed[c] >= 0:
            d = _measure(pixels, rowmap, seed[c], query, squared)
            _keep_least(best, best_id, c, d, ids[seed[c]])
    tau = _mth_least(best, wanted, m)
    rows, second, _ = _survivors(bounds, ranges, *_thresholds(tau, setting), sums, residual,
                                 qsums, qres, q2, qcodes, squared, coded, has_second)  # fmt: skip
    order = np.argsort(second)
    for i in range(order.shape[0]):
        if second[order[i]] > _thresholds(tau, setting)[stage]:
            break
        row = rows[order[i]]
        c = classes[row]
        if row == seed[c] or _holds(measured, row):
            continue
        d = _measure(pixels, rowmap, row, query, squared)
        if d < best[c] or (d == best[c] and ids[row] < best_id[c]):
            best[c], best_id[c] = d, ids[row]
            tau = _mth_least(best, wanted, m)
    for c in range(n_classes):
        if not wanted[c]:
            best[c], best_id[c] = _BIG, _BIG


@numba.njit(nogil=True, cache=True)
def _search_classes(pixels, rowmap, sums, residual, first, norms1, groups, axes, mean,
                    labels, consts, codes, codes2, query, ranges, ids, classes, wanted, m,
                    squared, cascade, coded, has_second):  # fmt: skip
    """The nearest row in ``ranges`` of each class, exact for the ``m`` nearest ``wanted``
    classes: (distances (C,), ids (C,)), ``_BIG`` for classes not wanted or without a row.

    The cascade of :func:`_search_part` over every row, with one best row per class in
    place of the k best: the threshold is the m-th least of the wanted classes' best
    distances so far. It starts from each wanted class's row with the least first bound
    (measured), and only falls; a row of a class in the true m nearest has a bound at
    most its distance, at most the threshold, so it is measured: those classes' bests
    are exact, ties to the lower id. Rows of classes not wanted are skipped unmeasured.
    """
    qsums, qres, qfirst, qcodes, slack, step, q2, slack2, step2 = _summarise(
        query, groups, axes, mean, labels, consts, codes, codes2, squared, cascade, coded
    )
    n = 0
    for r in range(ranges.shape[0]):
        n += ranges[r, 1] - ranges[r, 0]
    bounds = np.empty(n, np.float32)
    if cascade:
        minima = np.empty(1, np.int64)
        _first_pass(first, norms1, qfirst, qcodes, codes[1].astype(np.float32), consts, ranges,
                    squared, bounds, minima)  # fmt: skip
    else:
        _second_pass(sums, residual, qsums, qres, q2, qcodes, ranges, squared, coded, bounds)
    best = np.full(wanted.shape[0], _BIG, np.int64)
    best_id = np.full(wanted.shape[0], _BIG, np.int64)
    group, spread = groups.shape[1], (qres + consts[2]) ** 2
    setting = (squared, cascade, coded, group, slack, spread, step, slack2, step2)
    stage = 1 if has_second or not cascade else 0
    _class_cascade(pixels, rowmap, sums, residual, query, qsums, qres, q2,
                   qcodes, bounds, ranges, ids, classes, wanted, m, best, best_id, setting,
                   stage, np.zeros(0, np.int64), squared, coded, has_second)  # fmt: skip
    return best, best_id


@numba.njit(nogil=True, cache=True)
def _mth_least(best, wanted, m):
    """The m-th least of ``best`` over the wanted classes (``_BIG`` if fewer)."""
    values = np.sort(best[wanted])
    return values[m - 1] if values.shape[0] >= m else _BIG
