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

Their sizes are known from the fixed layout, so no file is read past what
it can need: a batch of N rows (10,000 for CIFAR-10, 50,000 for CIFAR-100's
``train``) at most N x (3,072 + 256) bytes + 1 MiB -- the pixels, and
labels and a file name in pickle form (the official files use about 32
bytes a row) -- and a meta file 1 MiB. A larger file, or an archive member
declaring more, is refused before it is read; an archive is decompressed
as a stream that stops at the sum of these sizes plus 1 MiB (headers, the
readme), so a small archive cannot inflate to gigabytes.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.datasets._dataset import Dataset
from imgclf.datasets._safe_pickle import ROW_BUDGET_BYTES, safe_load
from imgclf.errors import DatasetError, FormatError

__all__ = ["detect_cifar", "load_cifar10", "load_cifar100"]

_SIDE = 32
_ROW_LENGTH = 3 * _SIDE * _SIDE
_MIB = 1 << 20
# Beyond the files' own budgets, what an archive may inflate to: tar headers,
# directories and the readme (a few KB in the official archives).
_ARCHIVE_EXTRA = _MIB
_MAX_MEMBERS = 1000
# A long name or pax header is read whole into memory by tarfile: a name needs far less.
_MAX_HEADER_BYTES = 1 << 16
_EXTENDED_HEADERS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
# Errors of a damaged archive or compressed stream, from tarfile and the decompressors.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


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
    rows: dict[str, int]  # images per batch file, in the official release

    @property
    def files(self) -> tuple[str, ...]:
        return (self.meta, *(name for names in self.splits.values() for name in names))

    def max_bytes(self, name: str) -> int:
        """The largest file ``name`` can need (see the module's docstring)."""
        return self.rows.get(name, 0) * ROW_BUDGET_BYTES + _MIB

    def describe_budget(self, name: str) -> str:
        rows = self.rows.get(name)
        if rows is None:
            return f"a {self.title} meta file needs at most {self.max_bytes(name):,}"
        return (
            f"a {self.title} batch of {rows:,} images needs at most {self.max_bytes(name):,} "
            f"({ROW_BUDGET_BYTES:,} a row + 1 MiB)"
        )


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
    rows={**{f"data_batch_{i}": 10_000 for i in range(1, 6)}, "test_batch": 10_000},
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
    rows={"train": 50_000, "test": 10_000},
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
            path, limit = self.folder / name, layout.max_bytes(name)
            _check_member_size(path.stat().st_size, self.describe(name), layout, name)
            with open(path, "rb") as f:
                objects[name] = safe_load(f, self.describe(name), limit)
        return objects


class _Archive:
    """Batches as members of the distributed ``.tar.gz``."""

    def __init__(self, archive: Path, folder: str) -> None:
        self.archive = archive
        self.folder = folder

    def describe(self, name: str) -> str:
        return f"{self.folder}/{name} in {self.archive}"

    def load(self, layout: _Layout) -> dict[str, object]:
        budget = sum(map(layout.max_bytes, layout.files)) + _ARCHIVE_EXTRA
        try:
            objects = self._read_members(layout, budget)
        except _ARCHIVE_ERRORS as exc:
            raise FormatError(f"{self.archive}: not a readable tar.gz archive ({exc})") from exc
        for name in layout.files:
            if name not in objects:
                raise DatasetError(f"{self.describe(name)}: missing; {_expected(layout)}")
        return objects

    def _read_members(self, layout: _Layout, budget: int) -> dict[str, object]:
        # One pass in archive order: a gzip stream cannot seek backwards
        # without decompressing again from the start.
        wanted = {f"{self.folder}/{name}": name for name in layout.files}
        objects = {}
        with _open_tar(self.archive, budget) as tar:
            for count, info in enumerate(tar, 1):
                if count > _MAX_MEMBERS:
                    raise FormatError(
                        f"{self.archive}: more than {_MAX_MEMBERS:,} members; a {layout.title} "
                        f"archive has {len(layout.files) + 2}"
                    )
                name = wanted.get(info.name.removeprefix("./"))
                if name and info.isfile():
                    # The header's size is checked before a byte is read, and
                    # read exactly: a lying header cannot make more come out.
                    _check_member_size(info.size, self.describe(name), layout, name)
                if info.offset_data + info.size > budget:
                    # Checked before tarfile skips it, block by block, even past the end.
                    raise FormatError(
                        f"{self.archive}: member {_text(info.name)[:100]!r} declares "
                        f"{info.size:,} bytes, past the {budget:,} its {layout.title} files "
                        f"can need; refused without reading it"
                    )
                if not (name and info.isfile()):
                    continue
                where = self.describe(name)
                member = tar.extractfile(info)
                # Read here, so a damaged archive is reported as such, not as a bad pickle.
                data = member.read(info.size) if member is not None else b""
                objects[name] = safe_load(io.BytesIO(data), where, layout.max_bytes(name))
        return objects


