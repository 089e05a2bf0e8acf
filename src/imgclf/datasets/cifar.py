"""CIFAR-10 and CIFAR-100 in the official "python version" format.

Each split is one or more pickled batches: a dict whose ``b"data"`` is a uint8
array ``(N, 3072)`` -- per image the red plane (32 rows of 32), then green,
then blue -- and whose labels are a list of ints. A ``meta`` pickle holds the
class names. The files may be in their folder (``cifar-10-batches-py``,
``cifar-100-python``) or still in the ``.tar.gz`` as distributed, which is
read member by member without extracting anything.

The pickles are untrusted: they go through
:func:`~imgclf.datasets._safe_pickle.safe_load`, which refuses any global
beyond what NumPy arrays need, and every field is checked before use.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.datasets._dataset import Dataset
from imgclf.datasets._safe_pickle import safe_load
from imgclf.errors import DatasetError, FormatError

__all__ = ["detect_cifar", "load_cifar10", "load_cifar100"]

_SIDE = 32
_ROW_LENGTH = 3 * _SIDE * _SIDE


@dataclass(frozen=True)
class _Layout:
    """Where one CIFAR variant keeps its files and what its dicts are called."""

    kind: str
    title: str
    folder: str
    archive: str
    splits: dict[str, tuple[str, ...]]
    meta: str
    label_key: bytes
    names_key: bytes
    coarse: bool  # CIFAR-100 also labels each image with one of 20 superclasses

    @property
    def files(self) -> tuple[str, ...]:
        return (self.meta, *(name for names in self.splits.values() for name in names))


_CIFAR10 = _Layout(
    kind="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    meta="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
    coarse=False,
)
_CIFAR100 = _Layout(
    kind="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    splits={"train": ("train",), "test": ("test",)},
    meta="meta",
    label_key=b"fine_labels",
    names_key=b"fine_label_names",
    coarse=True,
)
_LAYOUTS = (_CIFAR10, _CIFAR100)


def load_cifar10(path: str | os.PathLike) -> dict[str, Dataset]:
    """Load CIFAR-10: 50,000 training and 10,000 test images in 10 classes.

    Parameters
    ----------
    path : path
        The ``cifar-10-batches-py`` folder, the folder holding it (or holding
        ``cifar-10-python.tar.gz``), or the ``.tar.gz`` archive itself.

    Returns
    -------
    dict of str to Dataset
        ``"train"`` and ``"test"``. Images are uint8 ``(N, 32, 32, 3)``,
        C-contiguous, RGB; labels int64 ``(N,)``; ``classes`` the 10 names.

    Raises
    ------
    DatasetError
        No CIFAR-10 data at ``path``, or a batch file is missing.
    FormatError
        A file is corrupt or its contents have the wrong shape or range.
    UnsafePickleError
        A pickle asks for code outside the allow-list; nothing was run.
    """
    return _load(Path(path), _CIFAR10)


def load_cifar100(path: str | os.PathLike) -> dict[str, Dataset]:
    """Load CIFAR-100: 50,000 training and 10,000 test images in 100 classes.

    Parameters
    ----------
    path : path
        The ``cifar-100-python`` folder, the folder holding it (or holding
        ``cifar-100-python.tar.gz``), or the ``.tar.gz`` archive itself.

    Returns
    -------
    dict of str to Dataset
        ``"train"`` and ``"test"``. Images are uint8 ``(N, 32, 32, 3)``,
        C-contiguous, RGB; ``labels`` int64 ``(N,)`` are the 100 fine classes,
        ``coarse_labels`` int64 ``(N,)`` the 20 superclasses
        (``coarse_classes``).

    Raises
    ------
    DatasetError
        No CIFAR-100 data at ``path``, or one of its files is missing.
    FormatError
        A file is corrupt or its contents have the wrong shape or range.
    UnsafePickleError
        A pickle asks for code outside the allow-list; nothing was run.
    """
    return _load(Path(path), _CIFAR100)


def detect_cifar(path: str | os.PathLike) -> str | None:
    """Tell which CIFAR variant is at ``path``, reading names only.

    Parameters
    ----------
    path : path
        A folder or a ``.tar.gz`` archive.

    Returns
    -------
    {"cifar10", "cifar100"} or None
        None when ``path`` holds neither. Folders are judged by their file
        names; an archive by the name of its first member, so the archive is
        not decompressed past its first block.
    """
    path = Path(path)
    if path.is_file():
        top = _archive_top(path)
        return next((lay.kind for lay in _LAYOUTS if lay.folder == top), None)
    return next((lay.kind for lay in _LAYOUTS if _folder_has(path, lay)), None)


# --- where the files are ------------------------------------------------------


class _Folder:
    """Batches as files in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self, name: str) -> str:
        return str(self.folder / name)

    def load(self, layout: _Layout) -> dict[str, object]:
        # Check every file first: a missing one is reported at once, not
        # after seconds of unpickling the others.
        for name in layout.files:
            if not (self.folder / name).is_file():
                raise DatasetError(f"{self.describe(name)}: missing; {_expected(layout)}")
        objects = {}
        for name in layout.files:
            with open(self.folder / name, "rb") as f:
                objects[name] = safe_load(f, self.describe(name))
        return objects


