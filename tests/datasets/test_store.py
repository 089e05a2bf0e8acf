"""The Zarr v3 store: round trips through chunk boundaries, lazy reads, atomic publishing,
Zarr and Dask reading it natively, and every damaged store refused as imgclf's own error."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from imgclf.datasets import Dataset
from imgclf.datasets.store import StoredArray, StoreWriter, in_memory_bytes, open_store
from imgclf.errors import DatasetError, FormatError


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (103, 4, 5, 3), dtype=np.uint8)


def write(path: Path, images: np.ndarray, chunk_rows: int = 10, pieces=(0, 7, 55, 103)) -> Path:
    """A store with ``images`` appended in uneven pieces and labels beside them."""
    with StoreWriter(path) as store:
        array = store.array("images", images.shape[1:], np.uint8, chunk_rows=chunk_rows)
        for lo, hi in zip(pieces[:-1], pieces[1:], strict=True):
            array.append(images[lo:hi])
        store.array("labels", (), np.int64, chunk_rows=7).append(np.arange(len(images)) - 50)
        store.publish({"what": "test"})
    return path


def test_round_trip_across_chunk_boundaries(tmp_path, images):
    attributes, arrays = open_store(write(tmp_path / "s.zarr", images))
    assert attributes == {"what": "test"}
    stored = arrays["images"]
    assert stored.shape == images.shape and stored.dtype == np.uint8 and len(stored) == 103
    np.testing.assert_array_equal(stored.read(0, 103), images)
    for key in (slice(5, 38), slice(95, 200), slice(None, None, 7), 0, -1, 99):
        np.testing.assert_array_equal(stored[key], images[key])
    rows = np.array([102, 3, 3, 57, 0, -2])
    np.testing.assert_array_equal(stored[rows], images[rows])
    np.testing.assert_array_equal(
        stored[images[:, 0, 0, 0] > 128], images[images[:, 0, 0, 0] > 128]
    )
    np.testing.assert_array_equal(stored[4:9, 1, :, 2], images[4:9, 1, :, 2])
    np.testing.assert_array_equal(arrays["labels"].read(0, 103), np.arange(103) - 50)
    flat = stored.reshape_rows()
    assert flat.shape == (103, 60)
    np.testing.assert_array_equal(flat[10:20], images[10:20].reshape(10, 60))
    blocks = list(stored.chunks(25))
    assert [lo for lo, _ in blocks] == [0, 25, 50, 75, 100]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), images)
    with pytest.raises(IndexError):
        stored[103]


def test_chunks_are_whole_rows_of_raw_bytes(tmp_path, images):
    path = write(tmp_path / "s.zarr", images)
    chunks = sorted((path / "images" / "c").iterdir(), key=lambda p: int(p.name))
    assert len(chunks) == 11  # 103 rows in chunks of 10: the last zero-padded, as Zarr stores
    last = chunks[-1] / "0" / "0" / "0"
    assert last.stat().st_size == 10 * 60
    assert last.read_bytes()[3 * 60 :] == bytes(7 * 60)


def test_zarr_and_dask_read_the_store_natively(tmp_path, images):
    zarr = pytest.importorskip("zarr", reason="interoperability needs zarr (the dask extra)")
    path = write(tmp_path / "s.zarr", images)
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["what"] == "test"
    np.testing.assert_array_equal(group["images"][:], images)
    np.testing.assert_array_equal(group["labels"][:], np.arange(103) - 50)
    dask_array = pytest.importorskip("dask.array")
    np.testing.assert_array_equal(dask_array.from_zarr(str(path), "images").compute(), images)
    other = zarr.create_array(
        str(tmp_path / "z.zarr"), shape=images.shape, chunks=(16, 4, 5, 3), dtype="uint8",
        compressors=None,
    )  # fmt: skip
    other[:] = images
    np.testing.assert_array_equal(StoredArray(tmp_path / "z.zarr")[:], images)


def test_a_failed_write_leaves_nothing(tmp_path, images):
    target = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError), StoreWriter(target) as store:
        store.array("images", (4, 5, 3), np.uint8, chunk_rows=10).append(images[:50])
        raise RuntimeError("decoding failed half-way")
    assert list(tmp_path.iterdir()) == []


def test_publishing_replaces_a_damaged_store_whole(tmp_path, images):
    target = write(tmp_path / "s.zarr", images)
    (target / "images" / "zarr.json").write_text("{")
    write(target, images[:20])
    assert len(open_store(target)[1]["images"]) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_a_lazy_array_refuses_to_become_numpy_above_the_memory_limit(tmp_path, images, monkeypatch):
    stored = open_store(write(tmp_path / "s.zarr", images))[1]["images"]
    np.testing.assert_array_equal(np.asarray(stored), images)
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "1000")
    assert in_memory_bytes() == 1000
    with pytest.raises(DatasetError, match="more than the in-memory limit of 1,000"):
        np.asarray(stored)
    np.testing.assert_array_equal(stored[:3], images[:3])  # reads of rows are fine
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "lots")
    with pytest.raises(ValueError, match="IMGCLF_IN_MEMORY_BYTES must be a number"):
        in_memory_bytes()


def test_a_lazy_array_pickles_as_its_path(tmp_path, images):
    stored = open_store(write(tmp_path / "s.zarr", images))[1]["images"]
    again = pickle.loads(pickle.dumps(stored.shard_reader()))
    assert len(pickle.dumps(stored)) < 2000
    np.testing.assert_array_equal(again(40, 45), images[40:45].reshape(5, -1))


def test_a_dataset_keeps_lazy_images_on_disk(tmp_path, images):
    stored = open_store(write(tmp_path / "s.zarr", images))[1]["images"]
    ds = Dataset(stored, np.arange(103) % 3, ("a", "b", "c"), "lazy")
    assert ds.lazy and ds.images is stored and ds.image_shape == (4, 5, 3)
    assert ds.X.shape == (103, 60)
    np.testing.assert_array_equal(ds.X[7:9], images[7:9].reshape(2, 60))
    sub = ds.subset(30, seed=1)
    assert not sub.lazy
    np.testing.assert_array_equal(sub.images, images[ds._sample(30, 1)])
    assert repr(ds) == "Dataset('lazy': 103 images 4x5x3, 3 classes)"
    labels = open_store(tmp_path / "s.zarr")[1]["labels"]
    with pytest.raises(DatasetError, match="images must be uint8"):
        Dataset(labels, np.zeros(103), ("a",))


def damage(path: Path, how: str) -> None:
    meta_path = path / "images" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    chunk = path / "images" / "c" / "3" / "0" / "0" / "0"
    if how == "truncated-chunk":
        chunk.write_bytes(chunk.read_bytes()[:-1])
    elif how == "longer-chunk":
        chunk.write_bytes(chunk.read_bytes() + b"x")
    elif how == "missing-chunk":
        chunk.unlink()
    elif how == "huge-shape":
        meta["shape"][0] = 2**40
        meta_path.write_text(json.dumps(meta))
    elif how == "compressed":
        meta["codecs"] = [{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 1}}]
        meta_path.write_text(json.dumps(meta))
    elif how == "float-dtype":
        meta["data_type"] = "float64"
        meta_path.write_text(json.dumps(meta))
    elif how == "chunked-across-rows":
        meta["chunk_grid"]["configuration"]["chunk_shape"][1] = 2
        meta_path.write_text(json.dumps(meta))
    elif how == "not-json":
        meta_path.write_bytes(b"\xff\xfe{")
    elif how == "nested-json":
        meta_path.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "oversized-metadata":
        meta_path.write_text(json.dumps({**meta, "pad": "x" * (17 * 2**20)}))


@pytest.mark.parametrize(
    "how",
    ["truncated-chunk", "longer-chunk", "missing-chunk", "huge-shape", "compressed",
     "float-dtype", "chunked-across-rows", "not-json", "nested-json", "oversized-metadata"],
)  # fmt: skip
def test_a_damaged_store_is_a_format_error_naming_the_file(tmp_path, images, how):
    path = write(tmp_path / "s.zarr", images)
    damage(path, how)
    with pytest.raises(FormatError, match=str(path / "images")):
        stored = open_store(path)[1]["images"]
        stored.read(0, len(stored))


def test_a_forged_shape_allocates_nothing_before_failing(tmp_path, images):
    """The reader checks each chunk file's size before reading, so a store claiming
    2**40 rows fails on the first missing chunk without a terabyte allocation."""
    path = write(tmp_path / "s.zarr", images)
    damage(path, "huge-shape")
    stored = open_store(path)[1]["images"]
    assert len(stored) == 2**40
    with pytest.raises(FormatError, match="missing"):
        stored.read(2**40 - 5, 2**40)


FUZZ = """
import json, resource, shutil, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import numpy as np
from pathlib import Path
from imgclf.datasets.store import open_store
from imgclf.errors import FormatError

