"""Image folders: layouts, decoding, resizing, errors and the cache."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.datasets import cache, load, load_folder
from imgclf.datasets.folder import image_size, read_image
from imgclf.errors import DatasetError


def write_image(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def solid(value: int, shape=(6, 5, 3)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


@pytest.fixture
def flat_folder(tmp_path):
    """root/<class>/<image>: 3 cats, 2 dogs, as lossless PNG so pixels are exact."""
    root = tmp_path / "pets"
    for i in range(3):
        write_image(root / "cat" / f"{i}.png", solid(10 + i))
    for i in range(2):
        write_image(root / "dog" / f"{i}.png", solid(100 + i))
    (root / "dog" / "notes.txt").write_text("not an image, ignored")
    return root


def test_flat_layout_gives_one_split_with_exact_pixels(flat_folder):
    splits = load_folder(flat_folder, workers=1)
    assert list(splits) == ["train"]
    ds = splits["train"]
    assert ds.classes == ("cat", "dog")
    assert ds.images.shape == (5, 6, 5, 3) and ds.images.dtype == np.uint8
    assert ds.images.flags.c_contiguous
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], [10, 11, 12, 100, 101])


def test_train_test_layout_gives_both_splits(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("a", "b"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", solid(i))
    splits = load_folder(tmp_path)
    assert sorted(splits) == ["test", "train"]
    assert len(splits["train"]) == 6 and len(splits["test"]) == 2
    assert splits["test"].class_counts() == {"a": 1, "b": 1}


def test_nested_groups_name_classes_group_slash_class(tmp_path):
    for group in ("Greek", "Latin"):
        for char in ("character01", "character02"):
            write_image(tmp_path / group / char / "x.png", solid(1, (4, 4)))
    ds = load_folder(tmp_path, mode="L")["train"]
    assert ds.classes == (
        "Greek/character01",
        "Greek/character02",
        "Latin/character01",
        "Latin/character02",
    )
    assert ds.images.shape == (4, 4, 4, 1)


def test_greyscale_and_resize(flat_folder):
    ds = load_folder(flat_folder, size=(3, 2), mode="L")["train"]
    assert ds.images.shape == (5, 3, 2, 1)


def test_mixed_sizes_without_size_name_the_file(flat_folder):
    odd = write_image(flat_folder / "dog" / "big.png", solid(0, (9, 9, 3)))
    with pytest.raises(DatasetError, match="size=") as info:
        load_folder(flat_folder)
    assert "big.png" in str(info.value)
    assert load_folder(flat_folder, size=(6, 5))["train"].images.shape[0] == 6
    odd.unlink()


def test_corrupt_image_raises_naming_file_or_is_skipped(flat_folder):
    bad = flat_folder / "cat" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_folder(flat_folder, workers=1)
    with pytest.warns(UserWarning, match="skipped 1 image"):
        ds = load_folder(flat_folder, on_error="skip")["train"]
    assert len(ds) == 5
    assert "broken.jpg" in ds.meta["skipped"][0]


def test_decompression_bomb_is_refused(flat_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 6x5 = 30 pixels is now a "bomb"
    with pytest.raises(DatasetError, match="decompression|exceeds|pixels"):
        load_folder(flat_folder, workers=1, use_cache=False)


def test_image_size_reads_the_header_without_decoding(tmp_path, monkeypatch):
    path = write_image(tmp_path / "wide.png", solid(7, shape=(6, 9, 3)))
    assert image_size(path) == (6, 9) == read_image(path).shape[:2]
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("pixels decoded"))
    assert image_size(path) == (6, 9)


@pytest.mark.parametrize("read", [image_size, read_image], ids=["image_size", "read_image"])
def test_single_image_readers_name_a_corrupt_or_bomb_file(tmp_path, monkeypatch, read):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        read(bad)
    big = write_image(tmp_path / "big.png", solid(1))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 30 pixels is over twice the limit
    with pytest.raises(DatasetError, match="big.png"):
        read(big)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "no class folders"),
        (lambda root: (root / "cat").mkdir(parents=True), "holds no images"),
        (lambda root: None, "not a folder"),
    ],
    ids=["empty-folder", "empty-class", "missing"],
)
def test_unusable_folders_say_what_is_wrong(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=message):
        load_folder(root)


@pytest.mark.parametrize(
    "option, value",
    [("mode", "CMYK"), ("on_error", "ignore"), ("size", (0, 4)), ("size", (1, 2, 3))],
)
def test_bad_options_name_the_argument(flat_folder, option, value):
    with pytest.raises(ValueError, match=option):
        load_folder(flat_folder, **{option: value})


def test_second_load_comes_from_cache_and_matches(flat_folder):
    first = load_folder(flat_folder)["train"]
    second = load_folder(flat_folder)["train"]
    assert "cached" not in first.meta and second.meta["cached"]
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.classes == second.classes


@pytest.mark.parametrize("change", ["modify", "add", "remove"])
def test_a_changed_folder_invalidates_the_cache(flat_folder, change):
    load_folder(flat_folder)
    target = flat_folder / "cat" / "0.png"
    if change == "modify":
        write_image(target, solid(77))
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    elif change == "add":
        write_image(flat_folder / "cat" / "9.png", solid(77))
    else:
        target.unlink()
    ds = load_folder(flat_folder)["train"]
    assert "cached" not in ds.meta
    assert len(ds) == {"modify": 5, "add": 6, "remove": 4}[change]
    if change != "remove":
        assert 77 in ds.images[:, 0, 0, 0]


def test_corrupt_cache_entry_is_rebuilt_not_trusted(flat_folder):
    expected = load_folder(flat_folder)["train"].images
    (entry,) = (cache.cache_dir() / "folders").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])  # truncate
    ds = load_folder(flat_folder)["train"]
    assert "cached" not in ds.meta
    np.testing.assert_array_equal(ds.images, expected)
    assert load_folder(flat_folder)["train"].meta["cached"]  # rewritten whole


def test_failed_load_leaves_no_cache_file(flat_folder):
    (flat_folder / "cat" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        load_folder(flat_folder)
    folders = cache.cache_dir() / "folders"
    assert not folders.exists() or not any(folders.iterdir())


def test_unwritable_cache_warns_but_loads(flat_folder, monkeypatch, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("IMGCLF_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not write the image cache"):
        assert len(load_folder(flat_folder)["train"]) == 5


def test_cache_key_depends_on_options(flat_folder):
    load_folder(flat_folder)
    assert "cached" not in load_folder(flat_folder, mode="L")["train"].meta


def test_plain_path_spec_detects_a_folder(flat_folder):
    assert load(str(flat_folder))["train"].classes == ("cat", "dog")
    assert load(f"folder:{flat_folder}", mode="L")["train"].images.shape[-1] == 1


@pytest.mark.slow
def test_shared_cifar10_jpeg_folder(cifar_splits):
    train, test = cifar_splits["train"], cifar_splits["test"]
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.classes == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert set(train.class_counts().values()) == {5000}
    assert set(test.class_counts().values()) == {1000}
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    assert 0 < train.images.mean() < 255  # real pixels, not a blank array
