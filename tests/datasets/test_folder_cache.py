"""The decoded-folder cache as a Zarr store: written while decoding, published whole,
keyed by the manifest; folders above the in-memory limit load lazily from it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgclf.datasets import cache, load_folder
from imgclf.datasets import folder_cache as fc
from imgclf.datasets.store import StoredArray, open_store
from imgclf.errors import DatasetError


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 12)):
        for label in ("ant", "bee", "cow"):
            (tmp_path / "f" / split / label).mkdir(parents=True)
            for i in range(n // 3):
                pixels = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "f" / split / label / f"{i}.png")
    return tmp_path / "f"


def entries():
    return sorted((cache.cache_dir() / "folders").glob("*/*.zarr"))


def test_the_entry_is_a_zarr_store_keyed_by_the_manifest(folder):
    first = load_folder(folder)
    (entry,) = entries()
    attributes, arrays = open_store(entry)
    info = attributes["imgclf_folder"]
    assert info["splits"]["train"]["classes"] == ["ant", "bee", "cow"]
    assert sorted(arrays) == ["test_images", "test_labels", "train_images", "train_labels"]
    np.testing.assert_array_equal(arrays["train_images"][:], first["train"].images)
    again = load_folder(folder)
    assert again["train"].meta["cached"] and not again["train"].lazy
    np.testing.assert_array_equal(again["test"].images, first["test"].images)
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(folder / "train" / "ant" / "new.png")
    changed = load_folder(folder)
    assert "cached" not in changed["train"].meta and len(changed["train"]) == 31
    assert entries() != [entry] and len(entries()) == 1  # the stale entry is gone


def test_a_folder_above_the_in_memory_limit_loads_lazily(folder, monkeypatch):
    in_memory = load_folder(folder, use_cache=False)
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "1000")  # 42 images of 90 bytes: 3,780
    for attempt in ("decoded", "cached"):
        lazy = load_folder(folder)
        for split in ("train", "test"):
            ds = lazy[split]
            assert ds.lazy and isinstance(ds.images, StoredArray), attempt
            assert ("cached" in ds.meta) == (attempt == "cached")
            np.testing.assert_array_equal(ds.images[:], in_memory[split].images)
            np.testing.assert_array_equal(ds.labels, in_memory[split].labels)
            assert ds.X.shape == in_memory[split].X.shape
    with pytest.raises(DatasetError, match="more than the in-memory limit.*use_cache=True"):
        load_folder(folder, use_cache=False)


def test_skipped_files_leave_no_gap_in_memory_or_on_disk(folder, monkeypatch):
    (folder / "train" / "bee" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipped 1 image"):
        in_memory = load_folder(folder, on_error="skip", use_cache=False)["train"]
    assert len(in_memory) == 30
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "0")
    with pytest.warns(UserWarning, match="skipped 1 image"):
        lazy = load_folder(folder, on_error="skip")["train"]
    np.testing.assert_array_equal(lazy.images[:], in_memory.images)
    np.testing.assert_array_equal(lazy.labels, in_memory.labels)


def test_an_interrupted_load_publishes_nothing(folder, monkeypatch):
    calls = []

    def failing_append(self, rows):
        calls.append(len(rows))
        raise KeyboardInterrupt

    monkeypatch.setattr(fc.MemorySink, "append", failing_append)
    with pytest.raises(KeyboardInterrupt):
        load_folder(folder, workers=1)
    assert calls and entries() == []
    assert not any((cache.cache_dir() / "folders").rglob("*.part"))


@pytest.mark.parametrize("change", ["touched", "renamed", "class_added"])
def test_every_change_to_the_folder_is_a_miss(folder, change):
    import os
    import time

    first = load_folder(folder)["train"]
    target = folder / "train" / "ant" / "0.png"
    if change == "touched":  # same bytes, a new modification time
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    elif change == "renamed":
        os.rename(target, target.with_name("z.png"))
    else:
        (folder / "train" / "yak").mkdir()
        Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(folder / "train" / "yak" / "0.png")
    again = load_folder(folder)["train"]
    assert "cached" not in again.meta
    assert len(again) == len(first) + (change == "class_added")
    assert load_folder(folder)["train"].meta["cached"]  # and the new entry serves


def test_files_are_listed_in_the_order_of_their_raw_names(tmp_path):
    from imgclf.datasets.folder import _list_split

    names = {
        "ascii": ["b.png", "a.png", "Z.png", "a0.png", "a.PNG"],
        "mixed": ["b.png", "\u00e9.png", "a.png", "\u4e2d.png", "Z.png"],
    }
    for kind, files in names.items():
        for name in files:
            (tmp_path / kind / "c").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(
                tmp_path / kind / "c" / name, format="PNG"
            )
        listed = [f.rsplit("/", 1)[1] for f in _list_split(tmp_path / kind).files]
        assert listed == sorted(files, key=lambda n: n.encode()), kind
