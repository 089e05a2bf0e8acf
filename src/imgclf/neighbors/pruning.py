"""Exact search for a few queries by a cascade of lower bounds.

One query against a large database is bound by memory bandwidth: every byte
of the database is read to compute a single row of distances (50,000 CIFAR
images are 154 MB, ~8 ms at 20 GB/s). Small summaries give lower bounds on
every distance, and only rows whose bound could beat the k-th best need their
exact distance. Three stages, each run only on the rows that survived the
one before:

1. **First bound**, 32 (L2) or 64 (L1) bytes per row, over every row (on
   CIFAR 1.6 or 3.2 MB, not 154 MB):

   * L2: 31 principal axes of a sample plus the residual norm, int8 codes
     ``u`` with a scale ``s_j`` per axis, two axes a pair of bytes, so that
     ``vpmaddwd`` dots sixteen rows at a time with the query's weights ``q_j
     s_j`` rounded to int16: ``sum_j (q_j - s_j u_j)^2 = |q|^2 - 2 sum_j q_j
     s_j u_j + |s u|^2``, less an allowance for the rounding
     (:func:`_query_weights`; ``|s u|^2`` is stored per row). For
     ``A`` (``m x d``) of spectral norm at most 1, ``rho(v)^2 = |v|^2 -
     |A v|^2`` is a seminorm, so ``|q - x|^2 = |A(q - x)|^2 + rho(q - x)^2 >=
     |A(q - mu) - A(x - mu)|^2 + (rho(q - mu) - rho(x - mu))^2``. ``A`` is
     the axes rounded to int16 (``P_int = round(2^14 P)``) divided by its
     spectral norm, so ``A(x - mu)`` is an exact integer vector scaled once.
   * L1: sums over 64 coarse groups of features, rounded to uint8
     (``u = round(S / s)``), row-major, one ``vpsadbw`` pass per row. For
     any partition into groups ``G``, by the triangle inequality
     ``|q - x|_1 >= sum_G |S_q[G] - S_x[G]|``.

2. **Second bound**, for the rows past the first:

   * L2: the same with 127 axes (int16 codes, one scale, row-major);
   * L1: sums over 384 groups of 8 features, rounded to uint8 (``8 u``
     within 4 of the sum).

   The groups are learned from a sample: features are paired by
   correlation, pairs paired again (8 features), and on for the coarse
   groups. On CIFAR they come out as compact patches of one colour channel;
   far fewer rows survive them than survive consecutive features.

3. **Exact distances** (int64 L1 or squared L2; where the CPU has AVX2, L1
   by ``vpsadbw``, L2 by ``vpmaddwd`` on widened differences) of the rows
   that survive both, in increasing order of their second bound, stopping at
   the first bound above the k-th best distance.

Every rounding (codes, float32 sums) moves a bound by a known amount, and
the thresholds add that allowance before they prune: a bound is weakened,
never wrong (see :func:`_summarise` and :func:`_thresholds`).

The threshold ``tau``: the least first bound of every chunk of rows picks
about 200 seeds, the 16 (at least k) with the least second bounds are
measured, and the k-th smallest of their exact distances is at least the
true k-th distance, so a row whose bound exceeds ``tau`` cannot be among the
k nearest (nor tie with them). Threads take contiguous shares of the rows and
run the whole cascade on them, each pruning with the smallest k-th distance
any of them has found; the k best of all are merged, ties to the lower id as
everywhere in the engine. Scattered rows (short ranges) skip the first stage.

Without the cascade (small databases, or ``cascade=False`` for comparison)
the only bound is the sums of 16 consecutive features (uint16, exact; L2
adds the residual: ``g |q - x|^2 >= sum_j (S_q[j] - S_x[j])^2 + (r_q - r_x)^2``
by Cauchy-Schwarz).

On CIFAR-10 (k = 10, median over the test set) about 4% (L2) or 7% (L1) of
rows survive the first bound, 0.3% or 0.8% the second, and 0.2% or 0.7% are
measured exactly (``benchmarks/bench_single_query.py``).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import int16, int32, int64, types, uint32, uint64
from numba.core import cgutils
from numba.extending import intrinsic, overload
from threadpoolctl import threadpool_limits

from imgclf._progress import notice_if_slow
from imgclf.neighbors.kernels import _cpu, topk
from imgclf.neighbors.kernels.l1 import _sad256
from imgclf.neighbors.kernels.l2 import _ssd_avx2

__all__ = ["CASCADE_MIN_ROWS", "FIRST_DIMS", "GROUP", "SECOND_DIMS", "LowerBoundPruner"]

GROUP = 16  # features per summed group: divides the engine's padding (64)
L1_GROUP = 8  # and, by default, in L1's second stage (sums rounded to uint8: 8 u within 4)
FIRST_DIMS = {"l1": 64, "l2": 32}  # numbers per row in the first bound
SECOND_DIMS = {"l2": 128}  # numbers per row in the second bound: L2 127 principal axes and
# the residual (int16), L1 the sums of d / 8 groups (uint8)
FIRST_CODES = {"l1": np.uint8, "l2": np.int8}  # and their storage
CASCADE_MIN_ROWS = 1024  # below this, one group-sum pass is as fast
MAX_CASCADE_D = 1 << 16  # the L2 projections stay exact in int32 (see _project)
_SEEDS = 256  # rows (at least k) with the smallest first bounds ...
_SEED_SAMPLE = 1024  # bounds sampled to find the seeds
_SEEDS_EXACT = 16  # ... of which those (at least k) with the smallest second are measured:
# their k-th distance is the thread's first threshold
_SAMPLE = 1024  # rows the coarse groups are estimated from
_AXES_SAMPLE = 2048  # and the principal axes
_ROUND_BLOCK = 2048  # rows of sums rounded at once
_PAIRING_SAMPLE = 256  # rows the groups are learned from
_PCA_SCALE = 1 << 14  # axes are rounded to multiples of 2^-14 (int16)
_CHUNK = 256  # rows per vector pass of the first bound
_AHEAD = 8  # candidates whose group sums are fetched ahead of use
_AHEAD_EXACT = 2  # and whose pixels are
_MIN_RUN = 8  # the first stage needs ranges this long on average (it reads rows in runs)
_PAIRS_PAD = 16  # rows of zeros after L2's paired first-stage codes (read sixteen at a time)
_C_X_BLOCK = 1 << 16  # rows whose c_x is summed at once (16 MiB of float64 at 32 axes)
_BIG = np.iinfo(np.int64).max
_BLOCK = 16  # bounds tested at once for survivors (see _at_most)
_SURVIVORS_START = 4096  # room for survivors at first; grown as needed
_SEGMENT = 2048  # rows whose survivors _at_most makes room for at once (<= _SURVIVORS_START)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NO_CLASSES = np.zeros(0, np.int32)  # a search without classes (see _search_part)
_COMPILING = "compiling the single-image k-NN search (once after installing imgclf, ~1 minute)"
_CALLED: set[str] = set()  # the search methods called in this process (see _notes_compiling)


# --------------------------------------------------------------------------- #
# Summaries
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# The cascade, one thread's share of the rows
# --------------------------------------------------------------------------- #


@intrinsic
def _prefetch(typingctx, array, row, col):
    """Ask the CPU to fetch the cache line of ``array[row, col]`` (2-D, C order) early."""

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        index = [
            context.cast(builder, v, t, types.intp)
            for v, t in zip(args[1:], sig.args[1:], strict=True)
        ]
        shape = cgutils.unpack_tuple(builder, ary.shape, 2)
        strides = cgutils.unpack_tuple(builder, ary.strides, 2)
        ptr = cgutils.get_item_pointer2(context, builder, ary.data, shape, strides, "C", index)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )  # read, keep in all cache levels, data
        builder.call(fn, [builder.bitcast(ptr, i8p), *(ir.Constant(i32, v) for v in (0, 3, 1))])
        return context.get_dummy_value()

    return types.void(array, row, col), codegen


@numba.njit(nogil=True, cache=True, inline="always")
def _prefetch_row(array, row):
    """Fetch a whole row early: candidates are scattered, so the CPU cannot guess them."""
    for col in range(0, array.shape[1], 64 // array.itemsize):
        _prefetch(array, row, col)


# The hot loops index arrays directly with unsigned integers: no views (each is
# a reference count, an atomic shared by the threads) and no negative-index
# wraparound, so LLVM vectorises them.


def _dots8(pairs, lo, n8, weights, out):
    """``out[i] = sum_p u[p, 2r] w0[p] + u[p, 2r + 1] w1[p]`` for rows ``r = lo + i``,
    ``i < 8 n8``, int32: the L2 first stage's codes (int8, two axes a pair of bytes, see
    :func:`_paired_codes`) dotted with the query's weights (two int16 in each int32)."""


