"""Exact k-NN on CIFAR-10: imgclf against faiss IndexFlat and scikit-learn brute force.

2,000 test images (10,000 with --full) against all 50,000 training images, 3,072
uint8 pixels each, L1 and L2, k = 1 and 10, all three engines in this one process.
Prints times and ratios, checks that the engines return the same neighbours,
reports GFLOP/s (L2), billions of byte pairs/s (L1), the machine's sgemm rate,
single-query latency, the kernels' first-call compile time, 1-NN test accuracy,
and writes benchmarks/results/knn.json.

Goals (issue 3): imgclf L2 <= 0.5x faiss, L1 <= 0.2x faiss, both >= 5x faster than
scikit-learn; single-query latency median < 5 ms. Run against current NumPy with

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_knn.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from imgclf.neighbors import ExactIndex
from imgclf.neighbors.kernels import l1, l2

from _common import environment, load_cifar, sgemm_gflops, timed, write_json

SK_METRIC = {"l1": "manhattan", "l2": "euclidean"}


def compile_seconds(train: np.ndarray) -> dict:
    """First call on a tiny problem: numba compiles (or loads from its cache) each kernel."""
    out = {}
    for metric in ("l1", "l2"):
        start = time.perf_counter()
        ExactIndex(train[:256], metric).search(train[:4], 1)
        out[metric] = time.perf_counter() - start
    return out


def run_imgclf(train, queries, metric, k):
    index = ExactIndex(train, metric)
    return index.search(queries, k)


def run_faiss(train, queries, metric, k):
    import faiss

    index = faiss.IndexFlat(train.shape[1], faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_L1)
    index.add(train.astype(np.float32))
    dist, ind = index.search(queries.astype(np.float32), k)
    return (np.sqrt(dist) if metric == "l2" else dist), ind


def run_sklearn(train, queries, metric, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=SK_METRIC[metric], n_jobs=-1)
    return nn.fit(train).kneighbors(queries)


ENGINES = {"imgclf": run_imgclf, "faiss": run_faiss, "sklearn": run_sklearn}


def agreement(ours, theirs) -> float:
    """Share of queries whose neighbour lists agree as (distance, index) sets.

    Lists are compared after sorting by (distance, index); rows whose distances
    agree everywhere but whose indices differ only among equal distances count as
    agreeing (a tie, which each engine may break its own way).
    """
    (d1, i1), (d2, i2) = ours, theirs
    same_dist = np.isclose(d1, d2, rtol=1e-4).all(axis=1)
    same_index = (np.sort(i1, axis=1) == np.sort(i2, axis=1)).all(axis=1)
    kth_tie = np.isclose(d1[:, -1:], d1, rtol=1e-6).sum(axis=1) > 1
    return float(np.mean(same_dist & (same_index | kth_tie)))


def compare(train, queries, metric, k, engines) -> dict:
    row = {"metric": metric, "k": k, "queries": len(queries)}
    results = {}
    for name in engines:
        seconds, results[name] = timed(lambda n=name: ENGINES[n](train, queries, metric, k))
        row[f"{name}_s"] = seconds
        print(f"  {metric} k={k:<3} {name:8s} {seconds:8.2f} s", flush=True)
    for name in engines:
        if name != "imgclf":
            row[f"ratio_vs_{name}"] = row["imgclf_s"] / row[f"{name}_s"]
            row[f"agreement_with_{name}"] = agreement(results["imgclf"], results[name])
    pairs = len(queries) * len(train) * train.shape[1]
    rate_key = "gflops" if metric == "l2" else "g_byte_pairs_per_s"
    row[rate_key] = (2 * pairs if metric == "l2" else pairs) / row["imgclf_s"] / 1e9
    return row


def latency_ms(train, queries, metric, n: int = 50) -> float:
    index = ExactIndex(train, metric)
    index.search(queries[:1], 1)
    times = []
    for q in queries[:n]:
        start = time.perf_counter()
        index.search(q[None], 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


PEAK_MEMORY_CHILD = """
import resource, sys
sys.path.insert(0, {bench!r})
from _common import load_cifar
from imgclf.neighbors import ExactIndex
train, test = load_cifar()
for metric in ("l2", "l1"):
    ExactIndex(train.X, metric).search(test.X, 10)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_memory_mb() -> float:
    """Peak resident memory of a fresh process that loads CIFAR-10 (from the cache) and
    searches all 10,000 test images against the 50,000 training images, L2 then L1, k=10.
    (Goal: under 1.5 GB, data included.) A child process, so the peers' memory is not counted.
    """
    import subprocess
    import sys
    from pathlib import Path

    code = PEAK_MEMORY_CHILD.format(bench=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def one_nn_accuracy(train, test, metric) -> float:
    _, ind = ExactIndex(train.X, metric).search(test.X, 1)
    return float(np.mean(train.labels[ind[:, 0]] == test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="all 10,000 test queries")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--engines", default="imgclf,faiss,sklearn")
    args = parser.parse_args()
    train, test = load_cifar()
    n_queries = 10_000 if args.full else args.queries
    X, Q = train.X, test.X[:n_queries]
    engines = args.engines.split(",")
    result = {
        "environment": environment(),
        "sgemm_gflops": sgemm_gflops(),
        "compile_s": compile_seconds(X),
        "kernels": {"l1": l1.variant(np.uint8), "l2": l2.variant(np.uint8)},
    }
    print(
        f"sgemm: {result['sgemm_gflops']:.0f} GFLOP/s; kernels {result['kernels']}; "
        f"first-call compile {result['compile_s']}"
    )
    result["runs"] = [compare(X, Q, m, k, engines) for m in ("l2", "l1") for k in (1, 10)]
    result["latency_ms"] = {m: latency_ms(X, test.X, m) for m in ("l1", "l2")}
    result["one_nn_accuracy"] = {m: one_nn_accuracy(train, test, m) for m in ("l1", "l2")}
    result["peak_memory_mb_full_search"] = peak_memory_mb()
    report(result)
    print(f"wrote {write_json('knn.json', result)}")


def report(result: dict) -> None:
    for row in result["runs"]:
        ratios = ", ".join(f"{k[9:]} {v:.3f}x" for k, v in row.items() if k.startswith("ratio"))
        agree = ", ".join(f"{k[15:]} {v:.1%}" for k, v in row.items() if k.startswith("agree"))
        rate = row.get("gflops") or row.get("g_byte_pairs_per_s")
        print(
            f"{row['metric']} k={row['k']}: imgclf {row['imgclf_s']:.2f} s ({rate:.0f} "
            f"{'GFLOP/s' if 'gflops' in row else 'G byte pairs/s'}); time ratio {ratios}; "
            f"same neighbours: {agree}"
        )
    lat = result["latency_ms"]
    print(f"single-query latency (median): L1 {lat['l1']:.2f} ms, L2 {lat['l2']:.2f} ms (goal < 5)")
    print(
        f"peak memory, 10,000 x 50,000 search in a fresh process: "
        f"{result['peak_memory_mb_full_search']:.0f} MB (goal < 1,536)"
    )
    acc = result["one_nn_accuracy"]
    print(
        f"1-NN test accuracy: L1 {acc['l1']:.2%}, L2 {acc['l2']:.2%} "
        f"(published, original CIFAR-10: 38.6% and 35.4%)"
    )


if __name__ == "__main__":
    main()
