"""Squared-Euclidean (L2²) distance kernels for exact k-NN search.

For a query ``q`` and a database row ``x`` (``d`` features)::

    ||q - x||² = ||q||² + ||x||² - 2 q·x

so a block of distances is one matrix product plus two norm vectors.

uint8 input is computed *exactly* in 32-bit integers. Every term is an
integer below ``255² d``, which fits int32 for ``d <=`` :data:`MAX_D`; the
intermediate sums may wrap, but int32 arithmetic is exact modulo 2³², so a
result that fits int32 comes out right regardless.

Variants (see :func:`variant`, :data:`VARIANTS`):

``avx512vnni``
    ``vpdpbusd`` (u8 x s8 -> i32, 64 multiply-adds an instruction) in a
    register-blocked GEMM microkernel. The instruction multiplies *unsigned*
    by *signed* bytes, so the database is stored once as ``s = x - 128`` and
    ``q·x = q·s + 128 Σq``.
``avx2``
    ``vpmaddwd`` (i16 x i16 -> i32, 16 multiply-adds) on bytes widened to
    16 bits, which cannot saturate (``vpmaddubsw`` could: 2·255·128 > 2¹⁵).
``portable``
    Plain numba loops with int32 accumulation that LLVM vectorizes for
    whatever CPU it runs on (ARM included).
``blas``
    float32: ``np.matmul`` (BLAS sgemm) plus the norms, clamped at 0.

Public protocol (see :mod:`imgclf.neighbors.kernels`): :func:`prepare_u8`,
:func:`block_u8`, :func:`prepare_f32`, :func:`block_f32`, :func:`reference`,
:func:`variant`, :data:`QUERY_BLOCK`, :data:`DATABASE_BLOCK`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit

from imgclf.neighbors.kernels import PAD, _cpu

__all__ = [
    "DATABASE_BLOCK",
    "MAX_D",
    "QUERY_BLOCK",
    "panel_rows",
    "VARIANTS",
    "PreparedF32",
    "PreparedU8",
    "block_f32",
    "block_u8",
    "prepare_f32",
    "prepare_u8",
    "reference",
    "supported_variants",
    "variant",
]

QUERY_BLOCK = 256
"""Queries per :func:`block_u8` call the engine should use (kernel's preferred size)."""

DATABASE_BLOCK = 4096
"""Database rows per :func:`block_u8` call the engine should use."""

MAX_D = 33_024
"""Largest feature count (a multiple of 64) whose distances fit int32: 255² · 33,024 < 2³¹."""


# --------------------------------------------------------------------------- prepared data


class PreparedU8(NamedTuple):
    """A uint8 database ready for :func:`block_u8` (built by :func:`prepare_u8`)."""

    database: np.ndarray
    """The original ``(n, d)`` uint8 rows (the portable variant reads these)."""
    packed: np.ndarray
    """The rows repacked into the variant's panel layout (empty for ``portable``)."""
    norms: np.ndarray
    """``||x||²`` as int32, zero-padded to a whole number of panels."""
    variant: str
    """The variant the layout was packed for; :func:`block_u8` runs that one."""


class PreparedF32(NamedTuple):
    """A float32 database ready for :func:`block_f32`."""

    database: np.ndarray
    """``(n, d)`` float32, C-contiguous."""
    norms: np.ndarray
    """``||x||²`` as float32, shape ``(n,)``."""


# --------------------------------------------------------------------------- dispatch


_NEEDS = {"avx512vnni": ("avx512f", "avx512bw", "avx512vnni"), "avx2": ("avx2",), "portable": ()}
"""The CPU features each uint8 variant needs, fastest variant first."""


def supported_variants(dtype=np.uint8) -> list[str]:
    """The variants this machine runs for ``dtype``, fastest first."""
    if np.dtype(dtype) != np.uint8:
        return ["blas"]
    return _cpu.runnable(_NEEDS)


def variant(dtype=np.uint8) -> str:
    """The code path :func:`block_u8` / :func:`block_f32` takes on this CPU for ``dtype``."""
    return supported_variants(dtype)[0]


def panel_rows(use: str | None = None) -> int:
    """Rows :func:`block_u8` computes together (a panel, at a fixed position) on variant
    ``use`` (default: :func:`variant`): a range of rows costs the panels it touches."""
    return {"avx512vnni": _VNNI_NR, "avx2": _AVX2_NR}.get(use or variant(np.uint8), 1)


# --------------------------------------------------------------------------- uint8: shared


def _aligned_empty(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary.

    Panels aligned to cache lines let every 64-byte vector load touch one line.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _pack_panels(database: np.ndarray, width: int, group: int, offset: int) -> np.ndarray:
    """Repack ``(n, d)`` bytes into panels of ``width`` rows, ``group`` bytes interleaved.

    Result ``[panel, d / group, width, group]``: for one ``group`` of features,
    ``width`` consecutive rows lie together, so a single vector load feeds
    ``width`` rows at once. ``offset`` is added (mod 256) to every byte; rows
    past ``n`` are zero padding (their distances are computed, then dropped).
    """
    n, d = database.shape
    n_pad = -(-n // width) * width
    packed = _aligned_empty((n_pad // width, d // group, width, group), np.uint8)
    # Move whole groups as one 2- or 4-byte word each: a far faster strided copy.
    word = np.dtype(f"u{group}")
    dst = packed.view(word).reshape(n_pad // width, d // group, width)
    full = n // width
    src = database[: full * width].view(word).reshape(full, width, d // group)
    for p in range(0, full, 16):  # 16 panels at a time: no (n, d)-sized temporary
        dst[p : min(p + 16, full)] = src[p : p + 16].transpose(0, 2, 1)
    if n % width:
        tail = np.zeros((width, d), np.uint8)
        tail[: n % width] = database[full * width :]
        dst[full] = tail.view(word).T
    if offset:
        packed += np.uint8(offset)  # wraps: x + 128 = x ^ 0x80, the s8 byte of x - 128
    return packed


@njit(nogil=True, cache=True)
def _row_norms(x, n_pad):
    """``||x_j||²`` per row as int32 (exact: at most 255² d < 2³¹), zero-padded to ``n_pad``."""
    norms = np.zeros(n_pad, np.int32)
    for j in range(x.shape[0]):
        s = 0
        for k in range(x.shape[1]):
            v = np.int32(x[j, k])
            s += v * v
        norms[j] = s
    return norms


@njit(nogil=True, cache=True)
def _query_terms(queries, shift):
    """``||q||² - 2·shift·Σq`` per query, as int64.

    With the database stored as ``x - shift``, ``q·x = q·(x - shift) + shift Σq``,
    so ``||q - x||² = (||q||² - 2 shift Σq) + ||x||² - 2 q·(x - shift)``.
    """
    terms = np.empty(queries.shape[0], np.int64)
    for i in range(queries.shape[0]):
        sq = 0
        s = 0
        for k in range(queries.shape[1]):
            v = np.int64(queries[i, k])
            sq += v * v
            s += v
        terms[i] = sq - 2 * shift * s
    return terms


@njit(nogil=True, cache=True)
def _epilogue(dots, qterms, norms, j0, lo, hi, m, out):
    """``out[i, c - lo] = qterms[i] + norms[c] - 2 dots[i, c - j0]`` for ``c`` in ``[lo, hi)``.

    ``dots`` holds the products with database rows ``j0, j0 + 1, ...``; only
    those in ``[lo, hi)`` are written. The sum is taken in uint32, i.e. modulo
    2³² (wrapping is defined there, and LLVM vectorizes it); the true distance
    fits int32, so reinterpreting the bits gives it exactly.
    """
    c0 = max(j0, lo)
    c1 = min(j0 + dots.shape[1], hi)
    row_norms = norms[c0:c1]
    for i in range(m):
        t = np.uint32(qterms[i] & 0xFFFFFFFF)
        src = dots[i, c0 - j0 : c1 - j0]
        dst = out[i, c0 - lo : c1 - lo]
        for c in range(c1 - c0):
            dst[c] = np.int32(t + np.uint32(row_norms[c]) - np.uint32(src[c]) - np.uint32(src[c]))


# --------------------------------------------------------------------------- SIMD microkernels
#
# One microkernel call computes a tile of MR queries x NR database rows (one
# packed panel) over ``kgroups`` feature groups, GEMM-style: per step it
# broadcasts 4 query bytes per query row and loads NR rows' matching bytes
# from the panel in NR/lanes vectors, then does MR x NR/lanes vector
# multiply-adds into accumulators that live in registers for the whole loop.
# It is generated as LLVM IR inside a numba intrinsic, because numba has no
# vector types and no way to keep a tile of accumulators in registers.


def _array_bytes(context, builder, array_type, value):
    """LLVM IR: a numba array's data pointer, as ``i8*``."""
    from llvmlite import ir

    data = context.make_array(array_type)(context, builder, value).data
    return builder.bitcast(data, ir.IntType(8).as_pointer())


def _splat_word(builder, ptr, lanes: int):
    """LLVM IR: the 32-bit word at byte pointer ``ptr`` (any alignment) in every lane."""
    from llvmlite import ir

    i32 = ir.IntType(32)
    word = builder.load(builder.bitcast(ptr, i32.as_pointer()), align=1)
    vec_type = ir.VectorType(i32, lanes)
    vec = builder.insert_element(ir.Constant(vec_type, ir.Undefined), word, ir.Constant(i32, 0))
    return builder.shuffle_vector(vec, vec, ir.Constant(vec_type, None))  # all-zero mask: splat


def _microkernel(mr: int, n_vec: int, vec_type, panel_step: int, load_panel, madd):
    """A numba intrinsic ``f(acc, acc_off, q, q_off, q_stride, rows, panel, p_off, kgroups, more)``.

    For query row ``r < mr`` and panel vector ``v < n_vec``::

        tile[r, v] (+)= sum_{k < kgroups} madd(splat(q32[r, k]), panel_vector(k, v))

    ``q32[r, k]`` is the 32-bit word at byte ``q_off + r q_stride + 4k`` of
    ``q`` (rows past ``rows`` repeat the last valid one, so the tile is always
    full); ``panel_vector(k, v)`` is what ``load_panel`` reads at byte
    ``p_off + k panel_step`` of ``panel``; ``tile`` is the ``mr x n_vec``
    vectors at element ``acc_off`` of the int32 array ``acc``, overwritten if
    ``more`` is false, else added to. Needs ``kgroups >= 1``.
    """
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    def codegen(context, builder, sig, args):
        acc, acc_off, q, q_off, q_stride, rows, panel, p_off, kgroups, more = args
        const = functools.partial(ir.Constant, q_off.type)
        q_base = _array_bytes(context, builder, sig.args[2], q)
        last = builder.sub(rows, const(1))
        q_rows = []
        for r in range(mr):
            row = builder.select(builder.icmp_signed("<", const(r), rows), const(r), last)
            q_rows.append(builder.gep(q_base, [builder.add(q_off, builder.mul(row, q_stride))]))
        p_base = builder.gep(_array_bytes(context, builder, sig.args[6], panel), [p_off])
        acc_bytes = _array_bytes(context, builder, sig.args[0], acc)
        tile = builder.gep(acc_bytes, [builder.mul(acc_off, const(4))])
        slots = [
            builder.gep(builder.bitcast(tile, vec_type.as_pointer()), [const(t)])
            for t in range(mr * n_vec)
        ]
        zero = ir.Constant(vec_type, None)
        start = [builder.select(more, builder.load(s, align=4), zero) for s in slots]

        # for k in range(kgroups): the accumulators are loop-carried phis (registers)
        entry, loop = builder.block, builder.append_basic_block("tile.loop")
        builder.branch(loop)
        builder.position_at_end(loop)
        k = builder.phi(q_off.type)
        accs = [builder.phi(vec_type) for _ in slots]
        q_vecs = [
            _splat_word(builder, builder.gep(row, [builder.mul(k, const(4))]), vec_type.count)
            for row in q_rows
        ]
        step = builder.gep(p_base, [builder.mul(k, const(panel_step))])
        p_vecs = [load_panel(builder, step, v) for v in range(n_vec)]
        new = [
            madd(builder, accs[r * n_vec + v], q_vecs[r], p_vecs[v])
            for r in range(mr)
            for v in range(n_vec)
        ]
        k_next = builder.add(k, const(1))
        k.add_incoming(const(0), entry)
        k.add_incoming(k_next, builder.block)
        for phi, first, value in zip(accs, start, new, strict=True):
            phi.add_incoming(first, entry)
            phi.add_incoming(value, builder.block)
        done = builder.append_basic_block("tile.done")
        builder.cbranch(builder.icmp_signed("<", k_next, kgroups), loop, done)

        builder.position_at_end(done)
        for slot, value in zip(slots, new, strict=True):
            builder.store(value, slot, align=4)
        return context.get_dummy_value()

    @intrinsic
    def kernel(typingctx, acc, acc_off, q, q_off, q_stride, rows, panel, p_off, kgroups, more):
        intp = types.intp
        return types.void(acc, intp, q, intp, intp, intp, panel, intp, intp, types.boolean), codegen

    return kernel


def _llvm_at_least(*version: int) -> bool:
    import llvmlite.binding as llvm

    return llvm.llvm_version_info >= version


def _vnni_microkernel(mr: int, n_vec: int):
    """Microkernel on ``vpdpbusd``: acc += 4-byte dot products, unsigned query x signed database.

    Per step: 4 features; the query word is 4 u8, each 64-byte panel vector
    holds 4 s8 features of 16 database rows.
    """
    from llvmlite import ir
    from numba.core import cgutils

    i32x16 = ir.VectorType(ir.IntType(32), 16)
    # LLVM 22 declares the byte operands <64 x i8>, older LLVMs <16 x i32>.
    byte_vec = ir.VectorType(ir.IntType(8), 64) if _llvm_at_least(22) else i32x16
    offset = functools.partial(ir.Constant, ir.IntType(64))

    def load_panel(builder, step, v):
        ptr = builder.gep(step, [offset(64 * v)])
        return builder.load(builder.bitcast(ptr, byte_vec.as_pointer()), align=1)

    def madd(builder, acc, q_word, panel_vec):
        fnty = ir.FunctionType(i32x16, [i32x16, byte_vec, byte_vec])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [acc, builder.bitcast(q_word, byte_vec), panel_vec])

    return _microkernel(mr, n_vec, i32x16, 64 * n_vec, load_panel, madd)


# Tile shape: 6 queries x 64 rows = 24 zmm accumulators (of 32), 4 panel vectors,
# 1 broadcast. Every shape from 4x64 to 12x32 ran at 1 vpdpbusd/cycle on Zen 4;
# the larger tile needs the least cache traffic per multiply-add.
_VNNI_MR, _VNNI_NR = 6, 64
# Features per pass over a panel: a 64 x 4,096-byte slice (256 KiB) stays in L2.
# CIFAR's 3,072 is one pass; smaller slices measured no faster there.
_VNNI_KC = 4096
_vnni_tile = _vnni_microkernel(_VNNI_MR, _VNNI_NR // 16)


@njit(nogil=True, cache=True)
def _vnni_block(queries, packed, norms, lo, hi, out):
    """Distances from ``queries`` to database rows ``[lo, hi)`` into ``out`` via ``vpdpbusd``.

    ``packed`` holds ``x - 128`` as s8 in panels of 64 rows x 4 features
    (``[panel, d/4, 64, 4]``). Loop order: database panel outermost, so the
    panel (64 d bytes, 192 KiB at d = 3,072) stays in L2 while every query
    tile streams past it (wider panels go in slices of ``_VNNI_KC`` features,
    accumulating); ``dots`` (m x 64 int32) collects the panel's raw products
    ``q·(x - 128)`` before the epilogue adds the norms.
    """
    mr, nr = _VNNI_MR, _VNNI_NR
    m, d = queries.shape
    stride = queries.strides[0]
    qterms = _query_terms(queries, 128)
    dots = np.empty((-(-m // mr) * mr, nr), np.int32)
    for p in range(lo // nr, -(-hi // nr)):
        for k0 in range(0, d, _VNNI_KC):
            groups, more = min(_VNNI_KC, d - k0) // 4, k0 > 0
            p_off = p * nr * d + k0 * nr  # panel p, feature k0
            for i0 in range(0, m, mr):
                rows, q_off = min(mr, m - i0), i0 * stride + k0
                _vnni_tile(dots, i0 * nr, queries, q_off, stride, rows, packed, p_off, groups, more)
        _epilogue(dots, qterms, norms, p * nr, lo, hi, m, out)


def _avx2_microkernel(mr: int, n_vec: int):
    """Microkernel on ``vpmaddwd``: acc += q[2k] x[2k] + q[2k+1] x[2k+1] in 16-bit lanes.

    Per step: 2 features; the query word is 2 int16 (queries widened by
    :func:`_widen`), each panel vector 16 bytes = 2 u8 features of 8 rows,
    zero-extended to int16 (products < 2¹⁶ and pairs < 2¹⁸: no overflow).
    """
    from llvmlite import ir
    from numba.core import cgutils

    i32x8 = ir.VectorType(ir.IntType(32), 8)
    i16x16 = ir.VectorType(ir.IntType(16), 16)
    i8x16 = ir.VectorType(ir.IntType(8), 16)
    offset = functools.partial(ir.Constant, ir.IntType(64))

    def load_panel(builder, step, v):
        ptr = builder.bitcast(builder.gep(step, [offset(16 * v)]), i8x16.as_pointer())
        return builder.zext(builder.load(ptr, align=1), i16x16)

    def madd(builder, acc, q_word, panel_vec):
        fnty = ir.FunctionType(i32x8, [i16x16, i16x16])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pmadd.wd")
        return builder.add(acc, builder.call(fn, [builder.bitcast(q_word, i16x16), panel_vec]))

    return _microkernel(mr, n_vec, i32x8, 16 * n_vec, load_panel, madd)


# 5 queries x 16 rows = 10 ymm accumulators + 2 panel vectors + 1 broadcast + 1
# product: 14 of AVX2's 16 registers. Compiled for Haswell, 4 x 24 (17 needed)
# spilled and ran 20% slower.
_AVX2_MR, _AVX2_NR = 5, 16
_AVX2_CHUNK_BYTES = 192 << 10  # database bytes per chunk: stays in L2 (256 KiB on older CPUs)
_avx2_tile = _avx2_microkernel(_AVX2_MR, _AVX2_NR // 8)


@njit(nogil=True, cache=True)
def _widen(queries, i0, rows, wide):
    """``wide[r] = queries[i0 + r]`` as int16, for ``vpmaddwd``."""
    for r in range(rows):
        src = queries[i0 + r]
        dst = wide[r]
        for k in range(src.shape[0]):
            dst[k] = src[k]


@njit(nogil=True, cache=True)
def _avx2_block(queries, packed, norms, lo, hi, out):
    """Distances from ``queries`` to database rows ``[lo, hi)`` into ``out`` via ``vpmaddwd``.

    ``packed`` holds raw u8 rows in panels of 16 rows x 2 features
    (``[panel, d/2, 16, 2]``). The database is walked in L2-sized chunks of
    panels; each query tile is widened to int16 once per chunk (a 1/chunk-rows
    overhead) and multiplied against every panel of the chunk.
    """
    mr, nr = _AVX2_MR, _AVX2_NR
    m, d = queries.shape
    qterms = _query_terms(queries, 0)
    per_chunk = max(1, _AVX2_CHUNK_BYTES // (nr * d))
    m_pad = -(-m // mr) * mr
    wide = np.empty((mr, d), np.int16)
    dots = np.empty((per_chunk, m_pad, nr), np.int32)
    first, last = lo // nr, -(-hi // nr)
    for c0 in range(first, last, per_chunk):
        c1 = min(c0 + per_chunk, last)
        for i0 in range(0, m, mr):
            rows = min(mr, m - i0)
            _widen(queries, i0, rows, wide)
            for p in range(c0, c1):
                acc_off = ((p - c0) * m_pad + i0) * nr
                _avx2_tile(dots, acc_off, wide, 0, 2 * d, rows, packed, p * nr * d, d // 2, False)
        for p in range(c0, c1):
            _epilogue(dots[p - c0], qterms, norms, p * nr, lo, hi, m, out)


# --------------------------------------------------------------------------- one row


def _ssd_intrinsic():
    """An intrinsic ``ssd(q, qrow, x, row) -> int64``: ``sum_k (q[qrow, k] - x[row, k])^2``.

    For one query against one scattered row (the single-query cascade's exact
    step), where no tile amortises a widened query: both rows are widened to
    int16 sixteen bytes at a time, subtracted, and the difference squared and
    summed in pairs by ``vpmaddwd`` (2 x 255^2 < 2^31). Each int32 lane gains at
    most 2 x 255^2 per step, so ``d <= 2^16`` features cannot overflow it; the
    eight lanes are summed in int64. Covers ``16 (d // 16)`` features (the
    caller checks ``d % 16 == 0``); uint8 C-contiguous 2-D rows, not bounds-checked.
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    from imgclf.neighbors.kernels._llvm import row_pointers

    i8, i16, i32, i64 = (ir.IntType(b) for b in (8, 16, 32, 64))
    bytes_t, words_t = ir.VectorType(i8, 16), ir.VectorType(i16, 16)
    sums_t, wide_t = ir.VectorType(i32, 8), ir.VectorType(i64, 8)

    def codegen(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        q_t, qrow_t, x_t, row_t = sig.args
        q = context.make_array(q_t)(context, builder, args[0])
        x = context.make_array(x_t)(context, builder, args[2])
        rows = [context.cast(builder, args[i], sig.args[i], types.intp) for i in (1, 3)]
        (qp,) = row_pointers(context, builder, q, [rows[0]])
        (xp,) = row_pointers(context, builder, x, [rows[1]])
        steps = builder.sdiv(builder.extract_value(x.shape, 1), ir.Constant(intp, 16))
        pmadd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(sums_t, [words_t, words_t]), "llvm.x86.avx2.pmadd.wd"
        )
        hsum = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [wide_t]), "llvm.vector.reduce.add.v8i64"
        )
        acc = cgutils.alloca_once_value(builder, ir.Constant(sums_t, None))

        def widened(ptr, offset):
            vec = builder.bitcast(builder.gep(ptr, [offset]), bytes_t.as_pointer())
            return builder.zext(builder.load(vec, align=1), words_t)

        with cgutils.for_range(builder, steps) as loop:
            offset = builder.mul(loop.index, ir.Constant(intp, 16))
            diff = builder.sub(widened(qp, offset), widened(xp, offset))
            builder.store(builder.add(builder.load(acc), builder.call(pmadd, [diff, diff])), acc)
        return builder.call(hsum, [builder.zext(builder.load(acc), wide_t)])

    def typer(typingctx, q, qrow, x, row):
        for arr in (q, x):
            if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"
                    and arr.dtype == types.uint8):  # fmt: skip
                raise TypingError(f"ssd needs C-contiguous 2-D uint8 arrays, got {arr}")
        if not _cpu.compiles_for("avx2"):
            raise TypingError("llvm.x86.avx2.pmadd.wd needs avx2, absent on this CPU")
        return types.int64(q, qrow, x, row), codegen

    return intrinsic(typer)


_ssd_avx2 = _ssd_intrinsic()


# --------------------------------------------------------------------------- portable

_PORTABLE_ROWS = 64  # database rows per chunk: 64 d bytes stay in L2 while all queries pass


@njit(nogil=True, cache=True)
def _portable_block(queries, database, norms, lo, hi, out):
    """Distances from ``queries`` to ``database[lo:hi]`` into ``out``, plain loops.

    Each dot product accumulates in int32 (exact: at most 255² d < 2³¹), which
    LLVM vectorizes for whatever CPU it compiles for (``vpmaddwd`` on x86);
    64-bit accumulation would halve the lanes. Database rows go in chunks of
    ``_PORTABLE_ROWS`` so a chunk stays in cache while every query passes.
    """
    m, d = queries.shape
    qterms = _query_terms(queries, 0)
    for j0 in range(lo, hi, _PORTABLE_ROWS):
        for i in range(m):
            q = queries[i]
            t = np.uint32(qterms[i] & 0xFFFFFFFF)
            for j in range(j0, min(j0 + _PORTABLE_ROWS, hi)):
                x = database[j]
                acc = np.int32(0)
                for k in range(d):
                    acc = np.int32(acc + np.int32(q[k]) * np.int32(x[k]))
                dist = t + np.uint32(norms[j]) - np.uint32(acc) - np.uint32(acc)
                out[i, j - lo] = np.int32(dist)


# --------------------------------------------------------------------------- uint8: public


def prepare_u8(
    database: np.ndarray, use: str | None = None, *, keep_rows: bool = True
) -> PreparedU8:
    """Pack a ``(n, d)`` uint8 database for :func:`block_u8` (``d % 64 == 0``, ``d <= MAX_D``).

    ``use`` picks the variant to pack for (default: :func:`variant`); the
    packed layout only suits that variant. ``keep_rows=False`` keeps no
    reference to ``database`` where the variant reads only the packed panels
    (an index that owns a reordered copy then holds one copy, not two); its
    ``database`` field is a zero-byte stand-in of the same shape.
    """
    x = np.ascontiguousarray(database)
    if x.dtype != np.uint8 or x.ndim != 2:
        raise TypeError(f"expected a 2-d uint8 array, got {x.dtype} with shape {x.shape}")
    d = x.shape[1]
    if d == 0 or d % PAD:
        raise ValueError(f"d = {d}: pad the features to a multiple of {PAD}")
    if d > MAX_D:
        raise ValueError(f"d = {d} > {MAX_D}: int32 distances could overflow; use float32")
    use = use or variant(np.uint8)
    if use not in supported_variants():
        raise RuntimeError(f"variant {use!r} cannot run here; available: {supported_variants()}")
    if use == "avx512vnni":
        packed, width = _pack_panels(x, _VNNI_NR, 4, 128).view(np.int8), _VNNI_NR
    elif use == "avx2":
        packed, width = _pack_panels(x, _AVX2_NR, 2, 0), _AVX2_NR
    else:
        packed, width = np.empty(0, np.uint8), 1
    norms = _row_norms(x, -(-x.shape[0] // width) * width)
    if not keep_rows and use != "portable":
        x = np.broadcast_to(np.zeros((), np.uint8), x.shape)
    return PreparedU8(x, packed, norms, use)


def _check_u8(queries, prepared: PreparedU8, lo: int, hi: int, out, name: str) -> np.ndarray:
    """Validate a :func:`block_u8` call; return the queries with contiguous rows."""
    if prepared.variant != name:
        raise ValueError(f"database packed for {prepared.variant!r}, not {name!r}")
    if name not in supported_variants():  # never compile a variant this CPU cannot run
        raise RuntimeError(f"variant {name!r} cannot run on this CPU")
    q = np.asarray(queries)
    if q.dtype != np.uint8 or q.ndim != 2 or q.shape[1] != prepared.database.shape[1]:
        raise ValueError(f"queries must be uint8 (m, {prepared.database.shape[1]}), got {q.shape}")
    if not 0 <= lo <= hi <= prepared.database.shape[0]:
        raise ValueError(f"bad database range [{lo}, {hi})")
    if out.dtype != np.int32 or out.ndim != 2 or out.shape[0] < len(q) or out.shape[1] < hi - lo:
        raise ValueError(f"out must be int32 of at least ({len(q)}, {hi - lo})")
    return q if q.strides[1] == 1 else np.ascontiguousarray(q)  # SIMD loads need unit stride


def _block_vnni(queries, prepared: PreparedU8, lo: int, hi: int, out: np.ndarray) -> None:
    """:func:`block_u8` on AVX-512 VNNI."""
    q = _check_u8(queries, prepared, lo, hi, out, "avx512vnni")
    if len(q) and hi > lo:
        _vnni_block(q, prepared.packed, prepared.norms, lo, hi, out)


def _block_avx2(queries, prepared: PreparedU8, lo: int, hi: int, out: np.ndarray) -> None:
    """:func:`block_u8` on AVX2."""
    q = _check_u8(queries, prepared, lo, hi, out, "avx2")
    if len(q) and hi > lo:
        _avx2_block(q, prepared.packed, prepared.norms, lo, hi, out)


def _block_portable(queries, prepared: PreparedU8, lo: int, hi: int, out: np.ndarray) -> None:
    """:func:`block_u8` with plain loops (any CPU)."""
    q = _check_u8(queries, prepared, lo, hi, out, "portable")
    if len(q) and hi > lo:
        _portable_block(q, prepared.database, prepared.norms, lo, hi, out)


def block_u8(queries, prepared: PreparedU8, lo: int, hi: int, out: np.ndarray) -> None:
    """``out[i, j] = ||queries[i] - database[lo + j]||²`` exactly, for ``i < m``, ``j < hi - lo``.

    Runs the variant ``prepared`` was packed for; writes nothing else of ``out``.
    """
    VARIANTS[prepared.variant](queries, prepared, lo, hi, out)


# --------------------------------------------------------------------------- float32


def prepare_f32(database: np.ndarray) -> PreparedF32:
    """Keep a C-contiguous float32 copy of ``database`` and its squared norms."""
    x = np.ascontiguousarray(database, dtype=np.float32)
    return PreparedF32(x, np.einsum("ij,ij->i", x, x))


def block_f32(queries, prepared: PreparedF32, lo: int, hi: int, out: np.ndarray) -> None:
    """``out[i, j] = max(||q_i||² + ||x_{lo+j}||² - 2 q_i·x_{lo+j}, 0)`` in float32.

    One sgemm into the caller's buffer, then in-place updates (no m x n
    temporaries). The clamp removes tiny negatives left by cancellation
    when ``q ≈ x``.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if not 0 <= lo <= hi <= len(prepared.database):
        raise ValueError(f"bad database range [{lo}, {hi})")
    if out.dtype != np.float32 or out.ndim != 2 or out.shape[0] < len(q) or out.shape[1] < hi - lo:
        raise ValueError(f"out must be float32 of at least ({len(q)}, {hi - lo})")
    o = out[: len(q), : hi - lo]
    np.matmul(q, prepared.database[lo:hi].T, out=o)
    o *= -2.0
    o += np.einsum("ij,ij->i", q, q)[:, None]
    o += prepared.norms[lo:hi]
    np.maximum(o, 0.0, out=o)


VARIANTS = {
    "avx512vnni": _block_vnni,
    "avx2": _block_avx2,
    "portable": _block_portable,
    "blas": block_f32,
}
"""Every variant's block function by name; :func:`supported_variants` says which run here."""


# --------------------------------------------------------------------------- reference


def reference(queries: np.ndarray, database: np.ndarray, chunk: int = 256) -> np.ndarray:
    """All squared distances the plain NumPy way: int64 for integer input, else float64.

    Computed as ``||q||² + ||x||² - 2 q·x`` in float64, ``chunk`` queries at a
    time. For uint8 input every product and partial sum is an integer below
    ``255² d < 2⁵³``, so float64 holds it exactly and the result is exact.
    """
    q, x = np.asarray(queries), np.asarray(database)
    exact = q.dtype.kind in "ui" and x.dtype.kind in "ui"
    xf = x.astype(np.float64)
    xn = np.einsum("ij,ij->i", xf, xf)
    out = np.empty((len(q), len(x)), np.int64 if exact else np.float64)
    for i in range(0, len(q), chunk):
        qf = q[i : i + chunk].astype(np.float64)
        dist = np.einsum("ij,ij->i", qf, qf)[:, None] + xn - 2.0 * (qf @ xf.T)
        out[i : i + chunk] = np.rint(dist) if exact else np.maximum(dist, 0.0)
    return out
