"""Lower bounds on distances: the query's summaries and each stage's bound on one row.

:func:`_summarise` makes everything a query needs, once a search (its group
sums or projections, codes and weights); :func:`_first_bounds` and
:func:`_first_bounds_l1` bound runs of rows, :func:`_second_bound` one row;
:func:`_thresholds` turns the k-th best distance into each stage's limit,
allowing for every rounding, so that a bound is weakened, never wrong.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int16, int32, int64, uint32, uint64

from imgclf.neighbors.kernels.rows import _dots8, _sad_row, _sad_rows4
from imgclf.neighbors.pruning.summaries import _group_sums, _project

_BIG = np.iinfo(np.int64).max


@numba.njit(nogil=True, cache=True)
def _lower_bounds(summary, query_sums, squared):
    """The group-sum bound (stage 2 without its residual term) of every row, int64
    (for tests: the cascade computes it only for the rows it needs)."""
    n, groups = summary.shape
    out = np.empty(n, np.int64)
    for i in range(n):
        total = 0
        for j in range(groups):
            diff = np.int64(summary[i, j]) - query_sums[j]
            total += diff * diff if squared else abs(diff)
        out[i] = total
    return out


@numba.njit(nogil=True, cache=True, inline="always")
def _first_bounds(first, norms1, weights, consts1, lo, hi, dots, out, at):
    """L2: ``out[at + i]``, a lower bound of ``sum_j (q_j - s_j u_j)^2`` for row ``lo + i``.

    ``= |q|^2 - 2 sum_j w_j u_j + c_x`` with ``w_j = q_j s_j`` and ``c_x = sum_j (s_j
    u_j)^2`` (``norms1``, float32); the dot product is exact in integers with ``w_j``
    rounded to ``delta W_j`` (:func:`_query_weights`), less the allowance that
    rounding (and float32) may cost. ``consts1`` = (|q|^2, 2 delta, allowance).
    """
    _dots8(first, lo, (hi - lo + 7) // 8, weights, dots)
    qq, two_delta, allowance = consts1[0], consts1[1], consts1[2]
    for i in range(uint64(hi - lo)):
        out[uint64(at) + i] = np.float32(
            qq - two_delta * dots[i] + norms1[uint64(lo) + i] - allowance
        )


@numba.njit(nogil=True, cache=True)
def _query_weights(qfirst, scales, n_pairs, largest_norm):
    """The query's first-stage weights ``W_j = round(q_j s_j / delta)`` as int16 pairs, and
    (|q|^2, 2 delta, allowance) for :func:`_first_bounds`.

    ``|sum_j (w_j - delta W_j) u_j| <= (delta / 2) 126 m`` (``|u_j| <= 126``, ``m = 2
    n_pairs`` codes), so the true sum is at least the rounded one less ``252 n_pairs
    delta``; the float32 norms and result add at most ``2^-22 M``, ``M`` bounding every
    term (``largest_norm``: the largest ``c_x``).
    """
    m = qfirst.shape[0]
    w = np.zeros(2 * n_pairs)
    for j in range(m):
        w[j] = np.float64(qfirst[j]) * np.float64(scales[j])  # (exact: two float32)
    delta = max(np.abs(w).max() / 32000.0, 1e-30)
    codes = np.rint(w / delta)
    weights = np.empty(n_pairs, np.int32)
    for p in range(n_pairs):
        weights[p] = (int32(codes[2 * p + 1]) << 16) | (int32(codes[2 * p]) & 0xFFFF)
    qq = 0.0
    for j in range(m):
        qq += np.float64(qfirst[j]) ** 2
    largest = qq + largest_norm + 2 * delta * 126 * np.sum(np.abs(codes))
    allowance = 252 * n_pairs * delta * (1 + 2.0**-20) + 2.0**-21 * largest
    return weights, np.array([qq, 2 * delta, allowance])


@numba.njit(nogil=True, cache=True, inline="always")
def _first_bounds_l1(first, qcodes, scale, lo, hi, out, at):
    """L1: ``out[at + i] = s sum_j |Q_j - u_ij|``, row ``lo + i`` (row-major uint8 codes; exact
    in float32: at most 64 features a group, so ``s <= 64`` and the sum ``<= 255 * 64``).
    Four rows a step (the last step repeats row ``hi - 1``)."""
    last = hi - 1
    for i in range(lo, hi, 4):
        sads = _sad_rows4(qcodes, 0, first, i, min(i + 1, last), min(i + 2, last), min(i + 3, last))
        for t in range(min(4, hi - i)):
            out[at + i - lo + t] = scale * np.float32(sads[t])


@numba.njit(nogil=True, cache=True, inline="always")
def _group_bound(sums, row, qsums, squared):
    """``sum_j |S_q[j] - S_x[j]|`` or ``sum_j (S_q[j] - S_x[j])^2`` for one row, int64.

    Group sums are at most 255 * 16 < 2^12: differences fit int16, 256 of
    their squares fit uint32 and 256 absolute differences int32.
    """
    r, groups = uint64(row), uint64(sums.shape[1])
    total = int64(0)
    for start in range(uint64(0), groups, uint64(256)):
        stop = min(start + uint64(256), groups)
        if squared:
            part = uint32(0)
            for j in range(start, stop):
                diff = int32(int16(sums[r, j]) - qsums[j])
                part = uint32(part + uint32(diff * diff))
            total += part
        else:
            part = int32(0)
            for j in range(start, stop):
                part = int32(part + int32(abs(int16(int16(sums[r, j]) - qsums[j]))))
            total += part
    return total


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _pca_bound(codes, row, q):
    """L2 with principal axes: ``sum_j (q_j - u_j)^2`` over one row's codes, float32.

    The terms are non-negative, so the float32 sum in any order (``reassoc``
    lets it be a vector loop) is within ``m 2^-24`` of the exact one.
    """
    r = uint64(row)
    total = np.float32(0)
    for j in range(uint64(codes.shape[1])):
        diff = q[j] - np.float32(codes[r, j])
        total += diff * diff
    return total


@numba.njit(nogil=True, cache=True, inline="always")
def _coded_group_bound(codes, row, qcodes):
    """L1: ``sum_j |Q_j - u_j|`` for one row's rounded group sums ``u = round(S_x / g)``
    against the query's ``Q`` (``qcodes[1]``; both uint8), int64: times ``g``, within
    ``slack2`` of the group-sum bound (see :func:`_summarise`)."""
    return _sad_row(qcodes, 1, codes, row)


@numba.njit(nogil=True, cache=True, inline="always")
def _second_bound(sums, residual, row, qsums, qresidual, q2, qcodes, squared, coded):
    """The stage-2 bound of one row, float64: in units of the codes (``coded``), else of
    ``|q - x|_1`` or ``g |q - x|^2``."""
    if coded and squared:
        return np.float64(_pca_bound(sums, row, q2))
    if coded:
        return np.float64(_coded_group_bound(sums, row, qcodes))
    b = np.float64(_group_bound(sums, row, qsums, squared))
    if squared:
        b += (residual[row] - qresidual) ** 2
    return b


@numba.njit(nogil=True, cache=True, inline="always")
def _thresholds(tau, setting):
    """The first and second bounds a row may have and still tie with k-th distance ``tau``.

    ``setting`` = (squared, cascade, coded, group, slack, residual_scale, scale,
    slack2, scale2): the search's flags and the query's allowances.

    Code bounds (the first; the second with ``coded``) are in units of their
    codes (``scale`` per step; L1: half steps) and summed in float32. With the
    allowances for rounding: ``slack`` for the codes (in distance units, see
    :func:`_summarise`), ``2^-17`` for a float32 sum of up to 32 terms and
    ``2^-14`` for one of up to 256 (:func:`_pca_bound`); ``2^-30`` for the
    float64 residual term of the group-sum bound (``residual_scale = (r_q + max r_x)^2``).
    """
    squared, cascade, coded, group, slack, residual_scale, scale, slack2, scale2 = setting
    if tau == _BIG:
        return np.inf, np.inf
    t = np.float64(tau)
    if coded and squared:
        second = ((np.sqrt(t) + slack2) / scale2) ** 2 * (1 + 2.0**-14)
    elif coded:
        second = (t + slack2) / scale2  # in steps of the rounded sums
    elif squared:
        second = group * t + 2.0**-30 * (group * t + residual_scale)
    else:
        second = t
    if not cascade:  # the second bound is the first, stored in float32
        return second * (1 + 2.0**-20), second
    first = ((np.sqrt(t) + slack) / scale) ** 2 if squared else t + slack
    return first * (1 + 2.0**-17), second


@numba.njit(nogil=True, cache=True)
def _query_codes(summary, codes, largest, spread, per_row):
    """The query's numbers ``c`` in units of the rows' codes, ``q = (c - offset) / scale``
    (float32), with the slack they allow (L2) and the scale; with ``per_row`` scales,
    in units of distance, ``q = c - offset`` (and scale 1: the bound scales the codes).

    Each difference ``q - u``, scaled back, is within ``e_j = error + 2^-22 (|c_q
    - offset| + 2^15 scale)`` of ``c_q - c_x``; ``slack = |e| + 2^-22 (|q - mu|
    + max |x - mu|)`` (``c_x`` is computed in float64).
    """
    offset, scale, error = codes[0], codes[1], codes[2]
    unit = 1.0 if per_row else scale[0]
    q = (summary - offset) / unit
    e = error + 2.0**-22 * (np.abs(summary - offset) + 2.0**15 * scale)
    slack = np.sqrt(np.sum(e * e)) + 2.0**-22 * (largest + spread)
    return q.astype(np.float32), slack, unit, e


@numba.njit(nogil=True, cache=True)
def _rounded_into(sums, scale, out):
    """``out[j] = round(sums[j] / scale)`` (uint8); returns ``sum_j |sums[j] - scale out[j]|``."""
    error = 0.0
    for j in range(sums.shape[0]):
        u = min(max(np.rint(sums[j] / scale), 0.0), 255.0)
        out[j] = np.uint8(u)
        error += abs(sums[j] - scale * u)
    return error


@numba.njit(nogil=True, cache=True)
def _summarise(query, groups, axes, mean, labels, consts, codes, codes2, squared, cascade, coded):
    """The query's (group sums, residual, first summary, its L1 codes, slack, scale,
    second summary (``coded``), its slack, its scale).

    ``consts`` = (sigma, largest |x - mu|, largest r_x) of the database;
    ``codes`` (``codes2``) = (offset, scale, rounding error) of each first-stage
    (second-stage) number, stored as ``u = round((c - offset) / scale)``.

    L2 sums ``(q - u)^2`` in float32 (see :func:`_query_codes`). The first stage
    uses the leading ``m1`` axes and ``rho_1``, the second all ``m2`` and ``rho_2``.

    L1 rounds its coarse sums as the rows' are, ``Q = round(S_q / s)`` (uint8):
    ``|S_q - S_x| >= s |Q - u| - |S_q - s Q| - |S_x - s u|``, so the first bound
    ``s sum_j |Q_j - u_j|`` may exceed the distance by ``slack = sum_j |S_q,j -
    s Q_j| + sum_j s / 2``; the second likewise with the group sums (``s = 8``,
    ``slack2`` with 4 per group). ``qcodes`` holds the two rounded query rows.
    """
    sums = np.empty((1, groups.shape[0]), np.uint16)
    norms = np.empty(1, np.int64)
    residual = np.empty(1)
    _group_sums(query, np.zeros(1, np.int64), groups, 0, 1, sums, norms, residual)
    qsums = sums[0].astype(np.int16)
    q2, slack2, scale2 = np.zeros(1, np.float32), 0.0, 1.0
    if squared and (cascade or coded):
        m1, m2 = codes.shape[1] - 1, axes.shape[0]
        projected = np.zeros((m2 + 1, 1))
        largest = _project(query, axes, mean, consts[0], 0, 1, projected)
        z = projected[:, 0]
        qfirst, slack, scale = np.zeros(1, np.float32), 0.0, 1.0
        if cascade:
            first = np.empty(m1 + 1)
            first[:m1] = z[:m1]
            first[m1] = np.sqrt(z[m2] ** 2 + np.sum(z[m1:m2] ** 2))  # rho_1 from rho_2
            qfirst, slack, scale, _ = _query_codes(first, codes, largest, consts[1], True)
        if coded:
            q2, slack2, scale2, _ = _query_codes(z, codes2, largest, consts[1], False)
        qcodes = np.zeros((2, 1), np.uint8)
        return qsums, residual[0], qfirst, qcodes, slack, scale, q2, slack2, scale2
    qfirst, qcodes, slack, scale = np.zeros(1, np.float32), np.zeros((2, 1), np.uint8), 0.0, 1.0
    if cascade or coded:  # L1: the sums rounded as the rows' are, and the slack they allow
        coarse = np.zeros(codes.shape[1] if cascade else 0)
        for j in range(labels.shape[0] if cascade else 0):
            coarse[labels[j]] += qsums[j]
        qcodes = np.zeros((2, max(coarse.shape[0], qsums.shape[0])), np.uint8)
        if cascade:
            scale = codes[1, 0]
            slack = _rounded_into(coarse, scale, qcodes[0]) + np.sum(codes[2])
        if coded:
            scale2 = codes2[1, 0]
            slack2 = _rounded_into(qsums.astype(np.float64), scale2, qcodes[1])
            slack2 += np.sum(codes2[2])
    return qsums, residual[0], qfirst, qcodes, slack, scale, q2, slack2, scale2