@numba.njit(nogil=True, cache=True)
def _dots8_loop(pairs, lo, n8, weights, out):
    """:func:`_dots8` by plain loops (any CPU)."""
    for i in range(8 * n8):
        out[i] = 0
    for p in range(pairs.shape[0]):
        w0 = int32(int16(weights[p] & 0xFFFF))
        w1 = int32(weights[p] >> 16)
        for i in range(8 * n8):
            c = 2 * (lo + i)
            out[i] = int32(out[i] + int32(pairs[p, c]) * w0 + int32(pairs[p, c + 1]) * w1)


@intrinsic
def _dots8_avx2(typingctx, pairs, lo, n8, weights, out):
    """:func:`_dots8` by ``vpmaddwd``, sixteen rows a step (an odd ``n8`` computes eight rows
    more than asked: ``pairs`` has the columns and ``out`` the room, see :func:`_paired_codes`)."""

    def codegen(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        v16i8, v16i16, v8i32 = (ir.VectorType(t, w) for t, w in ((i8, 16), (i16, 16), (i32, 8)))
        codes = context.make_array(sig.args[0])(context, builder, args[0])
        lo = context.cast(builder, args[1], sig.args[1], types.intp)
        n8 = context.cast(builder, args[2], sig.args[2], types.intp)
        w_ptr, out_ptr = (
            builder.bitcast(context.make_array(t)(context, builder, a).data, i32.as_pointer())
            for t, a in ((sig.args[3], args[3]), (sig.args[4], args[4]))
        )
        n_pairs = cgutils.unpack_tuple(builder, codes.shape, 2)[0]
        stride = cgutils.unpack_tuple(builder, codes.strides, 2)[0]
        data = builder.bitcast(codes.data, i8.as_pointer())
        pmadd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v8i32, [v16i16, v16i16]), "llvm.x86.avx2.pmadd.wd"
        )
        accs = [cgutils.alloca_once_value(builder, ir.Constant(v8i32, None)) for _ in range(2)]
        splat = ir.Constant(v8i32, [0] * 8)
        one = ir.Constant(intp, 1)
        # sixteen rows a step, two registers of sums: one broadcast of the weights for both
        steps = builder.lshr(builder.add(n8, one), one)
        with cgutils.for_range(builder, steps) as step:
            first_row = builder.shl(step.index, ir.Constant(intp, 4))
            column = builder.shl(builder.add(lo, first_row), one)  # two bytes a row
            for acc in accs:
                builder.store(ir.Constant(v8i32, None), acc)
            with cgutils.for_range(builder, n_pairs) as pair:
                w = builder.load(builder.gep(w_ptr, [pair.index]))
                lane = builder.insert_element(ir.Constant(v8i32, None), w, ir.Constant(i32, 0))
                both = builder.bitcast(builder.shuffle_vector(lane, lane, splat), v16i16)
                start = builder.add(builder.mul(pair.index, stride), column)
                for half, acc in enumerate(accs):
                    at = builder.gep(data, [builder.add(start, ir.Constant(intp, 16 * half))])
                    packed = builder.load(builder.bitcast(at, v16i8.as_pointer()), align=1)
                    dots = builder.call(pmadd, [builder.sext(packed, v16i16), both])
                    builder.store(builder.add(builder.load(acc), dots), acc)
            for half, acc in enumerate(accs):
                at = builder.add(first_row, ir.Constant(intp, 8 * half))
                target = builder.bitcast(builder.gep(out_ptr, [at]), v8i32.as_pointer())
                builder.store(builder.load(acc), target, align=4)
        return context.get_dummy_value()

    for arr, dtype, ndim in ((pairs, types.int8, 2), (weights, types.int32, 1),
                             (out, types.int32, 1)):  # fmt: skip
        if not (isinstance(arr, types.Array) and arr.dtype == dtype and arr.ndim == ndim
                and arr.layout == "C"):  # fmt: skip
            raise numba.core.errors.TypingError(f"_dots8_avx2: unexpected {arr}")
    return types.void(pairs, lo, n8, weights, out), codegen