def _check_member_size(size: int, where: str, layout: _Layout, name: str) -> None:
    if size > layout.max_bytes(name):
        raise FormatError(
            f"{where}: {size:,} bytes, too large: {layout.describe_budget(name)}; "
            f"refused without reading it"
        )


class _BoundedStream(io.RawIOBase):
    """A decompressed stream that refuses to give more than ``limit`` bytes.

    tarfile reads headers (a pax header or GNU long name of any declared
    size) and skips members by reading; this stops all of it at the limit.
    """

    def __init__(self, stream: io.BufferedIOBase, limit: int, archive: Path) -> None:
        super().__init__()
        self.stream, self.limit, self.archive, self.total = stream, limit, archive, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.stream.readinto(buffer)
        self.total += n
        if self.total > self.limit:
            raise FormatError(
                f"{self.archive}: decompresses to more than {self.limit:,} bytes, more than "
                f"its CIFAR files can need; refused without reading the rest"
            )
        return n


def _decompressor(raw: io.BufferedReader) -> io.BufferedIOBase:
    """``raw`` decompressed as its first bytes say (gzip, bzip2, xz), or as it is."""
    magic = raw.peek(6)[:6]
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


class _CheckedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses a long name or pax header larger than _MAX_HEADER_BYTES."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADERS and self.size > _MAX_HEADER_BYTES:
            raise tarfile.ReadError(
                f"an extended header (long name or pax) of {self.size:,} bytes, "
                f"more than {_MAX_HEADER_BYTES:,}"
            )
        return super()._proc_member(tarfile_)


@contextlib.contextmanager
def _open_tar(path: Path, limit: int) -> Iterator[tarfile.TarFile]:
    """``tarfile`` over ``path`` as a stream, decompressed to at most ``limit`` bytes."""
    with open(path, "rb") as raw:
        stream = _BoundedStream(_decompressor(raw), limit, path)
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_CheckedTarInfo) as tar:
            yield tar


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
        # The first header only: a little more than a block, whatever it declares.
        with _open_tar(path, _MIB) as tar:
            first = tar.next()
    except (*_ARCHIVE_ERRORS, FormatError):
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
    if not sum(len(rows) for rows, _, _ in parsed):
        files = ", ".join(where for where, _ in batches)
        raise FormatError(f"{files}: no images in the {split} split, expected at least one")
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
    keys = sorted(_text(k)[:40] for k in list(batch)[:20])
    found = ", ".join(keys) + (f" and {len(batch) - 20:,} more" if len(batch) > 20 else "")
    raise FormatError(f"{where}: no {key.decode()!r} entry; the dict holds {found or 'nothing'}")


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
    raw = _field(batch, key, where)  # outside the try: its own error says what is missing
    if isinstance(raw, list | tuple):
        odd = next((v for v in raw if not isinstance(v, int | float | np.number)), None)
        if odd is not None:  # a nested list, a string: np.asarray would make anything of it
            raise FormatError(
                f"{where}: {what} holds {_describe(odd)}, expected a flat list of ints"
            )
    elif not isinstance(raw, np.ndarray):
        raise FormatError(f"{where}: {what} is {_describe(raw)}, expected a list of ints")
    labels = np.asarray(raw)
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
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    # Not str() of anything else: a 5,000-digit int or a deep tuple has no short text.
    return value if isinstance(value, str) else f"<{type(value).__name__}>"


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"