seed_store, work, cases = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
files = sorted(p.relative_to(seed_store) for p in seed_store.rglob("*") if p.is_file())
outcomes = {"ok": 0, "FormatError": 0}
for case in range(cases):
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seed_store, work)
    target = work / files[rng.integers(len(files))]
    data = bytearray(target.read_bytes())
    kind = rng.integers(4)
    if kind == 0 and data:  # flip bytes
        for i in rng.integers(0, len(data), rng.integers(1, 8)):
            data[i] = rng.integers(256)
    elif kind == 1:  # truncate
        data = data[: rng.integers(len(data) + 1)]
    elif kind == 2:  # replace a number in the metadata
        text = data.decode("utf-8", "replace")
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        if digits:
            i = digits[rng.integers(len(digits))]
            text = text[:i] + str(int(rng.choice([0, -1, 2**31, 2**62, 7]))) + text[i + 1:]
        data = bytearray(text.encode())
    else:  # append junk
        data += bytes(rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8))
    target.write_bytes(bytes(data))
    try:
        _, arrays = open_store(work)
        for array in arrays.values():
            array.read(0, min(len(array), 10_000))
        outcomes["ok"] += 1
    except FormatError:
        outcomes["FormatError"] += 1
print(json.dumps(outcomes))
"""


def test_mutated_stores_read_or_raise_format_errors_under_a_memory_cap(tmp_path, images):
    """Seeded mutants of every file of a store, read in a process capped at 1 GiB: each
    reads, or is a FormatError; anything else (a crash, MemoryError, a hang) fails."""
    import subprocess
    import sys

    seed = write(tmp_path / "seed.zarr", images)
    done = subprocess.run(
        [sys.executable, "-c", FUZZ, str(seed), str(tmp_path / "work.zarr"), "300"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout)
    assert sum(outcomes.values()) == 300 and outcomes["FormatError"] > 50