@overload(_dots8, jit_options={"nogil": True}, inline="always")
def _dots8_typed(pairs, lo, n8, weights, out):
    """``vpmaddwd`` where the CPU has AVX2 (int8 codes), else :func:`_dots8_loop`."""
    if _cpu.compiles_for("avx2") and pairs.dtype == types.int8:
        return lambda pairs, lo, n8, weights, out: _dots8_avx2(pairs, lo, n8, weights, out)
    return lambda pairs, lo, n8, weights, out: _dots8_loop(pairs, lo, n8, weights, out)


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


def _sad_row(q, qrow, x, row):
    """``sum_j |q[qrow, j] - x[row, j]|`` over ``x``'s width, int64 (uint8 rows)."""


@numba.njit(nogil=True, cache=True)  # (not inlined: numba's SSA check warns on it inside
def _sad_loop(q, qrow, x, row):  # the overload below; LLVM inlines it anyway)
    """:func:`_sad_row` by a plain loop (any integer rows)."""
    total = int32(0)  # exact: 255 w < 2^31
    for j in range(uint64(x.shape[1])):
        total = int32(total + abs(int32(q[uint64(qrow), j]) - int32(x[uint64(row), j])))
    return int64(total)


@overload(_sad_row, jit_options={"nogil": True}, inline="always")
def _sad_row_typed(q, qrow, x, row):
    """By ``vpsadbw`` where the CPU has AVX2 (whole 32-byte chunks; the dtypes are checked
    when typing, so callers with other rows compile), else :func:`_sad_loop`."""
    if not (_cpu.compiles_for("avx2") and q.dtype == x.dtype == types.uint8):
        return lambda q, qrow, x, row: _sad_loop(q, qrow, x, row)

    def sad_row(q, qrow, x, row):
        if x.shape[1] % 32 == 0:
            return _sad256(q, (qrow,), x, (row,))[0]
        return _sad_loop(q, qrow, x, row)

    return sad_row


