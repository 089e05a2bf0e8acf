"""Listing an image folder's files and their manifest, fast enough for a warm load.

A warm load of CIFAR-10 (60,000 files) spends most of its time here, since each
file's size and modification time must be read to know the cache entry still
describes the folder (a file rewritten in place changes neither the listing nor its
folder's modification time). So each class folder is opened once and its files are
``stat``-ed relative to that open folder (``fstatat``: no path to build or resolve),
and the manifest is kept as arrays, ``(size, mtime_ns)`` per file, hashed as bytes
instead of one formatted line per file.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.errors import DatasetError

__all__ = ["Listing", "class_folders", "list_split", "manifest_digest", "shown", "subdirs"]

_FAILED = (-1, -1)  # the (size, mtime) of a file that cannot be stat'ed: decoding names it


def shown(path: str | os.PathLike) -> str:
    """``path`` as printable text on one line: undecodable bytes as ``\\xff``, control
    characters escaped, so that messages and one-line warnings stay one readable line."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class _ClassFolder:
    """One class's image files: their names (sorted by raw bytes) and ``(size, mtime_ns)``."""

    path: str
    names: list[str]
    stats: np.ndarray  # (n, 2) int64

    @property
    def files(self) -> list[str]:
        return [f"{self.path}{os.sep}{name}" for name in self.names]


@dataclass(frozen=True)
class Listing:
    """The image files of one split, grouped by class, in a fixed order.

    Attributes
    ----------
    root : str
        The split's folder.
    classes : tuple of str
        Class names, in label order.
    folders : tuple of _ClassFolder
        Each class's files, in the same order.
    """

    root: str
    classes: tuple[str, ...]
    folders: tuple[_ClassFolder, ...]

    def __len__(self) -> int:
        return sum(len(f.names) for f in self.folders)

    @functools.cached_property
    def files(self) -> list[str]:
        """Every file's path, class by class: built only when the images are decoded."""
        return [path for folder in self.folders for path in folder.files]

    @property
    def labels(self) -> np.ndarray:
        counts = [len(f.names) for f in self.folders]
        return np.repeat(np.arange(len(counts), dtype=np.int64), counts)

    def first_files(self):
        """The files in order, one at a time (to find the first readable header)."""
        for folder in self.folders:
            yield from folder.files

    def hash_into(self, digest, split: str) -> None:
        """Each file's relative name, size and mtime into ``digest`` (a hashlib object)."""
        for folder in self.folders:
            where = os.path.relpath(folder.path, self.root)
            # names hold no NUL or "/", so the count and NUL separators are unambiguous
            digest.update(
                f"{split}/{where}/{len(folder.names)}\n".encode("utf-8", "surrogateescape")
            )
            digest.update("\0".join(folder.names).encode("utf-8", "surrogateescape"))
            digest.update(folder.stats.tobytes())


def manifest_digest(listings: dict[str, Listing]) -> str:
    """SHA-256 over every split's files: relative names, sizes and modification times."""
    digest = hashlib.sha256(b"imgclf manifest 2\n")
    for split, listing in listings.items():
        listing.hash_into(digest, split)
    return digest.hexdigest()


# --- finding files -----------------------------------------------------------------------


def subdirs(folder: str | Path) -> list[os.DirEntry]:
    """Visible sub-folders of ``folder``, sorted by raw name."""
    with os.scandir(folder) as entries:
        found = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    return _by_raw_name(found)


def _by_raw_name(items: list, key=operator.attrgetter("name")) -> list:
    """Sorted by the names' bytes (``key=None``: the items are the names); ASCII names (the
    usual case) sort the same as text, without encoding each (a warm load lists 60,000
    CIFAR-10 files, and even ``key=str`` costs a call per name)."""
    if "".join(items if key is None else map(key, items)).isascii():
        return sorted(items, key=key)
    return sorted(items, key=lambda e: os.fsencode(e if key is None else key(e)))


