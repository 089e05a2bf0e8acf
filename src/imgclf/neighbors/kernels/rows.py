"""Per-row kernels, each beside the plain loop it must equal: the exact cascade's
(:mod:`imgclf.neighbors.pruning`) and an inverted file's single-query scan of uint8
codes (:mod:`.ranges`).

Prefetching a scattered row, the L2 first stage's int8 dot products
(``vpmaddwd``, :func:`_dots8`), sums of absolute differences (``vpsadbw``,
:func:`_sad_row`, :func:`_sad_rows4`), exact squared distances
(:func:`_squared_distance`) and the least of a run of float32 bounds
(:func:`_least`). The AVX2 forms are chosen when numba types a call, where the
CPU has them (:mod:`imgclf.neighbors.kernels._cpu`); the plain loops run
everywhere else, and the tests compare the two.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import int16, int32, int64, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic, overload

from imgclf.neighbors.kernels import _cpu
from imgclf.neighbors.kernels.l1 import _sad256
from imgclf.neighbors.kernels.l2 import _ssd_avx2

SIMD_ROW_BYTES = 32
"""Rows whose width is a multiple of this take the SIMD forms of both :func:`_sad_row`
(32-byte chunks) and :func:`_squared_distance` (16); others the plain loops."""


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
