"""Helpers shared by the benchmark scripts: timing, the data, JSON output, BLAS info."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
RESULTS = ROOT / "benchmarks" / "results"


def timed(fn: Callable, repeat: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def load_cifar(folder: Path = SHARED_CIFAR):
    """Train and test splits of the shared CIFAR-10 JPEG folder (cached after the first run)."""
    from imgclf.datasets import load_folder

    splits = load_folder(folder)
    return splits["train"], splits["test"]


def sgemm_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This machine's float32 matrix-multiply rate through NumPy's BLAS, GFLOP/s."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a  # warm up threads and caches
    seconds, _ = timed(lambda: a @ a, repeat)
    return 2 * n**3 / seconds / 1e9


def blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "architecture", "num_threads")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()]


def environment() -> dict:
    return {
        "cores": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "blas": blas_info(),
    }


def write_json(name: str, result: dict) -> Path:
    """Write ``benchmarks/results/<name>`` whole or not at all (an earlier result survives)."""
    from imgclf._atomic import atomic_path

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=float))
    return path