class _Archive:
    """Batches as members of the distributed ``.tar.gz``."""

    def __init__(self, archive: Path, folder: str) -> None:
        self.archive = archive
        self.folder = folder

    def describe(self, name: str) -> str:
        return f"{self.folder}/{name} in {self.archive}"

    def load(self, layout: _Layout) -> dict[str, object]:
        try:
            objects = self._read_members(layout.files)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise FormatError(f"{self.archive}: not a readable tar.gz archive ({exc})") from exc
        for name in layout.files:
            if name not in objects:
                raise DatasetError(f"{self.describe(name)}: missing; {_expected(layout)}")
        return objects

    def _read_members(self, names: tuple[str, ...]) -> dict[str, object]:
        # One pass in archive order: a gzip stream cannot seek backwards
        # without decompressing again from the start.
        wanted = {f"{self.folder}/{name}": name for name in names}
        objects = {}
        with tarfile.open(self.archive, "r:*") as tar:
            for info in tar:
                name = wanted.get(info.name.removeprefix("./"))
                member = tar.extractfile(info) if name and info.isfile() else None
                if member is not None:
                    # Read here, so a damaged archive is reported as such, not as a bad pickle.
                    data = member.read()
                    objects[name] = safe_load(io.BytesIO(data), self.describe(name))
        return objects


def _locate(path: Path, layout: _Layout) -> _Folder | _Archive:
    if path.is_file():
        return _Archive(path, layout.folder)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    if path.name == layout.folder or _holds_files(path, layout):
        return _Folder(path)
    if (path / layout.folder).is_dir():
        return _Folder(path / layout.folder)
    if (path / layout.archive).is_file():
        return _Archive(path / layout.archive, layout.folder)
    raise DatasetError(
        f"{path}: no {layout.title} data found; expected the {layout.folder} folder, "
        f"a folder holding it, or {layout.archive}"
    )


def _folder_has(path: Path, layout: _Layout) -> bool:
    """Whether folder ``path`` is, holds, or holds the archive of, ``layout``'s data."""
    # CIFAR-100's names (meta, train, test) are common words, so the folder
    # itself must have the meta file and a batch file to count, not just one.
    meta, *batches = [(path / name).is_file() for name in layout.files]
    return (
        (meta and any(batches))
        or (path.name == layout.folder and path.is_dir())
        or _holds_files(path / layout.folder, layout)
        or (path / layout.archive).is_file()
    )


def _holds_files(folder: Path, layout: _Layout) -> bool:
    """Whether ``folder`` has any of the files of ``layout``."""
    return any((folder / name).is_file() for name in layout.files)


def _archive_top(path: Path) -> str | None:
    """First path component of the first member of archive ``path``, if it is one."""
    try:
        with tarfile.open(path, "r:*") as tar:
            first = tar.next()
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        return None
    return None if first is None else first.name.removeprefix("./").split("/")[0]


def _expected(layout: _Layout) -> str:
    return f"a {layout.title} folder holds {', '.join(layout.files)}"


# --- what the files hold ------------------------------------------------------


def _load(path: Path, layout: _Layout) -> dict[str, Dataset]:
    source = _locate(path, layout)
    objects = source.load(layout)
    meta_name = source.describe(layout.meta)
    meta = _as_dict(objects[layout.meta], meta_name)
    classes = _names(meta, layout.names_key, meta_name)
    coarse = _names(meta, b"coarse_label_names", meta_name) if layout.coarse else None
    return {
        split: _split(
            [(source.describe(name), objects.pop(name)) for name in names],
            layout,
            classes,
            coarse,
            name=f"{layout.kind}:{path}",
            split=split,
        )
        for split, names in layout.splits.items()
    }


