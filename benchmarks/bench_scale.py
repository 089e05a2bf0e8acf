"""Beyond one machine's memory and one process: out-of-core search and search on Dask.

Out-of-core. CIFAR-10's 50,000 training images are tiled ``--images / 50,000``
times, each copy with its own seeded perturbation (every pixel +-2), into a
Zarr store (written chunk by chunk: never in memory whole; ~3 GB at the default
1,000,000 images). ``--queries`` CIFAR-10 test images are searched exactly
(10-NN, L1) over it by :class:`imgclf.neighbors.StreamedIndex` in a child
process capped at ``--cap`` bytes of address space (default 2 GiB), first with
the store's pages dropped from the page cache (``posix_fadvise``: read from
disk) and then warm; and by :class:`imgclf.neighbors.ExactIndex` with the whole
set in RAM, in an uncapped child. Prints both times, the ratio (goal <= 1.3x),
peak RSS, and checks the answers are identical. Then one epoch of
``LinearClassifier()`` (softmax, standardized, the tiles labelled as their CIFAR-10
originals) out of core in a capped child (``IMGCLF_IN_MEMORY_BYTES`` a quarter
of the cap: windows of chunks of an eighth) against the same epoch on the set
read into RAM: times, peak RSS, ratio (the issue sets no goal for it).

Dask. On a ``LocalCluster`` of 2 workers x 1 thread (this machine's 2 cores),
CIFAR-10's exact search (``--cifar-queries`` test images against all 50,000
training images) through :class:`~imgclf.distributed.ShardedIndex`, and a
5-fold ``sweep_knn`` through the cluster, each against the single-process
engine on the same 2 cores in the same run (goal: <= 1.3x its time), results
identical. Writes benchmarks/results/scale.json; ``docs/scaling.md`` builds
its scaling model on these figures.

Cross-validation out of core (``--cv-size N``, alone with ``--cv-only``). A stratified
sample of N CIFAR-10 training images written to a store, and the 5-fold k-NN sweep
(L1, k in 1..20) run on it with ``IMGCLF_IN_MEMORY_BYTES`` half its size, so every
fold is streamed from disk (:mod:`imgclf.model_selection.streamed`), against the same
sweep with the sample in RAM, in one process: times, ratio, identical scores. Writes
benchmarks/results/scale_cv.json.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_scale.py
    ... bench_scale.py --images 200000 --queries 200 --cifar-queries 2000 --sweep-size 10000
    ... bench_scale.py --cv-only --cv-size 10000
    ... bench_scale.py --knn-model-queries 2000

A k-NN model on disk (``--knn-model-queries N``, alone). ``KNNClassifier`` fitted on
CIFAR-10's training images in a store with ``IMGCLF_IN_MEMORY_BYTES`` half their size
(searched by ``StreamedIndex``), saved (rows written chunk by chunk), loaded (rows left
in the model file: ``FileRows``) and evaluated on N test images (top-5 ranking, as
``imgclf evaluate``), against the same model in RAM: times, ratio, identical
predictions. Writes benchmarks/results/scale_knn_model.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import environment, load_cifar, timed, write_json

K = 10
METRIC = "l1"
SWEEP_KS = [1, 3, 5, 10, 20]
TILE_ROWS = 5000  # rows perturbed and written at once while building the store


# --- out-of-core --------------------------------------------------------------------------


def build_store(path: Path, train: np.ndarray, n_images: int) -> float:
    """``n_images`` tiled, perturbed copies of ``train`` in a Zarr store; seconds taken."""
    from imgclf.datasets.store import StoreWriter

    start = time.perf_counter()
    with StoreWriter(path) as store:
        images = store.array("images", train.shape[1:], np.uint8)
        for copy in range(math.ceil(n_images / len(train))):
            rng = np.random.default_rng(copy)
            for lo in range(0, min(len(train), n_images - copy * len(train)), TILE_ROWS):
                block = train[lo : min(lo + TILE_ROWS, n_images - copy * len(train))]
                noise = rng.integers(-2, 3, block.shape, dtype=np.int16)
                images.append(np.clip(block + noise, 0, 255).astype(np.uint8))
        store.publish({"what": f"CIFAR-10 training images tiled to {n_images:,}"})
    return time.perf_counter() - start


def drop_from_page_cache(path: Path) -> None:
    """Evict the store's files from the page cache (only ours): the next read is from disk."""
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def child(mode: str, store: Path, queries: Path, out: Path) -> None:
    """In a child process: one timed search over the store, streamed or in RAM."""
    from imgclf.datasets.store import open_store
    from imgclf.neighbors import ExactIndex, StreamedIndex

    images = open_store(store)[1]["images"]
    q = np.load(queries)
    start = time.perf_counter()
    if mode == "streamed":
        dist, idx = StreamedIndex(images, METRIC).search(q, K)
        load_s = 0.0
    else:
        data = images.read(0, len(images))
        load_s = time.perf_counter() - start
        dist, idx = ExactIndex(data, METRIC).search(q, K)
    seconds = time.perf_counter() - start - load_s
    np.savez(out, dist=dist, idx=idx)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"search_s": seconds, "load_s": load_s, "peak_rss_bytes": peak}))


