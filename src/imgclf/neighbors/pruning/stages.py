"""The passes of one thread's cascade over its share of the rows.

The first bound of every row (:func:`_first_pass`), the seeds that set the
first threshold (:func:`_seeds`), the rows that pass it and then their second
bounds (:func:`_survivors`, :func:`_at_most`; :func:`_second_pass` when there
is no first stage), and the exact distance of a row (:func:`_measure`) with
the running top-k (:func:`_insert`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int64, uint64

from imgclf.neighbors.kernels.rows import _least, _prefetch_row, _sad_row, _squared_distance
from imgclf.neighbors.pruning.bounds import (
    _first_bounds,
    _first_bounds_l1,
    _query_weights,
    _second_bound,
)

_SEEDS = 256  # rows (at least k) with the smallest first bounds, the seeds (see _seeds)
_SEED_SAMPLE = 1024  # bounds sampled to find the seeds
_CHUNK = 256  # rows per vector pass of the first bound
_AHEAD = 8  # candidates whose group sums are fetched ahead of use
_MIN_RUN = 8  # the first stage needs ranges this long on average (it reads rows in runs)
_BLOCK = 16  # bounds tested at once for survivors (see _at_most)
_SURVIVORS_START = 4096  # room for survivors at first; grown as needed
_SEGMENT = 2048  # rows whose survivors _at_most makes room for at once (<= _SURVIVORS_START)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@numba.njit(nogil=True, cache=True, inline="always")
def _measure(pixels, rowmap, position, query, squared):
    """The exact distance of the row whose summaries are at ``position`` (L1 by
    :func:`_sad_row`: ``vpsadbw`` where the CPU has it)."""
    row = int64(rowmap[position])  # (an int32 row map: the SIMD kernels index in int64)
    if squared:
        return _squared_distance(pixels, row, query)
    return _sad_row(query, 0, pixels, row)


@numba.njit(nogil=True, cache=True, inline="always")
def _insert(best, best_id, value, ident):
    """Insert ``(value, ident)`` into the k best, sorted by (distance, id), unless already in."""
    k = best.shape[0]
    if value > best[k - 1] or (value == best[k - 1] and ident >= best_id[k - 1]):
        return
    slot = k - 1
    while slot > 0 and (
        best[slot - 1] > value or (best[slot - 1] == value and best_id[slot - 1] > ident)
    ):
        slot -= 1
    if slot > 0 and best[slot - 1] == value and best_id[slot - 1] == ident:
        return  # offered twice (the cascade measures each row once: a safety net)
    for i in range(k - 1, slot, -1):
        best[i] = best[i - 1]
        best_id[i] = best_id[i - 1]
    best[slot] = value
    best_id[slot] = ident


@numba.njit(nogil=True, cache=True)
def _first_pass(first, norms1, qfirst, qcodes, scales, consts, ranges, squared, bounds, minima):
    """Stage 1: the first bound of every row in ``ranges``, in range order, into ``bounds``,
    and the row with the least bound of every chunk of :data:`_CHUNK` (or range)
    into ``minima`` (as many as fit); returns how many there are."""
    dots = np.empty(_CHUNK + 16, np.int32)  # (room for a last step of sixteen)
    if squared:
        weights, consts1 = _query_weights(qfirst, scales, first.shape[0], consts[3])
    else:
        weights, consts1 = np.zeros(1, np.int32), np.zeros(3)
    p = 0
    for r in range(ranges.shape[0]):
        for lo in range(ranges[r, 0], ranges[r, 1], _CHUNK):
            hi = min(lo + _CHUNK, ranges[r, 1])
            if squared:
                _first_bounds(first, norms1, weights, consts1, lo, hi, dots, bounds, p)
            else:
                _first_bounds_l1(first, qcodes, scales[0], lo, hi, bounds, p)
            p += hi - lo
    return _chunk_minima(bounds, ranges, minima)


@numba.njit(nogil=True, cache=True)
def _chunk_minima(bounds, ranges, minima):
    """The row with the least bound of every chunk of :data:`_CHUNK` (or range), into
    ``minima`` (as many as fit); returns how many there are.

    A pass of its own, once every bound is written: read right after a chunk's bounds
    were stored (L1's four at a time), the vector loads of :func:`_least` waited on
    those stores, and L1's first stage took ~1.8 times as long (CIFAR-10).
    """
    p = chunks = 0
    for r in range(ranges.shape[0]):
        for lo in range(ranges[r, 0], ranges[r, 1], _CHUNK):
            if chunks == minima.shape[0]:
                return chunks
            hi = min(lo + _CHUNK, ranges[r, 1])
            minima[chunks] = lo + _least(bounds, p, p + hi - lo)
            chunks += 1
            p += hi - lo
    return chunks


@numba.njit(nogil=True, cache=True)
def _second_pass(sums, residual, qsums, qresidual, q2, qcodes, ranges, squared, coded, bounds):
    """Without the first stage: the second bound of every row in ``ranges``, in range
    order, into ``bounds``.

    Runs of rows are read in order (the CPU fetches them ahead: ~9 ns a row of 96 L2
    codes, against ~31 through a list of positions fetched ahead by hand); scattered
    rows (ranges shorter than :data:`_MIN_RUN` on average) are fetched ahead.
    """
    if bounds.shape[0] < _MIN_RUN * ranges.shape[0]:
        _scattered_second_pass(sums, residual, qsums, qresidual, q2, qcodes, ranges, squared,
                               coded, bounds)  # fmt: skip
        return
    p = 0
    for r in range(ranges.shape[0]):
        for row in range(ranges[r, 0], ranges[r, 1]):
            bounds[p] = _second_bound(
                sums, residual, row, qsums, qresidual, q2, qcodes, squared, coded
            )
            p += 1


@numba.njit(nogil=True, cache=True)
def _scattered_second_pass(sums, residual, qsums, qresidual, q2, qcodes, ranges, squared, coded,
                           bounds):  # fmt: skip
    """:func:`_second_pass` of rows in short ranges, each fetched :data:`_AHEAD` rows early."""
    rows = _positions(ranges, bounds.shape[0])
    for p in range(min(_AHEAD, rows.shape[0])):
        _prefetch_row(sums, rows[p])
    for p in range(rows.shape[0]):
        if p + _AHEAD < rows.shape[0]:
            _prefetch_row(sums, rows[p + _AHEAD])
        bounds[p] = _second_bound(
            sums, residual, rows[p], qsums, qresidual, q2, qcodes, squared, coded
        )


@numba.njit(nogil=True, cache=True)
def _positions(ranges, n):
    """The ``n`` rows of ``ranges``, in order."""
    rows = np.empty(n, np.int64)
    p = 0
    for r in range(ranges.shape[0]):
        for row in range(ranges[r, 0], ranges[r, 1]):
            rows[p] = row
            p += 1
    return rows


@numba.njit(nogil=True, cache=True)
def _seeds(bounds, ranges, need):
    """At least ``need`` rows, about :data:`_SEEDS`, among those with the smallest bounds,
    and their bounds: the cut is a low quantile of an even sample of the bounds
    (cheaper than keeping the smallest while the bounds are computed). Any rows
    would do (their distances only set the first threshold); these do it well."""
    n = bounds.shape[0]
    want = max(_SEEDS, need)
    sample = np.sort(bounds[:: max(1, n // _SEED_SAMPLE)])
    rank = min(sample.shape[0] - 1, want * sample.shape[0] // n)
    while True:
        cut = np.float32(sample[rank] if rank < sample.shape[0] - 1 else np.inf)
        rows, kept, found = _at_most(bounds, ranges, cut)
        found = min(found, 4 * want)  # the first of them in range order
        if found >= need or cut == np.inf:
            return rows[:found], kept[:found]
        rank = min(2 * rank + 1, sample.shape[0] - 1)


@numba.njit(nogil=True, cache=True)
def _survivors(bounds, ranges, first_limit, second_limit, sums, residual, qsums, qres, q2,
               qcodes, squared, coded, has_second):  # fmt: skip
    """Rows whose first bound is at most ``first_limit`` get the second bound; those at most
    ``second_limit`` are returned, with it: (rows, bounds, how many passed the first).
    Without a second stage, the rows past the first, with their first bounds."""
    limit = np.float32(first_limit) if first_limit < _FLOAT32_MAX else np.float32(np.inf)
    if np.float32(limit) < first_limit:  # (the limit's float32 may round down)
        limit = np.nextafter(limit, np.float32(np.inf))
    passing, kept, passed = _at_most(bounds, ranges, limit)
    if not has_second:
        return passing[:passed], kept[:passed], passed
    rows = np.empty(passed, np.int64)
    second = np.empty(passed, np.float64)
    found = 0
    for i in range(min(_AHEAD, passed)):
        _prefetch_row(sums, passing[i])
    for i in range(passed):
        if i + _AHEAD < passed:
            _prefetch_row(sums, passing[i + _AHEAD])
        b = _second_bound(sums, residual, passing[i], qsums, qres, q2, qcodes, squared, coded)
        if b <= second_limit:
            rows[found] = passing[i]
            second[found] = b
            found += 1
    return rows[:found], second[:found], passed


@numba.njit(nogil=True, cache=True, fastmath={"nnan", "nsz"})  # (bounds may be inf)
def _at_most(bounds, ranges, limit):
    """The rows of ``ranges`` whose bound (``bounds``, in range order) is at most ``limit``,
    and their bounds as float64: ``(rows, bounds, how many)``, valid up to ``how many``.

    A few percent pass, in runs. Sixteen bounds at a time are tested by their least
    (one vector reduction), and a block that passes is written out whole, each row
    kept or overwritten by the next (a fixed count, no branch to mispredict): half
    the time of a block of any length. Room is made per :data:`_SEGMENT` rows, so
    the loops test nothing else; the results grow as needed from a few thousand
    (one allocation the size of ``bounds`` cost more than the whole test: fresh
    pages, ~25 us at 50,000 rows).
    """
    passing = np.empty(min(bounds.shape[0], _SURVIVORS_START), np.int64)
    kept = np.empty(passing.shape[0], np.float64)
    passed = 0
    p = 0
    for r in range(ranges.shape[0]):
        for lo in range(ranges[r, 0], ranges[r, 1], _SEGMENT):
            hi = min(lo + _SEGMENT, ranges[r, 1])
            while passed + (hi - lo) > passing.shape[0]:
                passing, kept = _grown(passing, passed), _grown(kept, passed)
            row = lo
            while row + _BLOCK <= hi:
                if _least_of_16(bounds, uint64(p)) <= limit:
                    for j in range(_BLOCK):
                        passed = _keep_if(passing, kept, passed, row + j, bounds[p + j], limit)
                row, p = row + _BLOCK, p + _BLOCK
            for tail in range(row, hi):
                passed = _keep_if(passing, kept, passed, tail, bounds[p], limit)
                p += 1
    return passing, kept, passed


@numba.njit(nogil=True, cache=True, inline="always")
def _keep_if(passing, kept, passed, row, bound, limit):
    """Write ``(row, bound)`` at ``passed``, and count it if ``bound <= limit``."""
    passing[passed] = row
    kept[passed] = bound
    return passed + (bound <= limit)


@numba.njit(nogil=True, cache=True, fastmath={"nnan", "nsz"}, inline="always")
def _least_of_16(values, at):
    least = values[at]
    for j in range(uint64(1), uint64(16)):
        least = min(least, values[at + j])
    return least


@numba.njit(nogil=True, cache=True)
def _grown(values, used):
    """``values`` in an array twice as long, its first ``used`` entries copied."""
    out = np.empty(2 * values.shape[0], values.dtype)
    out[:used] = values[:used]
    return out
