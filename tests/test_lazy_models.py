"""Models on a set larger than memory (issue 15): k-NN fitted, saved and loaded on disk,
cross-validation of linear models reading folds from the store, k-means features fitted
on a lazy array, and the scratch stores of out-of-core fits removed on every exit.

Data are small and synthetic; the in-memory limit (``$IMGCLF_IN_MEMORY_BYTES``) is set
below their size so that they stay on disk, and every answer is checked against the same
work on the same data in memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from imgclf import io
from imgclf.datasets.store import StoredArray, StoreWriter, open_store
from imgclf.neighbors import KNNClassifier


def _store(path, values, chunk_rows=37):
    with StoreWriter(path) as store:
        store.array("x", values.shape[1:], values.dtype, chunk_rows=chunk_rows).append(values)
        return open_store(store.publish({}))[1]["x"]


@pytest.fixture
def reads(monkeypatch):
    """Rows of every StoredArray read; reading one whole (np.asarray) fails the test."""
    sizes = []
    plain = StoredArray.read
    monkeypatch.setattr(
        StoredArray, "read", lambda self, lo, hi: sizes.append(hi - lo) or plain(self, lo, hi)
    )

    def whole(self, dtype=None, copy=None):
        raise AssertionError(f"{self!r} was read whole")

    monkeypatch.setattr(StoredArray, "__array__", whole)
    return sizes


# --- k-NN ----------------------------------------------------------------------------------


@pytest.fixture
def ties(tmp_path):
    """500 images of 4x4x3 pixels in 0..3 (many equal distances), 3 classes; on disk."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 4, (500, 4, 4, 3), dtype=np.uint8)
    return images, rng.integers(0, 3, 500), _store(tmp_path / "s.zarr", images)