def epoch_child(mode: str, store: Path, labels: Path, out: Path) -> None:
    """In a child process: one timed epoch of LinearClassifier, out of core or in RAM."""
    from imgclf.datasets.store import open_store
    from imgclf.linear import LinearClassifier

    images = open_store(store)[1]["images"]
    y = np.load(labels)
    start = time.perf_counter()
    X = images if mode == "streamed" else images.read(0, len(images))
    load_s = time.perf_counter() - start
    clf = LinearClassifier(epochs=1).fit(X, y)
    seconds = time.perf_counter() - start - load_s
    np.savez(out, coef=clf.coef_, intercept=clf.intercept_)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"fit_s": seconds, "load_s": load_s, "peak_rss_bytes": peak,
                      "steps": len(clf.loss_history_),
                      "final_loss": float(clf.loss_history_[-50:].mean())}))  # fmt: skip


def run_child(
    mode: str, store: Path, data: Path, out: Path, cap: int | None, task: str = "child"
) -> dict:
    limit = (
        ""
        if cap is None
        else f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap})); "
    )
    code = (
        f"{limit}import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import bench_scale; from pathlib import Path; "
        f"bench_scale.{task}({mode!r}, Path({str(store)!r}), Path({str(data)!r}), "
        f"Path({str(out)!r}))"
    )
    # out of core within the cap: arrays above a quarter of it stay on disk
    env = {**os.environ, "IMGCLF_IN_MEMORY_BYTES": str((cap or 2**62) // 4)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {task} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def linear_epochs(store: Path, labels: np.ndarray, tmp: Path, cap: int) -> dict:
    """One LinearClassifier epoch out of core (capped) and in RAM; times and the ratio."""
    np.save(tmp / "labels.npy", labels)
    runs = {}
    for name, mode, limit in (("streamed", "streamed", cap), ("in_ram", "in_ram", None)):
        runs[name] = run_child(mode, store, tmp / "labels.npy", tmp / f"e_{name}.npz", limit,
                               task="epoch_child")  # fmt: skip
        print(f"  linear epoch {name}: {runs[name]['fit_s']:.1f} s, peak RSS "
              f"{runs[name]['peak_rss_bytes'] / 2**30:.2f} GiB, mean loss of the last 50 "
              f"steps {runs[name]['final_loss']:.3f}", flush=True)  # fmt: skip
    return {"runs": runs, "ratio": runs["streamed"]["fit_s"] / runs["in_ram"]["fit_s"]}


def out_of_core(train: np.ndarray, test: np.ndarray, args, train_labels: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        store = tmp / "tiled.zarr"
        print(f"building a store of {args.images:,} images ...", flush=True)
        build_s = build_store(store, train, args.images)
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(f"  {size / 1e9:.2f} GB in {build_s:.1f} s", flush=True)
        np.save(tmp / "q.npy", test[: args.queries])
        runs = {}
        for name, mode, cap, cold in () if args.skip_search else (
            ("streamed_cold", "streamed", args.cap, True),
            ("in_ram", "in_ram", None, False),
            ("streamed_warm", "streamed", args.cap, False),
        ):  # fmt: skip
            if cold:
                drop_from_page_cache(store)
            runs[name] = run_child(mode, store, tmp / "q.npy", tmp / f"{name}.npz", cap)
            runs[name]["answer"] = np.load(tmp / f"{name}.npz")
            print(f"  {name}: {runs[name]['search_s']:.1f} s, peak RSS "
                  f"{runs[name]['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)  # fmt: skip
        identical = not runs or all(
            np.array_equal(runs[a]["answer"][key], runs["in_ram"]["answer"][key])
            for a in ("streamed_cold", "streamed_warm")
            for key in ("dist", "idx")
        )
        for run in runs.values():
            del run["answer"]
        labels = np.resize(train_labels, args.images)  # each tile labelled as its original
        epochs = None if args.skip_epoch else linear_epochs(store, labels, tmp, args.cap)
    base = runs["in_ram"]["search_s"] if runs else float("nan")
    return {
        "images": args.images,
        "store_bytes": size,
        "store_build_s": build_s,
        "queries": args.queries,
        "k": K,
        "metric": METRIC,
        "cap_bytes": args.cap,
        "runs": runs,
        "ratio_cold": runs["streamed_cold"]["search_s"] / base if runs else None,
        "ratio_warm": runs["streamed_warm"]["search_s"] / base if runs else None,
        "identical": identical,
        "linear_epoch": epochs,
    }


# --- Dask ---------------------------------------------------------------------------------


def on_dask(train, test, train_labels, args) -> dict:
    import logging

    from distributed import Client, LocalCluster
    from imgclf.distributed import ShardedIndex
    from imgclf.distributed import sweep_knn as cluster_sweep
    from imgclf.model_selection import sweep_knn
    from imgclf.model_selection.splits import train_val_split
    from imgclf.neighbors import ExactIndex

    queries = test[: args.cifar_queries]
    _, keep = train_val_split(train_labels, args.sweep_size, seed=0) if (
        args.sweep_size < len(train)) else (None, np.arange(len(train)))  # fmt: skip
    X, y = train[keep].reshape(len(keep), -1), train_labels[keep]
    result = {"cifar_queries": len(queries), "sweep_size": len(keep), "sweep_ks": SWEEP_KS}
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                     dashboard_address=None, silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        build_local_s, local = timed(lambda: ExactIndex(train, METRIC, n_jobs=2))
        build_dask_s, sharded = timed(lambda: ShardedIndex(client, train, METRIC))
        local_s, local_answer, dask_s, dask_answer = [], None, [], None
        for _ in range(args.repeat):  # interleaved: a shared machine drifts
            seconds, local_answer = timed(lambda: local.search(queries, K))
            local_s.append(seconds)
            seconds, dask_answer = timed(lambda: sharded.search(queries, K))
            dask_s.append(seconds)
        result["search"] = {
            "local_build_s": build_local_s,
            "dask_build_s": build_dask_s,
            "local_s": min(local_s),
            "dask_s": min(dask_s),
            "ratio": min(dask_s) / min(local_s),
            "identical": all(
                np.array_equal(a, b) for a, b in zip(local_answer, dask_answer, strict=True)
            ),  # fmt: skip
        }
        print(f"  search: local {min(local_s):.2f} s, Dask {min(dask_s):.2f} s "
              f"({result['search']['ratio']:.2f}x)", flush=True)  # fmt: skip
        sharded.close()
        grid = {"ks": SWEEP_KS, "metrics": (METRIC,), "folds": 5}
        sweep_local_s, local_sweep = timed(lambda: sweep_knn(X, y, **grid, n_jobs=2))
        sweep_dask_s, dask_sweep = timed(lambda: cluster_sweep(client, X, y, **grid))
        result["sweep"] = {
            "local_s": sweep_local_s,
            "dask_s": sweep_dask_s,
            "ratio": sweep_dask_s / sweep_local_s,
            "identical": bool(np.array_equal(local_sweep.scores, dask_sweep.scores)),
            "best_params": local_sweep.best_params,
        }
        print(f"  5-fold sweep: local {sweep_local_s:.2f} s, Dask {sweep_dask_s:.2f} s "
              f"({result['sweep']['ratio']:.2f}x)", flush=True)  # fmt: skip
    return result


def out_of_core_cv(train: np.ndarray, labels: np.ndarray, args) -> dict:
    """The 5-fold k-NN sweep of a sample on disk (above the limit) and in RAM, same process."""
    from imgclf.datasets.store import IN_MEMORY_ENV, StoreWriter, open_store
    from imgclf.model_selection import sweep_knn, train_val_split

    rows = np.sort(train_val_split(labels, args.cv_size, seed=0)[1])
    X, y = train[rows].reshape(len(rows), -1), labels[rows]
    grid = {"ks": SWEEP_KS, "metrics": (METRIC,), "folds": 5}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        with StoreWriter(Path(tmp) / "cv.zarr") as store:
            store.array("x", (X.shape[1],), np.uint8).append(X)
            stored = open_store(store.publish({}))[1]["x"]
        sweep_knn(X[::40], y[::40], **grid)  # compiles the kernels: not timed
        ram_s, in_ram = timed(lambda: sweep_knn(X, y, **grid))
        os.environ[IN_MEMORY_ENV] = str(X.nbytes // 2)
        try:
            disk_s, on_disk = timed(lambda: sweep_knn(stored, y, **grid))
        finally:
            del os.environ[IN_MEMORY_ENV]
    result = {"images": len(rows), "bytes": X.nbytes, "limit": X.nbytes // 2, "ram_s": ram_s,
              "disk_s": disk_s, "ratio": disk_s / ram_s, "load_average": os.getloadavg(),
              "identical": bool(np.array_equal(in_ram.scores, on_disk.scores))}  # fmt: skip
    print(f"  5-fold sweep of {len(rows):,} images: in RAM {ram_s:.1f} s, from disk "
          f"{disk_s:.1f} s ({result['ratio']:.2f}x); identical: {result['identical']}; "
          f"load average {result['load_average'][0]:.1f}", flush=True)  # fmt: skip
    return result


def knn_model(train_set, test_set, args) -> dict:
    """A k-NN model of CIFAR-10 on disk (above the limit): fitted, saved, loaded with its
    rows left in the model file, and evaluated, against the same model in RAM."""
    from imgclf import io
    from imgclf.datasets import Dataset
    from imgclf.datasets.store import IN_MEMORY_ENV, StoreWriter, open_store
    from imgclf.experiments import evaluate
    from imgclf.neighbors import KNNClassifier

    X, y = train_set.X, train_set.labels
    test = test_set.subset(args.knn_model_queries, seed=0)
    test = Dataset(test.images, test.labels, test_set.classes)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        with StoreWriter(Path(tmp) / "knn.zarr") as store:
            store.array("x", (X.shape[1],), np.uint8).append(X)
            stored = open_store(store.publish({}))[1]["x"]
        model = KNNClassifier(k=K, metric=METRIC)
        evaluate(model.fit(X[:2000], y[:2000]), test.subset(20))  # compiles the kernels
        ram_s, in_ram = timed(lambda: evaluate(model.fit(X, y), test))
        os.environ[IN_MEMORY_ENV] = str(X.nbytes // 2)
        try:
            lazy = KNNClassifier(k=K, metric=METRIC).fit(stored, y)
            save_s, _ = timed(lambda: io.save(lazy, Path(tmp) / "m.imgclf", model_type="knn"))
            load_s, saved = timed(lambda: io.load(Path(tmp) / "m.imgclf"))
            disk_s, on_disk = timed(lambda: evaluate(saved.model, test))
            lazy_rows = type(saved.model._fit_X).__name__
        finally:
            del os.environ[IN_MEMORY_ENV]
    result = {"train": len(X), "test": len(test), "limit": X.nbytes // 2, "save_s": save_s,
              "load_s": load_s, "rows_when_loaded": lazy_rows, "ram_s": ram_s,
              "disk_s": disk_s, "ratio": disk_s / ram_s, "accuracy": on_disk.accuracy,
              "top5_accuracy": on_disk.top5_accuracy, "load_average": os.getloadavg(),
              "identical": bool(np.array_equal(in_ram.predictions, on_disk.predictions)
                                and in_ram.top5_accuracy == on_disk.top5_accuracy)}  # fmt: skip
    print(f"  k-NN (k={K}, {METRIC}) evaluated on {len(test):,} test images: in RAM "
          f"{ram_s:.1f} s, from its model file ({lazy_rows}) {disk_s:.1f} s "
          f"({result['ratio']:.2f}x); saved in {save_s:.1f} s, loaded in {load_s:.1f} s; "
          f"identical: {result['identical']}; load average {result['load_average'][0]:.1f}",
          flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cap", type=int, default=2 * 2**30, help="bytes of address space")
    parser.add_argument("--cifar-queries", type=int, default=10_000)
    parser.add_argument("--sweep-size", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="folder for the store (default: $TMPDIR)")
    parser.add_argument("--skip-out-of-core", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-epoch", action="store_true", help="no linear epoch")
    parser.add_argument("--skip-search", action="store_true", help="no out-of-core search")
    parser.add_argument("--cv-size", type=int, default=0, help="images in the out-of-core cv")
    parser.add_argument("--cv-only", action="store_true", help="only the out-of-core cv")
    parser.add_argument("--knn-model-queries", type=int, default=0,
                        help="test images of the k-NN model on disk (0: skipped)")  # fmt: skip
    args = parser.parse_args()
    train_set, test_set = load_cifar()
    train, test = train_set.images, test_set.images
    if args.knn_model_queries:
        print("a k-NN model on disk (rows in its model file) against the same in RAM:")
        knn = {"environment": environment(), **knn_model(train_set, test_set, args)}
        print(f"wrote {write_json('scale_knn_model.json', knn)}")
        return
    if args.cv_size:
        print("the k-NN sweep out of core (every fold streamed) against the same in RAM:")
        cv = {"environment": environment(), **out_of_core_cv(train, train_set.labels, args)}
        print(f"wrote {write_json('scale_cv.json', cv)}")
        if args.cv_only:
            return
    result = {"environment": environment()}
    if not args.skip_out_of_core:
        print("out-of-core exact search (StreamedIndex) against the same search in RAM:")
        ooc = result["out_of_core"] = out_of_core(train, test, args, train_set.labels)
        if ooc["ratio_cold"] is not None:
            print(f"  ratio out-of-core / in RAM: {ooc['ratio_cold']:.2f}x from disk, "
                  f"{ooc['ratio_warm']:.2f}x from the page cache (goal <= 1.3x); "
                  f"identical: {ooc['identical']}")  # fmt: skip
        if ooc["linear_epoch"]:
            print(f"  linear epoch out of core / in RAM: {ooc['linear_epoch']['ratio']:.2f}x")
    if not args.skip_dask:
        print("Dask, 2 workers x 1 thread, against the single-process engine on 2 threads:")
        result["dask"] = on_dask(train, test, train_set.labels, args)
    print(f"wrote {write_json('scale.json', result)}")


if __name__ == "__main__":
    main()
