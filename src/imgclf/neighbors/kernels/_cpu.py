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

__all__ = ["compiles_for", "cpu_name", "features", "has", "runnable"]


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


def compiles_for(feature: str) -> bool:
    """True if numba generates code for a CPU with ``feature``.

    The CPU must have it (and ``IMGCLF_DISABLE_SIMD`` not hide it), and numba
    must target the host: with ``NUMBA_CPU_NAME`` set, only features listed
    in ``NUMBA_CPU_FEATURES`` count. An x86 intrinsic compiled for a CPU
    without it is a fatal LLVM error, not an exception, so kernels check first.
    """
    from numba.core import config

    if not has(feature):
        return False
    if config.CPU_NAME in (None, "host") and config.CPU_FEATURES is None:
        return True
    return f"+{feature}" in (config.CPU_FEATURES or "").split(",")


def runnable(needs: dict[str, tuple[str, ...]]) -> list[str]:
    """The variants of a ``{variant: required features}`` table this machine runs, in order."""
    return [name for name, required in needs.items() if all(map(compiles_for, required))]
