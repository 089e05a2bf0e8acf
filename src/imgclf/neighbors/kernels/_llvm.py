"""Pieces of LLVM IR that several kernels' numba intrinsics share."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils

__all__ = ["row_pointers"]


def row_pointers(context, builder, ary, rows):
    """``&ary[r, 0]`` (an i8*) for each row index ``r`` of a C-contiguous 2-D numba array."""
    shape = cgutils.unpack_tuple(builder, ary.shape, 2)
    strides = cgutils.unpack_tuple(builder, ary.strides, 2)
    zero = ir.Constant(context.get_value_type(types.intp), 0)
    return [
        cgutils.get_item_pointer2(context, builder, ary.data, shape, strides, "C", [r, zero])
        for r in rows
    ]
