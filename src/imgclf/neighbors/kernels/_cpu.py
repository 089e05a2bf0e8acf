"""What the CPU can do, asked once: picks which kernel variant runs.

Kernels come in variants: a portable numba loop that runs anywhere (ARM
included), and variants built on x86 instructions (AVX2, AVX-512BW, VNNI)
reached through llvmlite intrinsics. The dispatcher in each kernel module
asks :func:`has` which variants this machine can run. ``IMGCLF_DISABLE_SIMD``
(comma-separated feature names, or ``all``) hides features, so tests and
users can force the portable path.
"""

from __future__ import annotations

import functools
import os

__all__ = ["cpu_name", "features", "has"]


@functools.cache
def features() -> frozenset[str]:
    """The host CPU's features as llvmlite names them (``avx2``, ``avx512bw``, ...)."""
    import llvmlite.binding as llvm

    found = {name for name, on in llvm.get_host_cpu_features().items() if on}
    disabled = {f.strip() for f in os.environ.get("IMGCLF_DISABLE_SIMD", "").split(",")}
    return frozenset() if "all" in disabled else frozenset(found - disabled)


def has(*names: str) -> bool:
    """True if the CPU has every feature in ``names`` (and none is disabled)."""
    return set(names) <= features()


@functools.cache
def cpu_name() -> str:
    """LLVM's name for the host CPU, e.g. ``znver4`` or ``skylake-avx512``."""
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name()