def _split(
    batches: list[tuple[str, object]],
    layout: _Layout,
    classes: tuple[str, ...],
    coarse_classes: tuple[str, ...] | None,
    *,
    name: str,
    split: str,
) -> Dataset:
    """One Dataset from the batches of a split, given as ``(file name, contents)``."""
    parsed = [_batch(obj, where, layout, classes, coarse_classes) for where, obj in batches]
    images = _channels_last([rows for rows, _, _ in parsed])
    labels = np.concatenate([labels for _, labels, _ in parsed])
    coarse = None if coarse_classes is None else np.concatenate([c for _, _, c in parsed])
    return Dataset(images, labels, classes, name, coarse, coarse_classes, meta={"split": split})


def _channels_last(batches: list[np.ndarray]) -> np.ndarray:
    """Images uint8 ``(N, 32, 32, 3)`` from the ``(n, 3072)`` channel-major rows of each batch."""
    images = np.empty((sum(map(len, batches)), _SIDE, _SIDE, 3), np.uint8)
    start = 0
    for rows in batches:
        planes = rows.reshape(-1, 3, _SIDE, _SIDE)
        # A plane at a time reads memory in order: several times faster than
        # copying a 4-D transpose, and no concatenated copy of the rows.
        for channel in range(3):
            images[start : start + len(rows), :, :, channel] = planes[:, channel]
        start += len(rows)
    return images


def _batch(
    obj: object,
    where: str,
    layout: _Layout,
    classes: tuple[str, ...],
    coarse_classes: tuple[str, ...] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Checked ``(rows (N, 3072), labels (N,), coarse labels (N,) or None)`` of one batch."""
    batch = _as_dict(obj, where)
    rows = _rows(_field(batch, b"data", where), where)
    labels = _labels(batch, layout.label_key, len(rows), len(classes), where)
    if coarse_classes is None:
        return rows, labels, None
    return rows, labels, _labels(batch, b"coarse_labels", len(rows), len(coarse_classes), where)


def _as_dict(obj: object, where: str) -> dict:
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: holds {_describe(obj)}, expected a dict")
    return obj


def _field(batch: dict, key: bytes, where: str) -> object:
    # The official files have bytes keys; a batch re-saved from Python 3 may
    # have str keys, which mean the same.
    for candidate in (key, key.decode()):
        if candidate in batch:
            return batch[candidate]
    found = ", ".join(sorted(_text(k) for k in batch)) or "nothing"
    raise FormatError(f"{where}: no {key.decode()!r} entry; the dict holds {found}")


def _rows(data: object, where: str) -> np.ndarray:
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _ROW_LENGTH
    ):
        raise FormatError(
            f"{where}: data is {_describe(data)}, expected a uint8 array of shape "
            f"(N, {_ROW_LENGTH}): red, green and blue planes of {_SIDE}x{_SIDE} per row"
        )
    return data


def _labels(batch: dict, key: bytes, n: int, n_classes: int, where: str) -> np.ndarray:
    """Labels under ``key`` as int64 ``(n,)``, each in ``[0, n_classes)``."""
    what = key.decode()
    try:
        labels = np.asarray(_field(batch, key, where))
    except ValueError as exc:  # a ragged nested list
        raise FormatError(f"{where}: {what} is not a flat list of ints ({exc})") from exc
    if labels.shape != (n,):
        found = f"{labels.size} {what}" if labels.ndim == 1 else f"{what} of shape {labels.shape}"
        raise FormatError(f"{where}: {n} images but {found}, expected one per image")
    if n and labels.dtype.kind not in "iu":
        raise FormatError(f"{where}: {what} are {labels.dtype}, expected integers")
    outside = labels[(labels < 0) | (labels >= n_classes)] if n else labels
    if outside.size:
        raise FormatError(
            f"{where}: {what} must lie in [0, {n_classes}) for {n_classes} class names, "
            f"found {outside[0]}"
        )
    return labels.astype(np.int64)


def _names(meta: dict, key: bytes, where: str) -> tuple[str, ...]:
    names = _field(meta, key, where)
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise FormatError(
            f"{where}: {key.decode()} is {_describe(names)}, expected a list of names"
        )
    return tuple(_text(n) for n in names)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"
