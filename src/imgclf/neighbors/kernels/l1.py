"""L1 (sum of absolute differences) distances, for exact k-nearest-neighbour search.

``D[i, j] = sum_k |q[i, k] - x[j, k]|`` between query rows ``q`` and database
rows ``x``. Two kernel families, picked by dtype (see :mod:`.kernels` for the
protocol):

* **uint8** (raw pixels): :func:`prepare_u8` / :func:`block_u8`, exact int32
  results. On x86 the work is done by the ``psadbw`` instruction, which sums
  the absolute differences of 8 byte pairs into one 64-bit lane, reached from
  numba through llvmlite intrinsics. Variants, fastest first:

  ``avx512bw``  ``vpsadbw`` on 64 bytes, tiles of 4 queries x 4 rows
  ``avx2``      ``vpsadbw`` on 32 bytes, tiles of 2 queries x 4 rows
  ``portable``  plain numba loops with int32 sums, which LLVM vectorises on
                any CPU (ARM included)

  :data:`VARIANTS` maps each name to its block function, so every variant the
  CPU can run (:func:`supported_variants`) can be called and tested directly.

* **float32**: :func:`prepare_f32` / :func:`block_f32`, a register-blocked
  numba loop that LLVM vectorises for the host CPU.

Tiles accumulate one feature chunk of several queries against the same chunk
of several database rows, so each vector load feeds several ``psadbw``. The
database loop is outermost: a tile's database rows (a few KiB) stay in L1
while the query block (``QUERY_BLOCK`` rows, < 1 MiB) is re-read from L2, and
each database row comes from memory once per call.

Every compiled function is ``nogil``, single-threaded and cached on disk, so
the engine can run blocks on several Python threads at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import float32, int32, njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from imgclf.neighbors.kernels import _cpu
from imgclf.neighbors.kernels._llvm import row_pointers

__all__ = [
    "DATABASE_BLOCK",
    "QUERY_BLOCK",
    "ROW_MULTIPLE",
    "VARIANTS",
    "PreparedF32",
    "PreparedU8",
    "block",
    "block_f32",
    "block_u8",
    "prepare",
    "prepare_f32",
    "prepare_u8",
    "reference",
    "supported_variants",
    "variant",
]

QUERY_BLOCK = 256
"""Queries per block: 256 x 3,072 bytes (768 KiB) stay in a Zen 4 core's 1 MiB L2."""

DATABASE_BLOCK = 4096
"""Database rows per block: long enough that per-call overhead is negligible."""

ROW_MULTIPLE = 64
"""uint8 rows must have a multiple of this many bytes: the widest psadbw, with no
tail loop (the engine pads features to :data:`~imgclf.neighbors.kernels.PAD`, 64)."""

_NEEDS = {"avx512bw": ("avx512bw",), "avx2": ("avx2",), "portable": ()}
"""The CPU features each uint8 variant needs, fastest variant first."""


class PreparedU8(NamedTuple):
    """A uint8 database ready for :func:`block_u8`."""

    rows: np.ndarray
    """(n, d) uint8, C-contiguous, d a multiple of :data:`ROW_MULTIPLE`."""


class PreparedF32(NamedTuple):
    """A float32 database ready for :func:`block_f32`."""

    rows: np.ndarray
    """(n, d) float32, C-contiguous."""


# --------------------------------------------------------------------------- #
# Which variants this machine can run
# --------------------------------------------------------------------------- #


def supported_variants(dtype=np.uint8) -> list[str]:
    """The variants of ``dtype``'s kernel this machine can run, fastest first."""
    if np.dtype(dtype) == np.float32:
        return ["portable"]
    _check_dtype(np.dtype(dtype), np.uint8)
    return _cpu.runnable(_NEEDS)


def variant(dtype=np.uint8) -> str:
    """The code path ``block`` runs for ``dtype`` on this CPU.

    "avx512bw", "avx2" or "portable" for uint8; "portable" for float32 (one
    numba loop, vectorised by LLVM for whatever the host CPU offers).
    """
    return supported_variants(dtype)[0]


