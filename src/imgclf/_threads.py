"""Work on consecutive shares of rows, one thread a share: what compiled kernels that
release the GIL (numba ``nogil``) need to use more than one core."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["on_shares"]


def on_shares(fn: Callable[[int, int], object], n: int, n_jobs: int, min_share: int) -> list:
    """``[fn(lo, hi), ...]`` over consecutive shares ``[lo, hi)`` of ``range(n)``, in order:
    at most ``n_jobs`` shares of at least ``min_share`` rows each (one share, on the
    calling thread, when there are too few rows for two).

    >>> on_shares(lambda lo, hi: (lo, hi), 10, n_jobs=2, min_share=4)
    [(0, 5), (5, 10)]
    >>> on_shares(lambda lo, hi: (lo, hi), 10, n_jobs=2, min_share=6)
    [(0, 10)]
    """
    parts = max(1, min(n_jobs, n // min_share))
    if parts == 1:
        return [fn(0, n)]
    edges = np.linspace(0, n, parts + 1).astype(np.int64).tolist()
    with ThreadPoolExecutor(parts) as pool:
        return list(pool.map(fn, edges[:-1], edges[1:]))