def _scan_images(folder: str, endings: tuple[str, ...]) -> tuple[list[str], np.ndarray, bool]:
    """``(image names, (size, mtime_ns) per name, has sub-folders)`` of ``folder``.

    Image names have an image ending and are not folders: a FIFO, a device or a dangling
    link named ``x.png`` is listed (with ``-1`` stats), so that decoding refuses it by name
    instead of leaving it out without a word. Hidden names are left out.
    """
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        names = _by_raw_name(_image_names(os.listdir(fd), endings), key=None)
        infos = _stat_all(names, fd)
    finally:
        os.close(fd)
    modes = list(map(_MODE, filter(None, infos)))
    folders = sum(map(stat.S_ISDIR, modes))
    if folders or len(modes) < len(infos):  # rare: keep what is not a folder, mark failures
        kept = [(n, i) for n, i in zip(names, infos, strict=True) if not (i and _is_dir(i))]
        names, infos = [n for n, _ in kept], [i for _, i in kept]
    has_folders = folders > 0 or (not names and bool(subdirs(folder)))
    return names, _stats_array(infos), has_folders


_MODE, _SIZE, _MTIME = (operator.attrgetter(a) for a in ("st_mode", "st_size", "st_mtime_ns"))


def _is_dir(info: os.stat_result) -> bool:
    return stat.S_ISDIR(info.st_mode)


def _image_names(names: list[str], endings: tuple[str, ...]) -> list[str]:
    """The visible names with an image ending (any case).

    Filtered through the distinct endings (one per folder, usually), with C-level ``map``:
    a Python test per name costs as much as 60,000 ``stat`` calls save.
    """
    tail = operator.itemgetter(slice(-max(map(len, endings)), None))
    tails = set(map(tail, names))
    good = {t for t in tails if t.lower().endswith(endings)}
    if len(good) < len(tails):
        names = list(itertools.compress(names, map(good.__contains__, map(tail, names))))
    if "\0." in "\0" + "\0".join(names):  # a name starts with ".": names hold no NUL
        names = [n for n in names if not n.startswith(".")]
    return names


def _stat_all(names: list[str], fd: int) -> list[os.stat_result | None]:
    """Each name's stat relative to the open folder ``fd`` (None where it fails)."""
    stat_at = functools.partial(os.stat, dir_fd=fd)
    try:
        return list(map(stat_at, names))
    except OSError:  # a dangling link or a file removed meanwhile: one at a time
        return [_stat_or_none(stat_at, name) for name in names]


def _stat_or_none(stat_at, name: str) -> os.stat_result | None:
    try:
        return stat_at(name)
    except OSError:
        return None


def _stats_array(infos: list[os.stat_result | None]) -> np.ndarray:
    """``(n, 2)`` int64 of ``(size, mtime_ns)``; ``-1`` for a file that cannot be stat'ed."""
    if all(infos):
        sizes, mtimes = list(map(_SIZE, infos)), list(map(_MTIME, infos))
        return np.array([sizes, mtimes], dtype=np.int64).T.copy()
    rows = [_FAILED if i is None else (i.st_size, i.st_mtime_ns) for i in infos]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def class_folders(
    split_root: str | Path, endings: tuple[str, ...]
) -> list[tuple[str, _ClassFolder]]:
    """``(class name, its files)``; a folder of folders and no images is a group (Omniglot),
    whose sub-folders are its classes, named ``group/class``.

    Class names are shown text (:func:`shown`): a folder name that is not UTF-8 gives a
    name with ``\\xNN`` escapes, which JSON, reports and terminals all accept.
    """
    found = []
    for entry in subdirs(split_root):
        names, stats, has_folders = _scan_images(entry.path, endings)
        if names or not has_folders:
            found.append((shown(entry.name), _ClassFolder(entry.path, names, stats)))
            continue
        for inner in subdirs(entry.path):
            inner_names, inner_stats, _ = _scan_images(inner.path, endings)
            folder = _ClassFolder(inner.path, inner_names, inner_stats)
            found.append((f"{shown(entry.name)}/{shown(inner.name)}", folder))
    return found


def list_split(split_root: str | Path, endings: tuple[str, ...]) -> Listing:
    """The image files of the split at ``split_root``, with image ``endings`` (lower case).

    Raises
    ------
    DatasetError
        When there are no class folders, or a class folder holds no images.
    """
    found = class_folders(split_root, endings)
    if not found:
        raise DatasetError(
            f"{shown(split_root)}: no class folders found; "
            f"expected {shown(split_root)}/<class>/<image>"
        )
    for name, folder in found:
        if not folder.names:
            raise DatasetError(f"{shown(folder.path)}: class folder {name!r} holds no images")
    classes = tuple(name for name, _ in found)
    return Listing(os.fspath(split_root), classes, tuple(folder for _, folder in found))