def _sad_rows4(q, qrow, x, r0, r1, r2, r3):
    """:func:`_sad_row` of four rows at once (a tuple): one load of the query a chunk."""


@numba.njit(nogil=True, cache=True)
def _sad_loop4(q, qrow, x, r0, r1, r2, r3):
    """:func:`_sad_rows4` by plain loops."""
    return (_sad_loop(q, qrow, x, r0), _sad_loop(q, qrow, x, r1),
            _sad_loop(q, qrow, x, r2), _sad_loop(q, qrow, x, r3))  # fmt: skip


@overload(_sad_rows4, jit_options={"nogil": True}, inline="always")
def _sad_rows4_typed(q, qrow, x, r0, r1, r2, r3):
    """A 1 x 4 tile of ``vpsadbw`` where :func:`_sad_row` uses it, else :func:`_sad_loop4`."""
    if not (_cpu.compiles_for("avx2") and q.dtype == x.dtype == types.uint8):
        return lambda q, qrow, x, r0, r1, r2, r3: _sad_loop4(q, qrow, x, r0, r1, r2, r3)

    def sad_rows4(q, qrow, x, r0, r1, r2, r3):
        if x.shape[1] % 32 == 0:
            return _sad256(q, (qrow,), x, (r0, r1, r2, r3))
        return _sad_loop4(q, qrow, x, r0, r1, r2, r3)

    return sad_rows4


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