def _check_dtype(got: np.dtype, want) -> None:
    if got != np.dtype(want):
        raise TypeError(f"expected {np.dtype(want)} data, got {got}")


# --------------------------------------------------------------------------- #
# psadbw tiles, emitted as LLVM IR
# --------------------------------------------------------------------------- #

_PSADBW = {64: "llvm.x86.avx512.psad.bw.512", 32: "llvm.x86.avx2.psad.bw"}
_FEATURE = {64: "avx512bw", 32: "avx2"}


def _sad_tile(width: int):
    """An intrinsic ``tile(q, qrows, x, xrows) -> UniTuple(int64, R * C)``.

    Element ``r * C + c`` is ``sum_k |q[qrows[r], k] - x[xrows[c], k]|`` over
    ``k < width * (d // width)``, computed ``width`` bytes at a time with
    ``psadbw``, which gives ``width / 8`` partial sums in int64 lanes; the
    ``R x C`` vector accumulators are summed across lanes at the end. ``q``
    and ``x`` are C-contiguous 2-D uint8 arrays; rows are not bounds-checked.
    """
    i8, i64 = ir.IntType(8), ir.IntType(64)
    bytes_t = ir.VectorType(i8, width)
    sums_t = ir.VectorType(i64, width // 8)

    def codegen(context, builder, sig, args):
        q_t, qrows_t, x_t, xrows_t = sig.args
        intp = context.get_value_type(types.intp)
        q = context.make_array(q_t)(context, builder, args[0])
        x = context.make_array(x_t)(context, builder, args[2])
        qp = row_pointers(context, builder, q, cgutils.unpack_tuple(builder, args[1]))
        xp = row_pointers(context, builder, x, cgutils.unpack_tuple(builder, args[3]))
        # min of both widths: a mismatched d reads nothing out of bounds
        qd, xd = builder.extract_value(q.shape, 1), builder.extract_value(x.shape, 1)
        d = builder.select(builder.icmp_signed("<", qd, xd), qd, xd)
        chunks = builder.sdiv(d, ir.Constant(intp, width))

        mod = builder.module
        psadbw = cgutils.get_or_insert_function(
            mod, ir.FunctionType(sums_t, [bytes_t, bytes_t]), _PSADBW[width]
        )
        hsum = cgutils.get_or_insert_function(
            mod, ir.FunctionType(i64, [sums_t]), f"llvm.vector.reduce.add.v{width // 8}i64"
        )
        # entry-block allocas: LLVM promotes them to vector registers
        accs = [
            [cgutils.alloca_once_value(builder, ir.Constant(sums_t, None)) for _ in xp] for _ in qp
        ]

        def load(ptr, offset):
            vec = builder.bitcast(builder.gep(ptr, [offset]), bytes_t.as_pointer())
            return builder.load(vec, align=1)

        with cgutils.for_range(builder, chunks) as loop:
            offset = builder.mul(loop.index, ir.Constant(intp, width))
            qv = [load(p, offset) for p in qp]
            xv = [load(p, offset) for p in xp]
            for acc_row, a in zip(accs, qv, strict=True):
                for acc, b in zip(acc_row, xv, strict=True):
                    builder.store(builder.add(builder.load(acc), builder.call(psadbw, [a, b])), acc)
        sums = [builder.call(hsum, [builder.load(acc)]) for row in accs for acc in row]
        return context.make_tuple(builder, sig.return_type, sums)

    def typer(typingctx, q, qrows, x, xrows):
        for arr in (q, x):
            if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"):
                raise TypingError(f"psadbw tile needs C-contiguous 2-D arrays, got {arr}")
            if arr.dtype != types.uint8:
                raise TypingError(f"psadbw tile needs uint8 arrays, got {arr}")
        if not _cpu.compiles_for(_FEATURE[width]):
            raise TypingError(f"{_PSADBW[width]} needs {_FEATURE[width]}, absent on this CPU")
        sig = types.UniTuple(types.int64, len(qrows) * len(xrows))(q, qrows, x, xrows)
        return sig, codegen

    typer.__name__ = f"sad_tile_{width}"
    return intrinsic(typer)


_sad512 = _sad_tile(64)
_sad256 = _sad_tile(32)


# --------------------------------------------------------------------------- #
# uint8 block functions, one per variant
# --------------------------------------------------------------------------- #


@njit(nogil=True, cache=True)
def _rows2(start, last):
    """Rows ``start, start + 1``, clamped to ``last`` (edge tiles repeat a row)."""
    return (min(start, last), min(start + 1, last))


@njit(nogil=True, cache=True)
def _rows4(start, last):
    """Rows ``start .. start + 3``, clamped to ``last`` (edge tiles repeat a row)."""
    return (min(start, last), min(start + 1, last), min(start + 2, last), min(start + 3, last))


@njit(nogil=True, cache=True)
def _store(out, i0, j0, m, n, tile, cols):
    """``out[i0 + r, j0 + c] = tile[r * cols + c]`` for the cells inside ``m x n``."""
    for r in range(min(len(tile) // cols, m - i0)):
        for c in range(min(cols, n - j0)):
            out[i0 + r, j0 + c] = tile[r * cols + c]


@njit(nogil=True, cache=True)
def _block_u8_avx512bw(queries, rows, lo, hi, out):
    """``out[i, j] = sum_k |queries[i, k] - rows[lo + j, k]|``, 4 x 4 tiles of 64-byte psadbw."""
    m, n = queries.shape[0], hi - lo
    for j0 in range(0, n, 4):
        xrows = _rows4(lo + j0, hi - 1)
        for i0 in range(0, m, 4):
            _store(out, i0, j0, m, n, _sad512(queries, _rows4(i0, m - 1), rows, xrows), 4)


@njit(nogil=True, cache=True)
def _block_u8_avx2(queries, rows, lo, hi, out):
    """``out[i, j] = sum_k |queries[i, k] - rows[lo + j, k]|``, 2 x 4 tiles of 32-byte psadbw.

    2 x 4 (8 accumulators) because AVX2 CPUs have 16 vector registers.
    """
    m, n = queries.shape[0], hi - lo
    for j0 in range(0, n, 4):
        xrows = _rows4(lo + j0, hi - 1)
        for i0 in range(0, m, 2):
            _store(out, i0, j0, m, n, _sad256(queries, _rows2(i0, m - 1), rows, xrows), 4)


@njit(nogil=True, cache=True)
def _sad_2x2(a0, a1, b0, b1):
    """``sum_k |a_r[k] - b_c[k]|`` for r, c in {0, 1}, in int32 (exact while d < 2**23)."""
    s00 = s01 = s10 = s11 = int32(0)
    for k in range(a0.shape[0]):
        u0, u1, v0, v1 = int32(a0[k]), int32(a1[k]), int32(b0[k]), int32(b1[k])
        # numba widens int32 arithmetic to int64; casting back keeps the sums
        # int32, so LLVM packs 16 per 512-bit vector (and uses uabal on ARM)
        s00 = int32(s00 + abs(u0 - v0))
        s01 = int32(s01 + abs(u0 - v1))
        s10 = int32(s10 + abs(u1 - v0))
        s11 = int32(s11 + abs(u1 - v1))
    return (s00, s01, s10, s11)


@njit(nogil=True, cache=True)
def _block_u8_portable(queries, rows, lo, hi, out):
    """``out[i, j] = sum_k |queries[i, k] - rows[lo + j, k]|``, 2 x 2 tiles of plain loops."""
    m, n = queries.shape[0], hi - lo
    for j0 in range(0, n, 2):
        b0, b1 = _rows2(lo + j0, hi - 1)
        for i0 in range(0, m, 2):
            a0, a1 = _rows2(i0, m - 1)
            _store(out, i0, j0, m, n, _sad_2x2(queries[a0], queries[a1], rows[b0], rows[b1]), 2)


_U8_KERNELS = {
    "avx512bw": _block_u8_avx512bw,
    "avx2": _block_u8_avx2,
    "portable": _block_u8_portable,
}


# --------------------------------------------------------------------------- #
# float32
# --------------------------------------------------------------------------- #


# reassoc only: lets LLVM split each sum into vector lanes (a change of float
# rounding, nothing else); no approximations, no assumptions about NaN or inf
@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _l1_4x4(a0, a1, a2, a3, b0, b1, b2, b3):
    """``sum_k |a_r[k] - b_c[k]|`` for r, c in 0..3, as 16 float32 sums (row-major)."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = float32(0)
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = float32(0)
    for k in range(a0.shape[0]):
        u0, u1, u2, u3 = a0[k], a1[k], a2[k], a3[k]
        v0, v1, v2, v3 = b0[k], b1[k], b2[k], b3[k]
        s00 += abs(u0 - v0)
        s01 += abs(u0 - v1)
        s02 += abs(u0 - v2)
        s03 += abs(u0 - v3)
        s10 += abs(u1 - v0)
        s11 += abs(u1 - v1)
        s12 += abs(u1 - v2)
        s13 += abs(u1 - v3)
        s20 += abs(u2 - v0)
        s21 += abs(u2 - v1)
        s22 += abs(u2 - v2)
        s23 += abs(u2 - v3)
        s30 += abs(u3 - v0)
        s31 += abs(u3 - v1)
        s32 += abs(u3 - v2)
        s33 += abs(u3 - v3)
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)


@njit(nogil=True, cache=True)
def _block_f32(queries, rows, lo, hi, out):
    """``out[i, j] = sum_k |queries[i, k] - rows[lo + j, k]|``, 4 x 4 tiles in float32."""
    m, n = queries.shape[0], hi - lo
    for j0 in range(0, n, 4):
        b0, b1, b2, b3 = _rows4(lo + j0, hi - 1)
        for i0 in range(0, m, 4):
            a0, a1, a2, a3 = _rows4(i0, m - 1)
            tile = _l1_4x4(
                queries[a0], queries[a1], queries[a2], queries[a3],
                rows[b0], rows[b1], rows[b2], rows[b3],
            )  # fmt: skip
            _store(out, i0, j0, m, n, tile, 4)


# --------------------------------------------------------------------------- #
# Public protocol
# --------------------------------------------------------------------------- #


def _as_rows(data, dtype, what: str) -> np.ndarray:
    """``data`` as a C-contiguous 2-D array of ``dtype`` (no copy when it already is)."""
    arr = np.asarray(data)
    _check_dtype(arr.dtype, dtype)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def prepare_u8(database) -> PreparedU8:
    """Check a uint8 database (n, d), d a multiple of :data:`ROW_MULTIPLE`.

    No repacking: with row-major rows the tiles already run at psadbw's
    throughput (as fast on the full CIFAR database as on one that fits in L2).
    """
    rows = _as_rows(database, np.uint8, "database")
    if rows.shape[1] % ROW_MULTIPLE:
        raise ValueError(
            f"feature count {rows.shape[1]} is not a multiple of {ROW_MULTIPLE}; pad with zeros"
        )
    return PreparedU8(rows)


def prepare_f32(database) -> PreparedF32:
    """Check a float32 database (n, d)."""
    return PreparedF32(_as_rows(database, np.float32, "database"))


def prepare(database) -> PreparedU8 | PreparedF32:
    """:func:`prepare_u8` or :func:`prepare_f32`, by the database's dtype."""
    dtype = np.asarray(database).dtype
    if dtype == np.uint8:
        return prepare_u8(database)
    if dtype == np.float32:
        return prepare_f32(database)
    raise TypeError(f"L1 kernels take uint8 or float32 data, got {dtype}")


def _checked(queries, rows: np.ndarray, lo: int, hi: int, out: np.ndarray, out_dtype):
    """Validate a block call; returns C-contiguous queries (bounds matter: no checks inside)."""
    q = _as_rows(queries, rows.dtype, "queries")
    if q.shape[1] != rows.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features, database {rows.shape[1]}")
    if not 0 <= lo <= hi <= rows.shape[0]:
        raise ValueError(f"rows [{lo}, {hi}) outside database of {rows.shape[0]}")
    _check_dtype(out.dtype, out_dtype)
    if out.ndim != 2 or out.shape[0] < q.shape[0] or out.shape[1] < hi - lo:
        raise ValueError(f"out {out.shape} smaller than {(q.shape[0], hi - lo)}")
    return q


def _variant_block(name: str) -> Callable[..., None]:
    """The public block function of one uint8 variant."""
    kernel = _U8_KERNELS[name]

    def block_variant(queries, prepared: PreparedU8, lo: int, hi: int, out: np.ndarray) -> None:
        q = _checked(queries, prepared.rows, lo, hi, out, np.int32)
        if name not in supported_variants():
            raise RuntimeError(f"L1 variant {name!r} cannot run on this CPU")
        if q.shape[0] and hi > lo:
            kernel(q, prepared.rows, lo, hi, out)

    block_variant.__name__ = block_variant.__qualname__ = f"block_u8_{name}"
    block_variant.__doc__ = f"Like :func:`block_u8`, always with the {name!r} variant."
    return block_variant


VARIANTS: dict[str, Callable[..., None]] = {name: _variant_block(name) for name in _NEEDS}
"""uint8 block function of each variant (call only those in :func:`supported_variants`)."""


def block_u8(queries, prepared: PreparedU8, lo: int, hi: int, out: np.ndarray) -> None:
    """``out[i, j] = sum_k |queries[i, k] - database[lo + j, k]|`` for ``i < m, j < hi - lo``.

    ``queries`` is uint8 (m, d); ``out`` int32 with at least that many rows and
    columns (other cells untouched). Runs the fastest variant for this CPU.
    """
    VARIANTS[variant(np.uint8)](queries, prepared, lo, hi, out)


def block_f32(queries, prepared: PreparedF32, lo: int, hi: int, out: np.ndarray) -> None:
    """``out[i, j] = sum_k |queries[i, k] - database[lo + j, k]|`` in float32, like block_u8."""
    q = _checked(queries, prepared.rows, lo, hi, out, np.float32)
    if q.shape[0] and hi > lo:
        _block_f32(q, prepared.rows, lo, hi, out)


def block(queries, prepared: PreparedU8 | PreparedF32, lo: int, hi: int, out: np.ndarray) -> None:
    """:func:`block_u8` or :func:`block_f32`, by the prepared database's type."""
    fn = block_u8 if isinstance(prepared, PreparedU8) else block_f32
    fn(queries, prepared, lo, hi, out)


_REFERENCE_CELLS = 1 << 22
"""Elements of the (queries, rows, d) temporary per step of :func:`reference` (32 MiB)."""


def reference(queries, database) -> np.ndarray:
    """``sum_k |queries[i, k] - database[j, k]|`` the obvious NumPy way, chunked.

    int64 for integer input, float64 otherwise; memory stays bounded by
    working on square-ish chunks of queries x database rows.
    """
    q, x = np.asarray(queries), np.asarray(database)
    wide = np.int64 if np.issubdtype(q.dtype, np.integer) else np.float64
    out = np.empty((q.shape[0], x.shape[0]), wide)
    step = max(1, int(np.sqrt(_REFERENCE_CELLS / max(q.shape[1], 1))))
    for i in range(0, q.shape[0], step):
        a = q[i : i + step, None, :].astype(wide)
        for j in range(0, x.shape[0], step):
            b = x[None, j : j + step, :].astype(wide)
            out[i : i + step, j : j + step] = np.abs(a - b).sum(axis=2)
    return out
