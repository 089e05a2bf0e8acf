"""The folder listing behind a warm load: the files it takes, their order, and a manifest
that changes whenever a file's name, size or modification time does."""

from __future__ import annotations

import os

import numpy as np
import pytest

from imgclf.datasets._listing import list_split, manifest_digest
from imgclf.errors import DatasetError

ENDINGS = (".png", ".jpg", ".jpeg")


@pytest.fixture
def split(tmp_path):
    for label in ("ant", "bee"):
        (tmp_path / label).mkdir()
        for name in ("b.png", "a.PNG", "c.jpeg", "z.txt", ".hidden.png", "d.Jpg"):
            (tmp_path / label / name).write_bytes(b"x" * len(name))
    return tmp_path


def reference(split_root, label: str) -> tuple[list[str], np.ndarray]:
    """Plain os.scandir + os.stat: visible files with an image ending, by raw name."""
    folder = split_root / label
    names = sorted(
        (e.name for e in os.scandir(folder) if e.name.lower().endswith(ENDINGS)),
        key=os.fsencode,
    )
    names = [n for n in names if not n.startswith(".") and not (folder / n).is_dir()]
    stats = [(os.stat(folder / n).st_size, os.stat(folder / n).st_mtime_ns) for n in names]
    return names, np.array(stats, dtype=np.int64).reshape(-1, 2)


def test_the_listing_matches_a_plain_scan(split):
    listing = list_split(split, ENDINGS)
    assert listing.classes == ("ant", "bee")
    for label, folder in zip(listing.classes, listing.folders, strict=True):
        names, stats = reference(split, label)
        assert folder.names == names == ["a.PNG", "b.png", "c.jpeg", "d.Jpg"]
        np.testing.assert_array_equal(folder.stats, stats)
    assert listing.files[0] == os.path.join(split, "ant", "a.PNG")
    np.testing.assert_array_equal(listing.labels, [0] * 4 + [1] * 4)
    assert len(listing) == 8 and list(listing.first_files()) == listing.files


def test_folders_and_dangling_links_named_like_images(split):
    (split / "ant" / "inner.png").mkdir()
    os.symlink(split / "missing.png", split / "ant" / "e.png")
    folder = list_split(split, ENDINGS).folders[0]
    assert "inner.png" not in folder.names  # a folder is not an image
    assert folder.names[-1] == "e.png"  # listed, so that decoding names it
    np.testing.assert_array_equal(folder.stats[-1], [-1, -1])


def test_a_folder_of_folders_is_a_group_and_an_empty_class_is_named(tmp_path):
    for cls in ("alpha/one", "alpha/two"):
        (tmp_path / cls).mkdir(parents=True)
        (tmp_path / cls / "0.png").write_bytes(b"x")
    assert list_split(tmp_path, ENDINGS).classes == ("alpha/one", "alpha/two")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="class folder 'empty' holds no images"):
        list_split(tmp_path, ENDINGS)


@pytest.mark.parametrize("change", ["size", "mtime", "rename", "add", "remove", "move"])
def test_every_change_changes_the_digest(split, change):
    before = manifest_digest({"train": list_split(split, ENDINGS)})
    target = split / "ant" / "b.png"
    info = target.stat()
    if change == "size":  # rewritten in place, the old modification time put back
        target.write_bytes(b"longer contents")
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    elif change == "mtime":
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    elif change == "rename":
        target.rename(split / "ant" / "bb.png")
    elif change == "add":
        (split / "ant" / "e.png").write_bytes(b"x")
    elif change == "remove":
        target.unlink()
    else:  # the same file under another class: same names and stats, another label
        os.rename(target, split / "bee" / "e.png")
        os.rename(split / "bee" / "b.png", split / "ant" / "b.png")
    assert manifest_digest({"train": list_split(split, ENDINGS)}) != before


def test_the_digest_is_stable_and_depends_on_the_split_name(split):
    listing = list_split(split, ENDINGS)
    assert manifest_digest({"train": listing}) == manifest_digest(
        {"train": list_split(split, ENDINGS)}
    )
    assert manifest_digest({"train": listing}) != manifest_digest({"test": listing})
