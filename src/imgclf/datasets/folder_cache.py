"""The decoded-folder cache: one Zarr store per folder, load options and manifest.

An entry is ``$IMGCLF_CACHE/folders/<key>/<manifest>.zarr`` (:mod:`~imgclf.datasets.store`):
``<key>`` hashes the folder's absolute path and the load options, ``<manifest>``
the digest of every file's name, size and modification time. A changed folder
has another digest, so its entry is simply not found, and the new one replaces
the old when it is published.

The entry is written *while* the images are decoded, chunk by chunk
(:class:`Entry`), and published atomically once complete: an interrupted or
failed load leaves no entry. A set whose pixels exceed
:func:`~imgclf.datasets.store.in_memory_bytes` is never held in memory: its
Datasets' images are the entry's lazy :class:`~imgclf.datasets.store.StoredArray`.
Reading an entry checks it against the folder as listed now (splits, classes,
shapes, label range); any damage is a miss that is decoded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from imgclf.datasets._dataset import Dataset
from imgclf.datasets.cache import cache_dir
from imgclf.datasets.store import StoredArray, StoreWriter, in_memory_bytes, open_store
from imgclf.errors import DatasetError, FormatError

__all__ = ["Entry", "MemorySink", "entry_path", "read_entry"]

FORMAT = 2  # 1 was a single .npz-like file (cache.write_entry)
ATTRIBUTE = "imgclf_folder"


def entry_path(source: Path, options: dict, digest: str) -> Path:
    """The entry of folder ``source`` loaded with ``options``, with manifest ``digest``."""
    key = json.dumps([str(source.resolve()), options, FORMAT], sort_keys=True)
    folder = cache_dir() / "folders" / hashlib.sha256(key.encode()).hexdigest()[:32]
    return folder / f"{digest[:32]}.zarr"


class MemorySink:
    """Decoded images kept in one preallocated array, appended densely (skipped files leave
    no gap)."""

    def __init__(self, n: int, shape: tuple[int, ...]):
        self.out = np.empty((n, *shape), np.uint8)
        self.count = 0

    def append(self, rows: np.ndarray) -> None:
        self.out[self.count : self.count + len(rows)] = rows
        self.count += len(rows)

    @property
    def images(self) -> np.ndarray:
        return self.out[: self.count]


class Entry:
    """A cache entry being written as the splits are decoded.

    Parameters
    ----------
    path : Path
        From :func:`entry_path`.
    digest : str
        The folder's manifest digest.
    enabled : bool
        False: nothing is written (``use_cache=False``).
    """

    def __init__(self, path: Path, digest: str, *, enabled: bool = True):
        self.path, self.digest, self.enabled = path, digest, enabled
        self.writer, self.failed = None, None
        self.splits: dict[str, dict] = {}
        if enabled:
            try:
                self.writer = StoreWriter(path)
            except OSError as exc:
                self.failed = exc

    def sink(self, split: str, shape: tuple[int, ...]):
        """Where ``split``'s images go as they are decoded (None when not caching)."""
        if self.writer is None:
            return None
        try:
            return _Guarded(self, self.writer.array(f"{split}_images", shape, np.uint8))
        except OSError as exc:
            self.failed = exc
            return None

    def finish_split(self, split: str, labels: np.ndarray, classes, skipped: list[str]) -> None:
        """Record ``split``'s labels (after its images) and what it skipped."""
        self.splits[split] = {"classes": list(classes), "skipped": list(skipped)}
        if self.writer is not None and self.failed is None:
            try:
                self.writer.array(f"{split}_labels", (), np.int64).append(labels)
            except OSError as exc:
                self.failed = exc

    def publish(self) -> bool:
        """Move the complete entry into place and drop older ones; False if it failed."""
        if self.writer is None or self.failed is not None:
            self.discard()
            return False
        attributes = {ATTRIBUTE: {"format": FORMAT, "digest": self.digest, "splits": self.splits}}
        try:
            self.writer.publish(attributes)
        except OSError as exc:
            self.failed = exc
            self.discard()
            return False
        _remove_stale(self.path)
        return True

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()

    def __enter__(self) -> Entry:
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None and self.writer.folder.exists():
            self.writer.discard()  # an error before publish: no half-written entry
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # the folder's key, if it holds nothing else


class _Guarded:
    """A store array that records a write failure instead of failing the load."""

    def __init__(self, entry: Entry, array):
        self.entry, self.array = entry, array

    def append(self, rows: np.ndarray) -> None:
        if self.entry.failed is None:
            try:
                self.array.append(rows)
            except OSError as exc:
                self.entry.failed = exc


def _remove_stale(path: Path) -> None:
    """Entries of the same folder and options for other manifests, and the old format."""
    for other in path.parent.glob("*.zarr"):
        if other != path:
            shutil.rmtree(other, ignore_errors=True)
    old = path.parent.parent / f"{path.parent.name}.npz"
    old.unlink(missing_ok=True)


def read_entry(path: Path, digest: str, expected: dict, names: dict) -> dict[str, Dataset] | None:
    """The cached splits, or None (a miss) unless the entry matches the folder as listed now.

    Parameters
    ----------
    expected : dict of str to (classes, image shape, number of files)
        Per split, from the folder's listing and plan.
    names : dict of str to str
        Each split's Dataset name.

    Images up to :func:`in_memory_bytes` are read into memory; larger ones stay lazy.
    """
    if not (path / "zarr.json").is_file():
        return None
    try:
        attributes, arrays = open_store(path)
        info = attributes.get(ATTRIBUTE)
        if not _matches(info, digest, expected):
            return None
        splits = {}
        for split, (classes, shape, n_files) in expected.items():
            images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
            if not _consistent(images, labels, shape, n_files, len(classes)):
                return None
            labels = labels.read(0, len(labels))  # as many as the folder has files, at most
            if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
                return None
            pixels = images if images.nbytes > in_memory_bytes() else images.read(0, len(images))
            meta = {"skipped": info["splits"][split]["skipped"], "cached": True}
            splits[split] = Dataset(pixels, labels, classes, names[split], meta=meta)
        return splits
    except (FormatError, DatasetError, OSError, KeyError, TypeError, ValueError):
        return None  # the cache is only a shortcut: whatever is wrong, decode again


def _matches(info, digest: str, expected: dict) -> bool:
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("digest") != digest:
        return False
    splits = info.get("splits")
    if not isinstance(splits, dict) or list(splits) != list(expected):
        return False
    return all(
        isinstance(splits[s], dict)
        and splits[s].get("classes") == list(classes)
        and isinstance(splits[s].get("skipped"), list)
        and all(isinstance(m, str) for m in splits[s]["skipped"])
        for s, (classes, _, _) in expected.items()
    )


def _consistent(images, labels, shape, n_files: int, n_classes: int) -> bool:
    return (
        isinstance(images, StoredArray)
        and isinstance(labels, StoredArray)
        and images.dtype == np.uint8
        and images.shape[1:] == tuple(shape)
        and 0 < len(images) <= n_files
        and labels.dtype == np.int64
        and labels.shape == (len(images),)
        and n_classes > 0
    )


def warn_unwritten(entry: Entry, shown: str) -> None:
    """One warning when the entry could not be written (a full or read-only disk)."""
    if entry.enabled and entry.failed is not None:
        exc = entry.failed
        warnings.warn(
            f"could not write the image cache {shown}: {exc.strerror or exc}", stacklevel=4
        )