KNN_SETTINGS = {"exact": {}, "ivf": {"algorithm": "ivf", "n_lists": 8, "n_probe": 3}}


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("algorithm", list(KNN_SETTINGS))
def test_knn_on_disk_answers_as_in_memory_and_its_model_file_too(
    ties, tmp_path, monkeypatch, reads, metric, algorithm
):
    images, y, lazy = ties
    settings = {"k": 5, "metric": metric, **KNN_SETTINGS[algorithm]}
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")  # 24,000 bytes of pixels on disk
    on_disk = KNNClassifier(**settings).fit(lazy, y)
    reads.clear()  # (building IVF cells reads their sample of rows a chunk at a time)
    on_disk.kneighbors(images[:3])
    assert type(on_disk._index).__name__ == "StreamedIndex"
    assert max(reads) * 48 <= 4000 // 8  # searched in blocks of an eighth of the limit
    monkeypatch.undo()  # the reference, in memory (the reads are no longer counted)
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
    in_memory = KNNClassifier(**settings).fit(images, y)
    queries = images[::7]
    for got, want in zip(on_disk.kneighbors(queries), in_memory.kneighbors(queries), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(on_disk.predict(queries), in_memory.predict(queries))
    np.testing.assert_array_equal(
        on_disk.rank_classes(queries, top=3), in_memory.rank_classes(queries, top=3)
    )
    # the model file: written chunk by chunk, the in-memory model's arrays and checksum
    io.save(on_disk, tmp_path / "disk.imgclf", model_type="knn", image_shape=(4, 4, 3))
    io.save(in_memory, tmp_path / "mem.imgclf", model_type="knn", image_shape=(4, 4, 3))
    loaded = io.load(tmp_path / "disk.imgclf")  # rows over the limit: left in the file
    assert type(loaded.model._fit_X).__name__ == "FileRows"
    assert loaded.header["checksum"] == io.load(tmp_path / "mem.imgclf").header["checksum"]
    assert type(loaded.model._index).__name__ == "StreamedIndex"  # (ivf: its saved lists)
    np.testing.assert_array_equal(
        loaded.model.kneighbors(queries)[1], in_memory.kneighbors(queries)[1]
    )
    monkeypatch.delenv("IMGCLF_IN_MEMORY_BYTES")
    again = io.load(tmp_path / "disk.imgclf").model  # within the limit: read into memory
    assert isinstance(again._fit_X, np.ndarray)
    np.testing.assert_array_equal(again._fit_X, images.reshape(500, -1))


def test_knn_on_disk_refuses_in_memory_indexes_by_name(ties, monkeypatch):
    _, y, lazy = ties
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
    with pytest.raises(ValueError, match="algorithm='hnsw'.*use algorithm='exact' or 'ivf'"):
        KNNClassifier(algorithm="hnsw").fit(lazy, y)
    with pytest.raises(ValueError, match="one label per row"):
        KNNClassifier().fit(lazy, y[:-1])


def test_a_lazy_model_file_shorter_than_its_rows_is_refused(ties, tmp_path, monkeypatch):
    _, y, lazy = ties
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
    path = tmp_path / "m.imgclf"
    io.save(KNNClassifier().fit(lazy, y), path, model_type="knn")
    data = bytearray(path.read_bytes())
    at = data.find(bytes(lazy.read(0, 1).reshape(-1)))  # row 0 of the training rows
    data[at + 100] ^= 0xFF  # one training pixel changed: the streamed checksum sees it
    path.write_bytes(bytes(data))
    with pytest.raises(io.ModelFileError, match="checksum mismatch"):
        io.load(path)


# --- command line: train, evaluate, predict, cv, features ---------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two overlapping classes (grey levels 122 and 134, noise 60): 160 + 80 PNGs of 8x8."""
    root = tmp_path_factory.mktemp("lazy") / "folder"
    rng = np.random.default_rng(3)
    for split, count in (("train", 80), ("test", 40)):
        for name, base in (("dark", 122), ("light", 134)):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(base, 60, (8, 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def _imgclf(tmp_path, *argv, limit=None):
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache"), "IMGCLF_PROGRESS": "0"}
    env.pop("IMGCLF_IN_MEMORY_BYTES", None)
    if limit is not None:
        env["IMGCLF_IN_MEMORY_BYTES"] = str(limit)
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", *argv],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout


def test_the_cli_trains_evaluates_and_predicts_knn_on_disk(folder, tmp_path):
    """train --model knn --features kmeans:8 under a 4,000-byte limit (pixels and features
    on disk, the model's rows left in its file when loaded): the in-memory model's file
    contents, evaluation and prediction; no scratch store left behind."""
    common = ["--model", "knn", "--k", "3", "--features", "kmeans:8"]
    out = _imgclf(tmp_path, "train", str(folder), *common, "-o", "disk.imgclf", limit=4000)
    assert "trained knn on 160 images" in out
    _imgclf(tmp_path, "train", str(folder), *common, "-o", "mem.imgclf")
    assert not list((tmp_path / "cache").glob("features-*"))
    disk, mem = io.load(tmp_path / "disk.imgclf"), io.load(tmp_path / "mem.imgclf")
    assert disk.header["checksum"] == mem.header["checksum"]
    on_disk = _imgclf(tmp_path, "evaluate", "disk.imgclf", str(folder), "--json", limit=4000)
    in_memory = _imgclf(tmp_path, "evaluate", "mem.imgclf", str(folder), "--json")
    assert json.loads(on_disk) == json.loads(in_memory)
    image = folder / "test" / "dark" / "3.png"
    predicted = _imgclf(tmp_path, "predict", "disk.imgclf", str(image), limit=4000)
    want = mem.class_names[mem.model.predict(np.asarray(Image.open(image))[None])[0]]
    assert predicted.startswith(f"{image}: {want} ")


def test_the_cli_cross_validates_a_linear_model_on_disk(folder, tmp_path):
    """cv --model linear: folds read from the store. Under a limit the folds' training
    rows fit (25,000 bytes; 30,720 in all), the scores are the in-memory ones; under 4,000
    every fold trains out of core and still learns."""
    argv = ["cv", str(folder), "--model", "linear", "--folds", "3", "--epochs", "3", "--json"]
    in_memory = json.loads(_imgclf(tmp_path, *argv))
    folds_fit = json.loads(_imgclf(tmp_path, *argv, limit=25_000))
    assert folds_fit["results"] == in_memory["results"]
    assert len({r["mean"] for r in in_memory["results"]}) > 1  # the grid's scores differ
    out_of_core = json.loads(_imgclf(tmp_path, *argv, limit=4000))
    assert [r["mean"] for r in out_of_core["results"]] != []
    assert out_of_core["best_validation_accuracy"] > 0.6


def test_cross_validate_reads_folds_from_the_store_never_whole(tmp_path, monkeypatch, reads):
    from imgclf.linear import linear_pipeline
    from imgclf.model_selection import cross_validate

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 600)
    X = np.clip(rng.normal(100 + 30 * y[:, None], 50, (600, 12)), 0, 255).astype(np.uint8)
    lazy = _store(tmp_path / "s.zarr", X, chunk_rows=50)
    grid = {"clf__reg": [1e-3, 1.0]}
    model = linear_pipeline(epochs=2, scale="std")
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "6000")  # 7,200 bytes on disk, folds 4,800
    on_disk = cross_validate(model, lazy, y, grid, folds=3).scores
    monkeypatch.delenv("IMGCLF_IN_MEMORY_BYTES")
    np.testing.assert_array_equal(on_disk, cross_validate(model, X, y, grid, folds=3).scores)


# --- features fitted on a lazy array ------------------------------------------------------


def test_feature_set_fits_on_disk_as_in_memory(tmp_path, monkeypatch, reads):
    from imgclf.features import FeatureSet

    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (120, 8, 8, 3), dtype=np.uint8)
    lazy = _store(tmp_path / "s.zarr", images).reshape_rows()
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
    on_disk = FeatureSet(["kmeans:6", "color"], image_shape=(8, 8, 3)).fit(lazy)
    in_memory = FeatureSet(["kmeans:6", "color"], image_shape=(8, 8, 3)).fit(images)
    for attr in ("patch_mean_", "whitening_", "centroids_"):
        np.testing.assert_array_equal(getattr(on_disk, attr), getattr(in_memory, attr))
    assert on_disk.n_features_in_ == in_memory.n_features_in_ == 192
    np.testing.assert_array_equal(on_disk.transform(images), in_memory.transform(images))


