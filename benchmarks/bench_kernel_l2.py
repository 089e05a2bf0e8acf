"""Throughput of the squared-L2 kernels: G multiply-adds/s per variant, 1 and 2 threads.

Random uint8 queries (default 2,000) against a random 50,000 x 3,072
database (CIFAR-10 sized), cut into the kernel's QUERY_BLOCK x DATABASE_BLOCK
blocks; threads take query blocks from a ThreadPoolExecutor, as the search
engine does. For comparison, the float32 path (BLAS sgemm, one BLAS thread
per Python thread) on the same shapes. Each run is repeated and the median
reported (shared machines are noisy). The first call's time, which includes
compiling (numba's cache is pointed at an empty folder unless --warm-cache),
is reported separately.

The full CIFAR-10 search (10,000 x 50,000 x 3,072 = 1.5e12 multiply-adds)
took faiss IndexFlatL2 18.5 s on 2 cores; the goal is half that. OpenBLAS
tuning variables in the environment slow sgemm, so compare with

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_kernel_l2.py [--variants avx512vnni,blas] [--repeat 5]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CIFAR_MACS = 10_000 * 50_000 * 3_072
FAISS_SECONDS = 18.5


def make_data(m: int, n: int, d: int):
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 256, (m, d), dtype=np.uint8),
        rng.integers(0, 256, (n, d), dtype=np.uint8),
    )


def search_all(block, queries, prepared, n: int, threads: int, l2) -> tuple[float, float]:
    """Wall and CPU seconds to compute every distance, query blocks spread over ``threads``."""
    dtype = np.int32 if queries.dtype == np.uint8 else np.float32

    def task(start: int) -> float:
        begin = time.thread_time()
        q = queries[start : start + l2.QUERY_BLOCK]
        out = np.empty((len(q), l2.DATABASE_BLOCK), dtype)  # reused across database blocks
        for lo in range(0, n, l2.DATABASE_BLOCK):
            block(q, prepared, lo, min(lo + l2.DATABASE_BLOCK, n), out)
        return time.thread_time() - begin

    begin = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        cpu = sum(pool.map(task, range(0, len(queries), l2.QUERY_BLOCK)))
    return time.perf_counter() - begin, cpu


def measure(name: str, queries, database, repeat: int, l2) -> dict:
    """First call (compiles), prepare, then ``repeat`` full runs on 1 and 2 threads."""
    from threadpoolctl import threadpool_limits

    if name == "blas":
        queries, database = queries.astype(np.float32), database.astype(np.float32)
        prepare, block, dtype = l2.prepare_f32, l2.block_f32, np.float32
    else:
        prepare, block, dtype = (lambda x: l2.prepare_u8(x, name)), l2.VARIANTS[name], np.int32
    begin = time.perf_counter()
    block(queries[:1], prepare(database[:1]), 0, 1, np.empty((1, 1), dtype))
    first_s = time.perf_counter() - begin
    begin = time.perf_counter()
    prepared = prepare(database)
    prepare_s = time.perf_counter() - begin
    macs = len(queries) * len(database) * queries.shape[1]
    result = {"first_call_s": first_s, "prepare_s": prepare_s}
    runs = {1: [], 2: []}
    with threadpool_limits(1):  # BLAS: one thread per Python thread, like the kernels
        for _ in range(repeat):  # 1 and 2 threads alternate: both see the same noise
            for threads, times in runs.items():
                times.append(search_all(block, queries, prepared, len(database), threads, l2))
    for threads, times in runs.items():
        wall = [w for w, _ in times]
        result[f"threads_{threads}"] = {
            "seconds": wall,
            "median_s": statistics.median(wall),
            "gmacs": macs / statistics.median(wall) / 1e9,
            # rate per busy core: less sensitive to other processes on a shared machine
            "gmacs_per_cpu_s": macs / statistics.median(c for _, c in times) / 1e9,
        }
    return result


def sgemm_rate(queries, database, repeat: int) -> dict:
    """Plain ``np.matmul`` in float32 with OpenBLAS's own threads, 256 queries at a time."""
    q, x = queries.astype(np.float32), database.astype(np.float32)
    out = np.empty((256, len(x)), np.float32)
    seconds = []
    for _ in range(repeat):
        begin = time.perf_counter()
        for i in range(0, len(q), 256):
            np.matmul(q[i : i + 256], x.T, out=out[: len(q[i : i + 256])])
        seconds.append(time.perf_counter() - begin)
    return {"seconds": seconds, "gmacs": q.size * len(x) / statistics.median(seconds) / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--database", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=3072)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", help="comma-separated (default: all this CPU runs + blas)")
    parser.add_argument("--warm-cache", action="store_true", help="keep numba's on-disk cache")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/kernel_l2.json"))
    args = parser.parse_args()
    if not args.warm_cache:  # before numba is imported: the first call really compiles
        os.environ["NUMBA_CACHE_DIR"] = cache = tempfile.mkdtemp(prefix="numba-cache-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    from imgclf.neighbors.kernels import l2

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; sgemm may be slow (see --help)", file=sys.stderr)
    names = args.variants.split(",") if args.variants else [*l2.supported_variants(), "blas"]
    queries, database = make_data(args.queries, args.database, args.dim)
    macs = queries.size * len(database)
    print(
        f"{args.queries:,} x {args.database:,} x {args.dim:,} = {macs:.3g} multiply-adds, "
        f"{os.cpu_count()} cores, blocks {l2.QUERY_BLOCK} x {l2.DATABASE_BLOCK}"
    )
    results = {"shape": [args.queries, args.database, args.dim], "variants": {}}
    for name in names:
        load = os.getloadavg()[0]
        r = measure(name, queries, database, args.repeat, l2)
        r["load_before"], r["load_after"] = load, os.getloadavg()[0]
        results["variants"][name] = r
        one, two = r["threads_1"], r["threads_2"]
        print(
            f"{name:>11}: 1 thread {one['gmacs']:6.1f}, 2 threads {two['gmacs']:6.1f} G MAC/s"
            f"  -> CIFAR-10 in {CIFAR_MACS / two['gmacs'] / 1e9:5.1f} s"
            f"  (per busy core {two['gmacs_per_cpu_s']:.0f}; first call {r['first_call_s']:.1f} s, "
            f"prepare {r['prepare_s']:.1f} s, load {load:.1f})"
        )
    sgemm = sgemm_rate(queries, database, args.repeat)
    results["sgemm"] = sgemm
    faiss = CIFAR_MACS / FAISS_SECONDS / 1e9
    print(
        f"{'np.matmul':>11}: {sgemm['gmacs']:6.1f} G MAC/s float32 on all BLAS threads "
        f"({2 * sgemm['gmacs']:.0f} GFLOP/s); faiss IndexFlatL2 {faiss:.0f}, goal {2 * faiss:.0f}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