@numba.njit(nogil=True, cache=True)  # (not inlined by numba: see _sad_loop)
def _distance(pixels, row, query):
    """Exact squared L2 distance ``sum_t (q_t - x_t)^2`` from ``query`` (1, d) to database
    ``row``, int64, in plain loops: summed in int32 pieces of 2^15 terms (exact: 255^2
    2^15 < 2^31). :func:`_squared_distance` where the CPU has no AVX2; no row norms to
    keep (L1 distances are :func:`_sad_row`'s)."""
    r, d, zero = uint64(row), uint64(pixels.shape[1]), uint64(0)
    total = int64(0)
    for start in range(zero, d, uint64(1 << 15)):
        part = int32(0)
        for t in range(start, min(start + uint64(1 << 15), d)):
            diff = int32(query[zero, t]) - int32(pixels[r, t])
            part = int32(part + diff * diff)
        total += part
    return total


def _squared_distance(pixels, row, query):
    """:func:`_distance`, squared L2, by the fastest way this CPU has."""


@overload(_squared_distance, jit_options={"nogil": True}, inline="always")
def _squared_distance_typed(pixels, row, query):
    """``sum_k (q_k - x_k)^2`` by ``vpmaddwd`` on widened differences where the CPU has AVX2
    (uint8 rows of whole 16-byte chunks), else :func:`_distance`. For a scattered row the
    widened dot product of :func:`_distance` costs half as much again (~160 against ~100
    ns a CIFAR row in cache), and the cascade measures a few hundred such rows a query."""
    if not (_cpu.compiles_for("avx2") and query.dtype == pixels.dtype == types.uint8):
        return lambda pixels, row, query: _distance(pixels, row, query)

    def squared_distance(pixels, row, query):
        if pixels.shape[1] % 16 == 0:
            return _ssd_avx2(query, 0, pixels, row)
        return _distance(pixels, row, query)

    return squared_distance


@numba.njit(nogil=True, cache=True, inline="always")
def _measure(pixels, rowmap, position, query, squared):
    """The exact distance of the row whose summaries are at ``position`` (L1 by
    :func:`_sad_row`: ``vpsadbw`` where the CPU has it)."""
    if squared:
        return _squared_distance(pixels, rowmap[position], query)
    return _sad_row(query, 0, pixels, rowmap[position])


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
        return  # a seed, met again among the candidates
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


@intrinsic
def _least8(typingctx, values, lo, n8):
    """The least of ``values[lo : lo + 8 n8]`` (1-D float32, no NaN; +inf for none), eight
    lanes at a time. A loop over numba's ``min`` of floats stays scalar (one ``vminss`` a
    number): a third of the time of :func:`_chunk_minima` on CIFAR-10 went to it."""

    def codegen(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        f32 = ir.FloatType()
        lanes = ir.VectorType(f32, 8)
        array = context.make_array(sig.args[0])(context, builder, args[0])
        lo, n8 = (context.cast(builder, args[i], sig.args[i], types.intp) for i in (1, 2))
        start = builder.gep(builder.bitcast(array.data, f32.as_pointer()), [lo])
        least = cgutils.alloca_once_value(builder, ir.Constant(lanes, [float("inf")] * 8))
        with cgutils.for_range(builder, n8) as step:
            at = builder.gep(start, [builder.mul(step.index, ir.Constant(intp, 8))])
            eight = builder.load(builder.bitcast(at, lanes.as_pointer()), align=4)
            so_far = builder.load(least)
            smaller = builder.fcmp_ordered("<", eight, so_far)
            builder.store(builder.select(smaller, eight, so_far), least)
        reduce = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(f32, [lanes]), "llvm.vector.reduce.fmin.v8f32"
        )
        return builder.call(reduce, [builder.load(least)])

    if not (isinstance(values, types.Array) and values.dtype == types.float32
            and values.ndim == 1 and values.layout == "C"):  # fmt: skip
        raise numba.core.errors.TypingError(f"_least8: unexpected {values}")
    return types.float32(values, lo, n8), codegen