# --- scratch stores --------------------------------------------------------------------------


def test_a_failed_out_of_core_fit_leaves_no_scratch_store(tmp_path, monkeypatch):
    from sklearn.pipeline import Pipeline

    from imgclf.features import FeatureSet
    from imgclf.model_selection.out_of_core import fit_rows

    class Failing(KNNClassifier):
        def fit(self, X, y):
            assert list((tmp_path / "cache").glob("features-*/features.zarr"))  # it was made
            raise RuntimeError("killed mid-training")

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "1000")
    rng = np.random.default_rng(7)
    lazy = _store(tmp_path / "s.zarr", rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8))
    model = Pipeline([("f", FeatureSet(["color"], image_shape=(4, 4, 3))), ("c", Failing())])
    with pytest.raises(RuntimeError, match="mid-training"):
        fit_rows(model, lazy.reshape_rows(), np.arange(40) % 2)
    assert not list((tmp_path / "cache").glob("features-*"))


def test_scratch_of_killed_processes_and_old_scratch_are_swept(tmp_path):
    """A process killed (SIGKILL) while it holds a scratch folder leaves it; the next
    sweep removes it and any folder over the age limit, not a live process's."""
    from imgclf.model_selection.out_of_core import sweep_scratch

    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", "from imgclf.model_selection.out_of_core import scratch_folder\n"
         "s = scratch_folder(); print(s.name, flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    killed = child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    live = tmp_path / f"features-{os.getpid()}-live"
    old = tmp_path / "features-unnamed"  # no process id (another imgclf's), two days old
    for folder in (live, old):
        folder.mkdir()
    os.utime(old, (time.time() - 48 * 3600,) * 2)
    assert os.path.isdir(killed)
    swept = sweep_scratch(tmp_path)
    assert sorted(map(str, swept)) == sorted([killed, str(old)])
    assert live.is_dir() and not os.path.exists(killed) and not old.exists()


def test_a_knn_sweep_on_features_of_a_lazy_set_scores_as_in_memory(folder, tmp_path, monkeypatch):
    """cv --model knn --features on disk: the features go to a scratch store the streamed
    sweep reads (removed after), with the in-memory sweep's scores."""
    from imgclf.datasets import load_folder
    from imgclf.experiments import choose_hyperparameters

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    grid, fixed = {"k": [1, 3, 7], "metric": ["l1", "l2"]}, {"features": ["color"]}
    in_memory = load_folder(folder)["train"]
    want = choose_hyperparameters(in_memory, "knn", grid, folds=3, fixed=fixed).search.scores
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
    lazy = load_folder(folder)["train"]
    assert lazy.lazy
    got = choose_hyperparameters(lazy, "knn", grid, folds=3, fixed=fixed).search.scores
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 1 and not list((tmp_path / "cache").glob("features-*"))


def test_a_subset_of_a_lazy_set_above_the_limit_stays_on_disk(folder, tmp_path, monkeypatch):
    """--train-size / --test-size on a set on disk: a subset above the limit is a lazy
    view of its rows (same rows, same order), one within it is read."""
    from imgclf.datasets import load_folder

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    in_memory = load_folder(folder)["train"]
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "4000")
    lazy = load_folder(folder)["train"]
    big, small = lazy.subset(100, seed=1), lazy.subset(20, seed=1)  # 19,200 and 3,840 bytes
    assert big.lazy and not small.lazy and big.subset(50).lazy
    want = in_memory.subset(100, seed=1)
    np.testing.assert_array_equal(big.images[:], want.images)
    np.testing.assert_array_equal(big.X[7:9], want.X[7:9])
    np.testing.assert_array_equal(big.labels, want.labels)
    np.testing.assert_array_equal(big.subset(50).images[:], want.subset(50).images)
    np.testing.assert_array_equal(small.images, in_memory.subset(20, seed=1).images)
