"""What the cascade keeps of every database row, built once per index.

Group sums (:func:`_group_sums`; L1, and the single-stage pruner), groups of
features learned by pairing correlated ones (:func:`_pair_up`), principal axes
rounded to int16 (:func:`_principal_axes`) and every row's projection on them
(:func:`_project_rows`), and the codes the stages store (:func:`_codes`,
:func:`_paired_codes`). The query's side of the same numbers is in
:mod:`.bounds`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int16, int32, int64, uint64
from threadpoolctl import threadpool_limits

_AXES_SAMPLE = 2048  # rows the principal axes are estimated from
_PCA_SCALE = 1 << 14  # axes are rounded to multiples of 2^-14 (int16)
_PAIRS_PAD = 16  # rows of zeros after L2's paired first-stage codes (read sixteen at a time)
_C_X_BLOCK = 1 << 16  # rows whose c_x is summed at once (16 MiB of float64 at 32 axes)


@numba.njit(nogil=True, cache=True)
def _group_sums(X, rows, groups, lo, hi, sums, norms, residual):
    """Positions ``lo..hi`` (database rows ``rows[lo..hi]``): ``sums[i, j]`` = sum of
    ``X[rows[i], groups[j]]``, ``norms[i] = |x|^2`` and ``residual[i] = r_x =
    sqrt(g |x|^2 - sum_j S_x[j]^2)`` (an exact integer's root)."""
    for i in range(lo, hi):
        row = X[rows[i]]
        squares = int64(0)
        for j in range(groups.shape[0]):
            total = int32(0)
            for t in range(groups.shape[1]):
                total += int32(row[groups[j, t]])
            sums[i, j] = total
            squares += total * total
        norms[i] = _squared_norm(row)
        residual[i] = np.sqrt(np.float64(groups.shape[1] * norms[i] - squares))


@numba.njit(nogil=True, cache=True)
def _squared_norm(row):
    """``|x|^2`` of a uint8 row, exact: in int32 pieces of 32,768 features (255^2 2^15 < 2^31)."""
    sq = int32(0)
    big = int64(0)
    for t in range(row.shape[0]):
        sq = int32(sq + int32(row[t]) * int32(row[t]))
        if t % 32768 == 32767:
            big += sq
            sq = 0
    return big + sq


@numba.njit(nogil=True, cache=True)
def _coarse_sums(sums, labels, lo, hi, out):
    """``out[l, i]`` = sum of ``sums[i, j]`` over ``labels[j] == l``, rows ``lo..hi`` (exact)."""
    for i in range(lo, hi):
        for c in range(out.shape[0]):
            out[c, i] = 0
        for j in range(sums.shape[1]):
            out[labels[j], i] += sums[i, j]


@numba.njit(nogil=True, cache=True)
def _project(X, axes, mean, sigma, lo, hi, out):
    """L2 first summaries of rows ``lo..hi``: ``(P_int (x - mu) / sigma, rho)`` into ``out``.

    ``P_int (x - mu)`` is exact in int32: ``|P_int[j]| <= 2^14 (1 + eps)`` and
    ``|x - mu| <= 255 sqrt(d)``, so by Cauchy-Schwarz each sum stays below 2^31
    for ``d <= 2^16``. Returns the largest ``|x - mu|`` seen.
    """
    m, d = axes.shape
    centred = np.empty(d, np.int16)
    largest = 0.0
    for i in range(lo, hi):
        row = X[i]
        sq = int64(0)
        for t in range(d):
            c = int16(int16(row[t]) - mean[t])
            centred[t] = c
            sq += int32(c) * int32(c)
        projected = 0.0
        for j in range(m):
            axis = axes[j]
            dot = int32(0)
            for t in range(d):
                dot = int32(dot + int32(axis[t]) * int32(centred[t]))
            z = dot / sigma
            out[j, i] = z
            projected += z * z
        out[m, i] = np.sqrt(max(sq - projected, 0.0))
        largest = max(largest, np.sqrt(sq))
    return largest


def _pair_up(columns: np.ndarray, target: int) -> np.ndarray:
    """Label each column with a group: merge the most correlated pairs until ``target`` remain.

    Each round pairs groups (each in at most one pair, so the count at most
    halves) greedily by decreasing correlation of their sums over the sample
    rows ``columns`` (s, c), among each group's 32 best partners; groups left
    over are paired in order while the round needs pairs. Rounds that pair
    everything keep the groups equal in size.
    """
    sums = columns.astype(np.float32)
    labels = np.arange(sums.shape[1])
    while sums.shape[1] > target:
        groups = sums.shape[1]
        merges = groups - max(target, (groups + 1) // 2)
        z = sums - sums.mean(axis=0)
        z /= np.maximum(np.linalg.norm(z, axis=0), 1e-12)  # constant columns: correlation 0
        with threadpool_limits(1):  # small products; BLAS threads only contend
            corr = z.T @ z
        first, second, value = _best_partners(corr, min(32, groups - 1))
        new = _greedy_pairs(first, second, np.argsort(-value, kind="stable"), merges)
        merged = np.zeros((len(sums), groups - merges), np.float32)
        np.add.at(merged.T, new, sums.T)
        labels, sums = new[labels], merged
    return labels


@numba.njit(nogil=True, cache=True)
def _best_partners(corr, width):
    """The ``width`` most correlated other columns of each column: (column, partner, corr)."""
    groups = corr.shape[0]
    first = np.empty(groups * width, np.int64)
    second = np.empty(groups * width, np.int64)
    value = np.empty(groups * width, np.float32)
    for a in range(groups):
        best, where = value[a * width : (a + 1) * width], second[a * width : (a + 1) * width]
        best[:] = -np.inf
        where[:] = a
        for b in range(groups):
            if b != a and corr[a, b] > best[-1]:
                _keep_largest(best, where, corr[a, b], b)
        first[a * width : (a + 1) * width] = a
    return first, second, value


@numba.njit(nogil=True, cache=True)
def _keep_largest(values, where, value, position):
    """Insert ``value`` into the descending ``values`` (dropping the last) and its position."""
    slot = values.shape[0] - 1
    while slot > 0 and values[slot - 1] < value:
        values[slot] = values[slot - 1]
        where[slot] = where[slot - 1]
        slot -= 1
    values[slot] = value
    where[slot] = position


@numba.njit(nogil=True, cache=True)
def _greedy_pairs(first, second, order, merges):
    """New labels: ``merges`` disjoint pairs, best candidates first, then leftovers in order."""
    groups = first.max() + 1
    new = np.full(groups, -1, np.int64)
    count = 0
    for o in order:
        a, b = first[o], second[o]
        if count < merges and a != b and new[a] < 0 and new[b] < 0:
            new[a] = new[b] = count
            count += 1
    single = merges  # groups after the pairs keep their own label
    pending = -1
    for g in range(groups):
        if new[g] >= 0:
            continue
        if count < merges and pending >= 0:
            new[pending] = new[g] = count
            count += 1
            pending = -1
        elif count < merges:
            pending = g
        else:
            new[g] = single
            single += 1
    if pending >= 0:  # an odd one out (the round needed one pair fewer than it could make)
        new[pending] = single
    return new


def _principal_axes(database: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(P_int, mu, sigma)``: ``m`` principal axes of a sample, rounded, and their norm.

    Randomised subspace iteration on evenly spaced rows (deterministic), each
    step orthonormalised through its small Gram matrix. Only the bound's
    tightness depends on how good the axes are, never its validity:
    ``sigma >= ||P_int||_2`` makes ``P_int / sigma`` a contraction.
    """
    n, d = database.shape
    sample = database[np.linspace(0, n - 1, min(n, _AXES_SAMPLE)).astype(np.int64)]
    mean = np.rint(sample.mean(axis=0))
    sample = sample.astype(np.float32) - mean.astype(np.float32)
    basis = np.random.default_rng(0).standard_normal((d, min(d, m + 8))).astype(np.float32)
    with threadpool_limits(1):  # small products; BLAS threads only contend
        for _ in range(3):
            basis = _orthonormal(sample.T @ (sample @ basis))
        projected = (sample @ basis).astype(np.float64)
    _, vectors = np.linalg.eigh(projected.T @ projected)
    axes = basis.astype(np.float64) @ vectors[:, ::-1][:, :m]  # (d, m), orthonormal columns
    axes = np.ascontiguousarray(np.rint(axes.T * _PCA_SCALE), np.int16)
    gram = axes.astype(np.float64) @ axes.T.astype(np.float64)  # exact: integers below 2^53
    sigma = np.sqrt(np.linalg.eigvalsh(gram)[-1]) * (1 + 2.0**-30)
    return axes, mean.astype(np.int16), float(sigma)


def _orthonormal(basis: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning ``basis`` (directions with no weight are dropped)."""
    values, vectors = np.linalg.eigh(basis.T.astype(np.float64) @ basis.astype(np.float64))
    keep = values > values[-1] * 1e-10
    if not keep.any():  # no variance at all: any axes will do
        return np.eye(*basis.shape, dtype=np.float32)
    return (basis @ (vectors[:, keep] / np.sqrt(values[keep])).astype(np.float32)).astype(
        np.float32
    )


@numba.njit(nogil=True, cache=True)
def _project_rows(X, rows, axes, mean, sigma, lo, hi, z, squares):
    """Positions ``lo..hi`` (rows ``X[rows[i]]``): ``z[i] = P_int (x - mu) / sigma`` and
    ``squares[i] = |x - mu|^2``, exact integers before the division (as :func:`_project`
    computes for a query), four rows per pass over the axes (each axis read once for four)."""
    m, d = axes.shape
    centred = np.empty((4, d), np.int16)
    for i0 in range(lo, hi, 4):
        block = min(4, hi - i0)
        for b in range(4):  # a short last block repeats its last row
            row = X[rows[min(i0 + b, hi - 1)]]
            sq = int64(0)
            for t in range(d):
                v = int16(int16(row[t]) - mean[t])
                centred[b, t] = v
                sq += int32(v) * int32(v)
            if b < block:
                squares[i0 + b] = sq
        for j in range(m):
            d0 = d1 = d2 = d3 = int32(0)  # exact: see _project
            for t in range(uint64(d)):
                a = int32(axes[j, t])
                d0 = int32(d0 + a * int32(centred[0, t]))
                d1 = int32(d1 + a * int32(centred[1, t]))
                d2 = int32(d2 + a * int32(centred[2, t]))
                d3 = int32(d3 + a * int32(centred[3, t]))
            dots = (d0, d1, d2, d3)
            for b in range(block):
                z[i0 + b, j] = dots[b] / sigma


def _codes(summary: np.ndarray, dtype, per_row=False) -> tuple[np.ndarray, np.ndarray]:
    """``u = round((c - offset) / scale)`` as ``dtype`` (int8 or int16) per row of ``summary``
    (m, n), and (offset, scale, rounding error) per row. The offsets centre each
    range; one scale for all rows spreads the widest over all but 3 steps of the
    type (so the bound needs no weights), or with ``per_row`` each row's own (a
    float32 number: the bound multiplies the codes back)."""
    steps = 2.0 ** (8 * np.dtype(dtype).itemsize) - 4
    low, high = summary.min(axis=1), summary.max(axis=1)
    if per_row:
        scale = np.where(high > low, (high - low) / steps, 1.0).astype(np.float32)
        scale = scale.astype(np.float64)
    else:
        widest = (high - low).max()
        scale = np.full(len(summary), widest / steps if widest > 0 else 1.0)
    offset = (low + high) / 2
    codes = np.rint((summary - offset[:, None]) / scale[:, None]).astype(dtype)
    return codes, np.stack([offset, scale, scale / 2 * (1 + 2.0**-20)])


def _paired_codes(first: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2's first-stage codes ``(m, n)`` as :func:`_dots8` reads them, and ``c_x = sum_j (s_j
    u_j)^2`` per row (float32).

    Pair ``p`` of axes is row ``p`` of the result, ``[u_2p(x_0), u_2p+1(x_0), u_2p(x_1),
    ...]`` (a missing last axis is zeros), with 16 rows of zeros after the last so that
    sixteen-row steps never read past the end.
    """
    m, n = first.shape
    n_pairs = (m + 1) // 2
    padded = np.zeros((2 * n_pairs, n + _PAIRS_PAD), np.int8)
    padded[:m, :n] = first
    pairs = np.ascontiguousarray(padded.reshape(n_pairs, 2, -1).transpose(0, 2, 1))
    steps = scales.astype(np.float32).astype(np.float64)[:, None]
    c_x = np.empty(n, np.float32)
    for lo in range(0, n, _C_X_BLOCK):  # (a float64 copy of every row's codes is 8x them)
        scaled = first[:, lo : lo + _C_X_BLOCK].astype(np.float64) * steps
        c_x[lo : lo + _C_X_BLOCK] = np.einsum("ij,ij->j", scaled, scaled)
    return pairs.reshape(n_pairs, -1), c_x
