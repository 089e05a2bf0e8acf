"""Throughput of the L1 distance kernels, in billions of byte pairs per second.

Random uint8 queries (default 2,000) against a random 50,000 x 3,072 database
(CIFAR-10's shape), for every variant this CPU runs, on 1 and 2 threads (a
ThreadPoolExecutor over query blocks, as the search engine does). Each query
block walks the whole database in ``DATABASE_BLOCK`` slices. The first call of
each variant, which compiles it (into a fresh numba cache, unless
``--warm-cache``), is timed separately. Timed runs are repeated and the median
reported, since shared machines are noisy; so is the rate per second of
thread CPU time, which other work on the same cores does not dilute.
Goal (issue): >= 25 G pairs/s per thread.

    python benchmarks/bench_kernel_l1.py [--queries 2000] [--repeat 3] [--threads 1 2]
        [--dtype uint8|float32] [--variants avx512bw ...] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--database", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=3072)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtype", choices=["uint8", "float32"], default="uint8")
    p.add_argument("--variants", nargs="+", help="default: every variant this CPU runs")
    p.add_argument("--warm-cache", action="store_true", help="keep numba's on-disk cache")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def search_time(block, queries, prepared, n: int, threads: int, l1) -> tuple[float, float]:
    """Wall and summed thread-CPU seconds to fill every block of ``queries`` x ``n`` rows.

    CPU seconds show the kernel's own speed when other work shares the cores.
    """
    q_block, db_block = l1.QUERY_BLOCK, l1.DATABASE_BLOCK
    out_dtype = np.int32 if queries.dtype == np.uint8 else np.float32

    def one_query_block(start: int) -> float:
        cpu = time.thread_time()
        # one reusable buffer per query block, like the engine
        out = np.empty((q_block, db_block), out_dtype)
        qs = queries[start : start + q_block]
        for lo in range(0, n, db_block):
            block(qs, prepared, lo, min(lo + db_block, n), out)
        return time.thread_time() - cpu

    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        cpu = sum(pool.map(one_query_block, range(0, len(queries), q_block)))
        return time.perf_counter() - start, cpu


def measure(args: argparse.Namespace) -> dict:
    from imgclf.neighbors.kernels import l1

    rng = np.random.default_rng(0)
    shape_q, shape_x = (args.queries, args.dim), (args.database, args.dim)
    if args.dtype == "uint8":
        queries = rng.integers(0, 256, shape_q, dtype=np.uint8)
        prepared = l1.prepare_u8(rng.integers(0, 256, shape_x, dtype=np.uint8))
        blocks = {name: l1.VARIANTS[name] for name in l1.supported_variants()}
    else:
        queries = rng.random(shape_q, dtype=np.float32)
        prepared = l1.prepare_f32(rng.random(shape_x, dtype=np.float32))
        blocks = {"portable": l1.block_f32}
    if args.variants:
        blocks = {name: blocks[name] for name in args.variants}
    pairs = args.queries * args.database * args.dim
    results = {"dtype": args.dtype, "shape": [args.queries, args.database, args.dim]}
    results["cores"], results["variants"] = os.cpu_count(), {}
    for name, block in blocks.items():
        out = np.empty((4, 4), np.int32 if args.dtype == "uint8" else np.float32)
        start = time.perf_counter()
        block(queries[:4], prepared, 0, 4, out)
        row = {"first_call_s": time.perf_counter() - start}
        for threads in args.threads:
            runs = [
                search_time(block, queries, prepared, args.database, threads, l1)
                for _ in range(args.repeat)
            ]
            wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
            row[f"{threads}_threads"] = {
                "seconds": [r[0] for r in runs],
                "cpu_seconds": [r[1] for r in runs],
                "gpairs_per_s": pairs / wall / 1e9,
                "gpairs_per_cpu_s": pairs / cpu / 1e9,
            }
            print(
                f"{args.dtype} {name:9s} {threads} thread(s): {pairs / wall / 1e9:6.1f} G pairs/s "
                f"({pairs / wall / 1e9 / threads:6.1f} per thread; {pairs / cpu / 1e9:6.1f} per "
                f"CPU second), median of {seconds_str([r[0] for r in runs])}",
                flush=True,
            )
        print(f"{args.dtype} {name:9s} first call (compile): {row['first_call_s']:.2f} s")
        results["variants"][name] = row
    return results


def seconds_str(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in seconds) + " s"


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        if not args.warm_cache:
            # numba reads this when first imported: a fresh cache makes the
            # first call a real compile, not a load from disk
            if "numba" in sys.modules:
                sys.exit("set up the numba cache before importing numba")
            os.environ["NUMBA_CACHE_DIR"] = cache
        results = measure(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