@numba.njit(nogil=True, cache=True, inline="always")
def _least(values, lo, hi):
    """The first position of the least of ``values[lo:hi]`` (float32, no NaN), counted
    from ``lo``: the least by :func:`_least8`, then the first equal to it."""
    n8 = (hi - lo) // 8
    least = _least8(values, lo, n8)
    for i in range(uint64(lo + 8 * n8), uint64(hi)):
        least = min(least, values[i])
    for i in range(hi - lo):
        if values[lo + i] == least:
            return i
    return 0


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


# (a module-level function: numba caches it on disk, which it does not for a
# closure over another jitted function)
@numba.njit(nogil=True, cache=True)
def _search_part(pixels, rowmap, sums, residual, first, norms1, groups, axes, mean,
                labels, consts, codes, codes2, query, ranges, ids, k, squared, cascade, coded,
                has_second, shared, part, classes, n_classes, n_top):  # fmt: skip
    """(distances (k,), ids (k,), [rows, past stage 1, past stage 2, exact], class
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
        _prefetch_row(pixels, rowmap[rows[order[i]]])
    exact = 0
    for i in range(order.shape[0]):
        shared[part] = best[k - 1]
        if second[order[i]] > _thresholds(shared.min(), setting)[stage]:
            break
        if i + _AHEAD_EXACT < order.shape[0]:
            _prefetch_row(pixels, rowmap[rows[order[i + _AHEAD_EXACT]]])
        row = rows[order[i]]
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
            measured = np.sort(np.concatenate((first_measured, rows[order[:exact]])))
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


# --------------------------------------------------------------------------- #
# The index
# --------------------------------------------------------------------------- #


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
    order : (n,) int64 array, optional
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
        self.rowmap = np.arange(n, dtype=np.int64) if order is None else _checked_order(order, n)
        self._owns_rowmap = order is None
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
        residual, sigma, largest = np.zeros(1), 1.0, 0.0
        first, codes, codes2 = np.zeros((1, 1), np.int8), np.ones((3, 1)), np.ones((3, 1))
        norms1 = np.zeros(1, np.float32)
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
        self._arrays = (
            *(self.database, self.rowmap, self.summary, residual, first, norms1),
            *(self.groups, self._axes, self._mean, self._labels, consts, codes, codes2),
        )
        self._all = np.array([[0, n]], np.int64)
        self._shares = self._parts(self._all, n)  # the usual split, made once
        # whether a search of every row runs the first stage, worked out once: the Python
        # around a lone query's kernels was a fifth of its ~0.5 ms
        self._cascades_all = self._cascades(self._all, n)

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
            return np.zeros((1, 1), np.uint8), np.zeros((3, 1))
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

        first, codes = np.zeros((1, 1), np.int8), np.ones((3, 1))  # no first stage
        if self.first_stage:
            first, codes = _codes(with_rho(m1), FIRST_CODES["l2"], per_row=True)
        second, codes2 = np.zeros((1, 1), np.int16), np.ones((3, 1))
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
        cascade = self._cascades(ranges, int((ranges[:, 1] - ranges[:, 0]).sum()))
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
        cascade = self._cascades(ranges, int((ranges[:, 1] - ranges[:, 0]).sum()))
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
        cascade = self._cascades(ranges, int((ranges[:, 1] - ranges[:, 0]).sum()))
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

    def _cascades(self, ranges: np.ndarray, n_rows: int) -> bool:
        """Whether a search of ``ranges`` runs the first stage: scattered rows skip it (it
        reads rows in runs), unless it is the only one."""
        return (
            self.cascade
            and self.first_stage
            and (not self.second_stage or n_rows >= _MIN_RUN * len(ranges))
        )

    def stage_counts(self, query: np.ndarray, k: int, ranges=None) -> dict:
        """How many rows one search considered, and how many passed each stage."""
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
        return parts, np.asarray(ids, np.int64), self._cascades(ranges, n_rows)


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
    """``order`` as (n,) int64 database rows."""
    out = np.ascontiguousarray(order, np.int64)
    if out.shape != (n,) or (n and (out.min() < 0 or out.max() >= n)):
        raise ValueError(f"order must hold {n} database rows (0..{n - 1}); got shape {out.shape}")
    return out


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
