"""A folder larger than the memory its process may use: loaded (lazily, into the Zarr
cache), searched exactly block by block with the answer of in-memory search, and trained on
for one linear epoch out of core, whose scores read from disk equal in-memory scoring.

The folder is made on the fly: 8x8 PNGs of noise, loaded with ``size=(256, 256)``
so that 10,400 small files decode to 2.0 GB of pixels, while the process that loads
and searches them runs under a 1.5 GiB address-space cap (``RLIMIT_AS``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

N_IMAGES = 10_400  # x 256 x 256 x 3 = 2.04 GB decoded
CAP = 3 * 2**29  # 1.5 GiB of address space for the whole process
SIDE = 256


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("big") / "folder"
    rng = np.random.default_rng(0)
    for label in range(4):
        (root / f"class{label}").mkdir(parents=True)
    for i in range(N_IMAGES):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"class{i % 4}" / f"{i:05d}.png", compress_level=0)
    return root


CHILD = """
import json, os, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
import numpy as np
from imgclf.datasets import load_folder
from imgclf.neighbors import StreamedIndex
from imgclf.linear import LinearClassifier
from imgclf.neighbors import ExactIndex

start = time.perf_counter()
train = load_folder({folder!r}, size=({side}, {side}), max_bytes=8 << 30, workers=2)["train"]
loaded = time.perf_counter() - start
assert train.lazy, "a set larger than the in-memory limit must stay on disk"
queries = train.images[[5, 5_001, {last}]]
dist, idx = StreamedIndex(train.images, "l1", block_bytes=64 << 20).search(queries, 10)

# the same top-10 from the in-memory engine on a subset holding it and 1,000 other rows
rng = np.random.default_rng(1)
rows = np.unique(np.concatenate([idx.ravel(), rng.choice(len(train), 1000, replace=False)]))
sub_dist, sub_idx = ExactIndex(train.images[rows], "l1").search(queries, 10)

# and from NumPy over every row, streamed (first query)
q = queries[0].astype(np.int32)
every = np.concatenate([
    np.abs(block.astype(np.int32) - q).sum(axis=(1, 2, 3)) for _, block in train.images.chunks(32)
])

