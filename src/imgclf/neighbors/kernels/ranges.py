"""One query against given row ranges, folded into its top-k in one compiled pass.

An inverted file's batch path computes a list at a time with the block kernels
(a BLAS product and a few NumPy calls each, ~60 us a list whatever its size).
That suits many queries per list; one query probing 128 lists of ~56 HOG rows
spent 8 ms on those calls. Here the probed rows are read in place, range by
range, and each distance goes straight into the running top-k.

The distances are the block kernels' quantities, in float32:

- L2: ``max(|q|^2 + |x|^2 - 2 q.x, 0)`` with the rows' stored ``|x|^2``;
- L1: ``sum_j |q_j - x_j|``.

Sums run in another order than BLAS's, so a distance may differ from the batch
path's in its last bits (as a single query's does from a batch's in any BLAS
search of float rows).

:func:`scan_ranges_u8` does the same for uint8 rows (the codes a quantized IVF
scans), with exact int32 distances (squared L2 or L1).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int32, uint64

from imgclf.neighbors.kernels.rows import _sad_row, _squared_distance
from imgclf.neighbors.kernels.topk import _offer

__all__ = ["reference_scan", "scan_ranges_f32", "scan_ranges_u8"]


# (inlined into the caller, which carries the same flags: reassociation vectorises the sums)
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"}, inline="always")
def _dot(query, rows, row):
    total = np.float32(0)
    for j in range(uint64(rows.shape[1])):
        total += query[j] * rows[uint64(row), j]
    return total


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"}, inline="always")
def _sad(query, rows, row):
    total = np.float32(0)
    for j in range(uint64(rows.shape[1])):
        total += abs(query[j] - rows[uint64(row), j])
    return total


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def scan_ranges_f32(query, rows, norms, ranges, ids, squared, best, best_index):
    """Fold the distances from ``query`` ``(d,)`` to ``rows[lo:hi]`` of every range into
    ``best`` ``(k,)`` float32 / ``best_index`` ``(k,)`` int64 (sorted; ties: lower id).

    ``rows`` ``(n, d)`` float32; ``norms`` ``(n,)`` their squared norms (L2, ``squared``);
    ``ranges`` ``(r, 2)`` int64; ``ids`` ``(n,)`` each row's id, returned and used by
    the tie rule. Unfilled slots hold ``inf`` and id -1.
    """
    query_norm = _dot(query, query.reshape(1, -1), 0) if squared else np.float32(0)
    worst = best[best.shape[0] - 1]
    for r in range(ranges.shape[0]):
        for row in range(ranges[r, 0], ranges[r, 1]):
            if squared:
                value = max(query_norm + norms[row] - 2 * _dot(query, rows, row), np.float32(0))
            else:
                value = _sad(query, rows, row)
            if value <= worst:
                worst = _offer(best, best_index, value, ids[row], worst)


NARROW_ROW_BYTES = 256
"""Squared L2 over uint8 rows up to this wide is measured four rows a step by plain loops
(:func:`_ssd_rows4`): for 128-byte rows ~2x faster than ``vpmaddwd`` a row, whose
horizontal sum each row pays; at 352 bytes the two are even, past that the row kernel wins."""


@numba.njit(nogil=True, cache=True)
def scan_ranges_u8(query, rows, ranges, squared, best, best_index):
    """As :func:`scan_ranges_f32` for uint8 ``rows`` ``(n, d)`` and ``query`` ``(d,)``,
    the rows' own positions the ids: ``best`` ``(k,)`` int32, exact squared L2
    (``squared``) or L1 distances.

    Rows of whole 32-byte chunks (:data:`~.rows.SIMD_ROW_BYTES`; an IVF pads its codes
    so) are measured by ``vpmaddwd`` / ``vpsadbw`` where the CPU has AVX2: HOG + colour
    codes, 334 wide padded to 352, ~2x (L2) and ~2.5x (L1) faster than the plain loop
    that runs otherwise (:func:`~.rows._squared_distance`, :func:`~.rows._sad_row`).
    Squared L2 over rows up to :data:`NARROW_ROW_BYTES` wide (the 128 principal
    components of HOG + colour) goes four rows a step (:func:`_ssd_rows4`).
    """
    if query.shape[0] != rows.shape[1]:
        raise ValueError("the query and the rows differ in width")
    worst = best[best.shape[0] - 1]
    four = squared and rows.shape[1] <= NARROW_ROW_BYTES
    for r in range(ranges.shape[0]):
        row, hi = ranges[r, 0], ranges[r, 1]
        while four and row + 4 <= hi:
            values = _ssd_rows4(query, rows, row)
            for i in range(4):
                if values[i] <= worst:
                    worst = _offer(best, best_index, values[i], row + i, worst)
            row += 4
        worst = _scan_rows(query, rows, row, hi, squared, best, best_index, worst)


@numba.njit(nogil=True, cache=True, inline="always")
def _scan_rows(query, rows, lo, hi, squared, best, best_index, worst):
    """Rows ``lo..hi`` one at a time into the top-k; returns the k-th distance after."""
    query = query.reshape(1, -1)  # (the row kernels take a query row of a 2-D array)
    for row in range(lo, hi):
        if squared:
            value = int32(_squared_distance(rows, row, query))
        else:
            value = int32(_sad_row(query, 0, rows, row))
        if value <= worst:
            worst = _offer(best, best_index, value, row, worst)
    return worst


@numba.njit(nogil=True, cache=True, inline="always")
def _ssd_rows4(query, rows, row):
    """Squared L2 from ``query`` to ``rows[row : row + 4]``, int32 (exact: 255^2 d < 2^31
    for ``d <=`` :data:`NARROW_ROW_BYTES`): each query byte read once for four rows, and
    LLVM vectorises the loop over the features."""
    r0, d = uint64(row), uint64(rows.shape[1])
    a0, a1, a2, a3 = int32(0), int32(0), int32(0), int32(0)
    for j in range(d):
        q = int32(query[j])
        t0, t1 = q - int32(rows[r0, j]), q - int32(rows[r0 + uint64(1), j])
        t2, t3 = q - int32(rows[r0 + uint64(2), j]), q - int32(rows[r0 + uint64(3), j])
        a0, a1 = int32(a0 + t0 * t0), int32(a1 + t1 * t1)
        a2, a3 = int32(a2 + t2 * t2), int32(a3 + t3 * t3)
    return (a0, a1, a2, a3)


def reference_scan(query, rows, ranges, ids, squared: bool, k: int):
    """The same top-k the plain NumPy way (float64 distances, stable sort by id)."""
    picked = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    diff = rows[picked].astype(np.float64) - np.asarray(query, np.float64)
    dist = (diff**2).sum(1) if squared else np.abs(diff).sum(1)
    order = np.lexsort((ids[picked], dist))[:k]
    return dist[order], ids[picked][order]