# one linear epoch out of core (windows of 1 MiB blocks within the 256 MiB limit), then
# its scores of every row read from disk against in-memory scoring of the subset's rows
start = time.perf_counter()
clf = LinearClassifier(epochs=1, standardize=False, learning_rate=1e-9, batch_size=64)
clf.fit(train.images, train.labels)
trained = time.perf_counter() - start
scores = clf.decision_function(train.images)
print(json.dumps({{
    "n": len(train), "loaded_s": loaded, "nbytes": train.images.nbytes,
    "dist": dist.tolist(), "idx": idx.tolist(),
    "subset_dist": sub_dist.tolist(), "subset_idx": rows[sub_idx].tolist(),
    "numpy_idx": np.argsort(every, kind="stable")[:10].tolist(),
    "numpy_dist": np.sort(every)[:10].tolist(),
    "trained_s": trained, "steps": len(clf.loss_history_),
    "finite": bool(np.isfinite(clf.loss_history_).all() and np.isfinite(clf.coef_).all()),
    "scores_equal": bool(np.array_equal(scores[rows], clf.decision_function(train.images[rows]))),
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}}))
"""


def test_a_folder_larger_than_the_memory_cap_loads_and_searches_exactly(big_folder, tmp_path):
    script = CHILD.format(cap=CAP, folder=str(big_folder), side=SIDE, last=N_IMAGES - 1)
    env = {
        "IMGCLF_CACHE": str(tmp_path / "cache"),
        "IMGCLF_IN_MEMORY_BYTES": str(256 * 2**20),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=900, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"loaded {found['nbytes']:,} bytes in {found['loaded_s']:.1f} s under a {CAP:,} cap, "
          f"one linear epoch in {found['trained_s']:.1f} s; "
          f"peak RSS {found['peak_rss_kb'] * 1024:,} bytes")  # fmt: skip
    assert found["n"] == N_IMAGES and found["nbytes"] > CAP  # more pixels than memory
    assert found["idx"] == found["subset_idx"] and found["dist"] == found["subset_dist"]
    assert found["idx"][0] == found["numpy_idx"] and found["dist"][0] == found["numpy_dist"]
    assert [row[0] for row in found["idx"]] == [5, 5_001, N_IMAGES - 1]  # each finds itself
    # the epoch: every row once, in windows of 136 shuffle blocks of 5 rows (1 MiB each,
    # half the 256 MiB limit), each window ending on its own (possibly short) minibatch of 64
    windows = math.ceil(math.ceil(N_IMAGES / 5) / 136)
    assert found["finite"] and N_IMAGES / 64 <= found["steps"] <= N_IMAGES / 64 + windows
    assert found["scores_equal"]
    assert found["peak_rss_kb"] * 1024 < CAP


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """Two classes, light and dark, in train and test splits: 240 PNGs of 8x8."""
    root = tmp_path_factory.mktemp("small") / "folder"
    rng = np.random.default_rng(2)
    for split, count in (("train", 80), ("test", 40)):
        for name, base in (("dark", 70), ("light", 180)):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(base, 50, (8, 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_the_cli_trains_and_evaluates_a_folder_larger_than_the_limit(small_folder, tmp_path):
    """`imgclf train` and `imgclf evaluate` in fresh processes, the folder loaded lazily (a
    limit of 4,000 bytes); evaluation from disk equals the in-memory one of the same model."""
    import os

    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache"), "IMGCLF_PROGRESS": "0"}
    lazy_env = {**env, "IMGCLF_IN_MEMORY_BYTES": "4000"}

    def imgclf(*argv, env):
        done = subprocess.run(
            [sys.executable, "-m", "imgclf", *argv],
            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done.stdout

    out = imgclf("train", str(small_folder), "--model", "linear", "--epochs", "3", "-o", "m.imgclf",
                 env=lazy_env)  # fmt: skip
    assert "trained" in out and "160 images" in out
    on_disk = json.loads(imgclf("evaluate", "m.imgclf", str(small_folder), "--json", env=lazy_env))
    in_memory = json.loads(imgclf("evaluate", "m.imgclf", str(small_folder), "--json", env=env))
    assert on_disk == in_memory and on_disk["n_test"] == 80 and on_disk["accuracy"] > 0.8
    # image features too: computed chunk by chunk into a temporary store, then removed
    out = imgclf("train", str(small_folder), "--model", "linear", "--features", "pixels,color",
                 "--epochs", "3", "-o", "f.imgclf", env=lazy_env)  # fmt: skip
    assert "trained" in out and not list((tmp_path / "cache").glob("features-*"))
    from imgclf import io
    from imgclf.datasets import load_folder

    test = load_folder(small_folder, use_cache=False)["test"]
    assert io.load(tmp_path / "f.imgclf").model.score(test.X, test.labels) > 0.8


def test_the_cli_cross_validates_a_folder_larger_than_the_limit(
    small_folder, tmp_path, monkeypatch
):
    """`imgclf cv` in a fresh process, the folder loaded lazily (a limit of 4,000 bytes): the
    sweep streams every fold from disk and scores exactly as in memory; so does a held-out
    split (in this process)."""
    import os

    from imgclf.datasets import load_folder
    from imgclf.experiments import choose_hyperparameters

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    grid = {"k": [1, 3, 7], "metric": ["l1", "l2"]}
    env = {**os.environ, "IMGCLF_PROGRESS": "0", "IMGCLF_IN_MEMORY_BYTES": "4000"}
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", "cv", str(small_folder), "--k", "1,3,7",
         "--metric", "l1,l2", "--folds", "5", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    on_disk = json.loads(done.stdout)
    train = load_folder(small_folder)["train"]
    in_memory = choose_hyperparameters(train, "knn", grid, folds=5).search.to_records()
    assert on_disk["results"] == json.loads(json.dumps(in_memory, default=float))
    assert on_disk["n_train"] == 160 and on_disk["best_validation_accuracy"] > 0.8

    for repeats in (1, 2):
        held_out = {"val_size": 0.25, "repeats": repeats, "seed": 4}
        monkeypatch.delenv("IMGCLF_IN_MEMORY_BYTES", raising=False)
        in_memory = choose_hyperparameters(train, "knn", grid, **held_out).search
        monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
        lazy = load_folder(small_folder)["train"]
        assert lazy.lazy
        on_disk = choose_hyperparameters(lazy, "knn", grid, **held_out).search
        np.testing.assert_array_equal(on_disk.scores, in_memory.scores)


@pytest.mark.parametrize("model", ["linear", "net"])
def test_an_out_of_core_epoch_with_validation_is_one_pass_over_the_disk(
    tmp_path, monkeypatch, model
):
    """The validation rows (and the network's training probe) are read once and kept, not
    once more every epoch."""
    from imgclf.datasets.store import StoredArray, StoreWriter, open_store
    from imgclf.linear import LinearClassifier
    from imgclf.nn import TwoLayerNet

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 24_000)
    images = np.clip(rng.normal(90 + 60 * y[:, None], 40, (24_000, 8)), 0, 255).astype(np.uint8)
    with StoreWriter(tmp_path / "s.zarr") as store:
        store.array("x", (8,), np.uint8, chunk_rows=1000).append(images)
        lazy = open_store(store.publish({}))[1]["x"]
    # 192,000 bytes: out of core; the 4,800 validation rows and the network's probe of 1,000
    # training rows (46,400 bytes) fit a quarter of the limit
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "190000")
    read = []
    plain = StoredArray.read
    monkeypatch.setattr(
        StoredArray, "read", lambda self, lo, hi: read.append(hi - lo) or plain(self, lo, hi)
    )
    make = {"linear": lambda: LinearClassifier(epochs=4, val_fraction=0.2),
            "net": lambda: TwoLayerNet(hidden=8, epochs=4, val_fraction=0.2)}[model]  # fmt: skip
    fitted = make().fit(lazy, y)
    passes = sum(read) / len(images)
    history = getattr(fitted, "val_score_history_", getattr(fitted, "val_acc_history_", None))
    assert len(history) == 4 and history[-1] > 0.7
    # standardization's two passes, one per epoch, and one for each set scored every epoch
    # (validation; the network's training probe too): 10 and 14 before they were kept
    assert passes == 2 + 4 + {"linear": 1, "net": 2}[model]
