"""Chunked on-disk arrays in the Zarr v3 format: written incrementally, published atomically.

A store is a folder in the `Zarr v3 <https://zarr-specs.readthedocs.io/en/latest/v3/core/>`_
layout, so Zarr and Dask read it natively (``dask.array.from_zarr(path, component)``)::

    entry.zarr/zarr.json                 the group, with imgclf's attributes
    entry.zarr/train_images/zarr.json    an array: shape, dtype, chunk shape
    entry.zarr/train_images/c/0/0/0/0    chunk 0: rows 0..c-1, raw little-endian bytes
    entry.zarr/train_images/c/1/0/0/0    chunk 1 ...

Arrays are chunked along the first axis only (whole images per chunk, about
:data:`CHUNK_BYTES` each) and stored without compression (the ``bytes`` codec):
decoded pixels compress poorly, and raw chunks read at disk speed straight into
the destination array.

Writing. :class:`StoreWriter` builds the store in a temporary folder beside the
target, one chunk at a time as rows arrive (:meth:`ArrayWriter.append`), so a
dataset larger than memory never sits in memory whole. :meth:`StoreWriter.publish`
renames the finished folder into place (atomic on one filesystem); any failure
removes it, so a reader sees the whole store or none.

Reading. :func:`open_store` checks every metadata document (bounded size,
strict schema) and :class:`StoredArray` checks every chunk file's exact size
before reading it, so a damaged or forged store raises
:class:`~imgclf.errors.FormatError` naming the file, never allocates what the
files do not hold, and runs no code. A :class:`StoredArray` is also the *lazy*
array of a large :class:`~imgclf.datasets.Dataset`: rows are read when indexed,
in chunks.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgclf.errors import DatasetError, FormatError

__all__ = [
    "CHUNK_BYTES",
    "ArrayWriter",
    "StoreWriter",
    "StoredArray",
    "in_memory_bytes",
    "open_store",
]

CHUNK_BYTES = 16 * 2**20  # about this many bytes per chunk file
MAX_METADATA_BYTES = 16 * 2**20  # a zarr.json larger than this is not ours
IN_MEMORY_ENV = "IMGCLF_IN_MEMORY_BYTES"
DEFAULT_IN_MEMORY_BYTES = 2 * 2**30
# pixels, labels, and features computed chunk by chunk (datasets/transformed.py)
_DTYPES = {"uint8": np.dtype("u1"), "int64": np.dtype("<i8"), "float32": np.dtype("<f4")}
_MAX_DIMS = 8


def in_memory_bytes(limit: int | None = None) -> int:
    """Arrays up to this many bytes are read into memory; larger ones stay lazy on disk.

    ``limit``, else ``$IMGCLF_IN_MEMORY_BYTES``, else 2 GiB.
    """
    if limit is None:
        text = os.environ.get(IN_MEMORY_ENV, "").strip()
        if not text:
            return DEFAULT_IN_MEMORY_BYTES
        try:
            limit = int(text)
        except ValueError:
            raise ValueError(f"${IN_MEMORY_ENV} must be a number of bytes; got {text!r}") from None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"the in-memory limit must be a number of bytes >= 0; got {limit!r}")
    return limit


def chunk_rows_for(row_bytes: int) -> int:
    """Rows per chunk: about :data:`CHUNK_BYTES`, at least one."""
    return max(1, CHUNK_BYTES // max(1, row_bytes))


# --- writing ---------------------------------------------------------------------------------


class StoreWriter:
    """A store being written in a temporary folder; :meth:`publish` moves it into place.

    Parameters
    ----------
    target : path
        The store's final folder (``….zarr``); it must not exist when publishing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "s.zarr"
    >>> with StoreWriter(target) as store:
    ...     x = store.array("x", (2,), "uint8", chunk_rows=2)
    ...     x.append(np.arange(6, dtype=np.uint8).reshape(3, 2))
    ...     _ = store.publish({"note": "three rows"})
    >>> attributes, arrays = open_store(target)
    >>> attributes["note"], arrays["x"][1:].tolist()
    ('three rows', [[2, 3], [4, 5]])
    """

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(self.target)
        prefix = f".{self.target.name}.{os.getpid()}."
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".part", dir=self.target.parent))
        self.arrays: dict[str, ArrayWriter] = {}

    def array(self, name: str, row_shape, dtype, *, chunk_rows: int | None = None) -> ArrayWriter:
        """A new array ``name`` of rows shaped ``row_shape``, filled by ``append``."""
        if not name.isidentifier() or name in self.arrays:
            raise ValueError(f"array name {name!r} is not a new identifier")
        writer = ArrayWriter(self.folder / name, tuple(row_shape), np.dtype(dtype), chunk_rows)
        self.arrays[name] = writer
        return writer

    def publish(self, attributes: dict) -> Path:
        """Close every array, write the group with ``attributes`` and move it into place.

        A store already at the target (a damaged one, or another process's) is
        moved aside first and removed after: a reader sees one whole store or none.
        """
        for writer in self.arrays.values():
            writer.close()
        _write_json(self.folder / "zarr.json", _group(attributes))
        _fsync_tree(self.folder)
        try:
            os.rename(self.folder, self.target)
        except OSError:
            if not self.target.is_dir():
                raise
            aside = Path(f"{self.folder}.old")
            os.rename(self.target, aside)
            os.rename(self.folder, self.target)
            shutil.rmtree(aside, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.folder.exists():  # not published: an error, or publish was never called
            self.discard()


class ArrayWriter:
    """One array of a store, written chunk by chunk as rows are appended."""

    def __init__(self, folder: Path, row_shape: tuple, dtype: np.dtype, chunk_rows: int | None):
        if dtype.name not in _DTYPES:
            raise ValueError(f"stores hold {sorted(_DTYPES)}; got {dtype}")
        self.folder, self.row_shape, self.dtype = folder, row_shape, dtype
        self.chunk_rows = chunk_rows or chunk_rows_for(math.prod(row_shape) * dtype.itemsize)
        self.buffer = np.zeros((self.chunk_rows, *row_shape), dtype)
        self.filled = self.chunks = self.rows = 0
        folder.mkdir()

    def append(self, rows: np.ndarray) -> None:
        """Add ``rows`` ``(m, *row_shape)``; every full chunk goes to disk at once."""
        rows = np.asarray(rows)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} for an array of {self.row_shape}")
        start = 0
        while start < len(rows):
            take = min(len(rows) - start, self.chunk_rows - self.filled)
            self.buffer[self.filled : self.filled + take] = rows[start : start + take]
            self.filled += take
            start += take
            if self.filled == self.chunk_rows:
                self._flush()

    def _flush(self) -> None:
        path = self.folder / _chunk_key(self.chunks, len(self.row_shape))
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.filled < self.chunk_rows:  # the last chunk: Zarr stores it whole, zero-padded
            self.buffer[self.filled :] = 0
        with open(path, "wb") as out:
            out.write(self.buffer.astype(self.dtype.newbyteorder("<"), copy=False).tobytes())
        self.rows += self.filled
        self.chunks += 1
        self.filled = 0

    def close(self) -> None:
        """Write the last, partial chunk and the array's metadata."""
        if self.filled:
            self._flush()
        shape = [self.rows, *self.row_shape]
        _write_json(self.folder / "zarr.json", _array_metadata(shape, self.dtype, self.chunk_rows))


def _chunk_key(index: int, row_dims: int) -> str:
    return "/".join(["c", str(index), *["0"] * row_dims])


def _group(attributes: dict) -> dict:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def _array_metadata(shape: list[int], dtype: np.dtype, chunk_rows: int) -> dict:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype.name,
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": [chunk_rows, *shape[1:]]},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
    }


def _write_json(path: Path, document: dict) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out)


def _fsync_tree(folder: Path) -> None:
    """Flush the store's files before it is published: a crash leaves it whole or absent."""
    for path in [*folder.rglob("*"), folder]:
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _remove_orphans(target: Path) -> None:
    """Temporary folders of ``target`` left by processes that no longer run."""
    from imgclf._atomic import _running, glob_escape

    for part in target.parent.glob(f".{glob_escape(target.name)}.*.part*"):
        pid = part.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(part, ignore_errors=True)


# --- reading ---------------------------------------------------------------------------------


def open_store(path: str | os.PathLike) -> tuple[dict, dict[str, StoredArray]]:
    """The group attributes and arrays of the store at ``path``.

    Raises
    ------
    FormatError
        Naming the file: missing, too large, not JSON, or not a store imgclf writes.
    """
    root = Path(path)
    group = _read_json(root / "zarr.json")
    if group.get("zarr_format") != 3 or group.get("node_type") != "group":
        raise FormatError(f"{root / 'zarr.json'}: not a Zarr v3 group")
    attributes = group.get("attributes", {})
    if not isinstance(attributes, dict):
        raise FormatError(f"{root / 'zarr.json'}: attributes must be an object")
    try:
        names = sorted(p.name for p in root.iterdir() if (p / "zarr.json").is_file())
    except OSError as exc:
        raise FormatError(f"{root}: cannot list the store ({exc.strerror})") from None
    return attributes, {name: StoredArray(root / name) for name in names}


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_METADATA_BYTES:
                raise FormatError(f"{path}: {size:,} bytes of metadata, over the limit")
            document = json.loads(f.read(MAX_METADATA_BYTES))
    except FormatError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        raise FormatError(f"{path}: cannot read the store's metadata ({exc})") from None
    if not isinstance(document, dict):
        raise FormatError(f"{path}: the metadata is not a JSON object")
    return document


class StoredArray:
    """An array of a store, read on demand: a lazy ``(n, ...)`` array.

    Indexing reads only the chunks it needs (``a[i]``, ``a[lo:hi]``, ``a[rows]``);
    ``np.asarray(a)`` reads all of it, and is refused for an array larger than
    :func:`in_memory_bytes` (a NumPy copy would not fit: read it in chunks instead,
    :meth:`chunks`). Pickles as its path, so a Dask worker can read its own rows.

    Parameters
    ----------
    folder : path
        The array's folder (holding its ``zarr.json``).
    flat : bool, default=False
        Present rows as flat vectors, shape ``(n, prod(row_shape))``.
    """

    lazy = True  # Dataset keeps a lazy array as it is

    def __init__(self, folder: str | os.PathLike, *, flat: bool = False):
        self.folder = Path(folder)
        meta_path = self.folder / "zarr.json"
        shape, dtype, chunk_rows = _checked_array(_read_json(meta_path), meta_path)
        self.stored_shape, self.dtype, self.chunk_rows = shape, dtype, chunk_rows
        self.flat = flat

    # --- what it looks like ------------------------------------------------------------------

    @property
    def row_shape(self) -> tuple[int, ...]:
        rows = self.stored_shape[1:]
        return (math.prod(rows),) if self.flat else rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.stored_shape[0], *self.row_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def row_bytes(self) -> int:
        return math.prod(self.row_shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.stored_shape[0]

    def __repr__(self) -> str:
        return f"StoredArray({str(self.folder)!r}, shape={self.shape}, dtype={self.dtype})"

    def reshape_rows(self) -> StoredArray:
        """The same rows as flat vectors ``(n, d)``, without reading anything."""
        view = StoredArray.__new__(StoredArray)
        view.__dict__.update(self.__dict__)
        view.flat = True
        return view

    # --- reading -------------------------------------------------------------------------

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi`` as a new NumPy array (chunk files read straight into it)."""
        n = len(self)
        lo, hi = max(0, min(lo, n)), max(0, min(hi, n))
        row_bytes = math.prod(self.stored_shape[1:]) * self.dtype.itemsize
        chunk_bytes = self.chunk_rows * row_bytes
        if hi > lo:  # the last chunk first: a forged shape fails before the allocation
            self._check_chunk((hi - 1) // self.chunk_rows, chunk_bytes)
        out = np.empty((max(0, hi - lo), *self.stored_shape[1:]), self.dtype)
        for chunk in range(lo // self.chunk_rows, -(-hi // self.chunk_rows)):
            first = chunk * self.chunk_rows
            a, b = max(lo, first), min(hi, first + self.chunk_rows)
            self._read_chunk(chunk, chunk_bytes, (a - first) * row_bytes, out[a - lo : b - lo])
        return out.reshape(len(out), *self.row_shape)

    def _check_chunk(self, chunk: int, chunk_bytes: int) -> None:
        path = self.folder / _chunk_key(chunk, len(self.stored_shape) - 1)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise FormatError(f"{path}: a chunk of the store is missing") from None
        except OSError as exc:
            raise FormatError(f"{path}: cannot read the chunk ({exc.strerror})") from None
        if size != chunk_bytes:
            raise FormatError(
                f"{path}: {size:,} bytes, but a chunk of this array holds {chunk_bytes:,}"
            )

    def _read_chunk(self, chunk: int, chunk_bytes: int, offset: int, dest: np.ndarray) -> None:
        """Rows of chunk ``chunk`` from byte ``offset`` into ``dest``, after checking the file
        holds exactly one chunk's bytes."""
        path = self.folder / _chunk_key(chunk, len(self.stored_shape) - 1)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if size != chunk_bytes:
                    raise FormatError(
                        f"{path}: {size:,} bytes, but a chunk of this array holds {chunk_bytes:,}"
                    )
                f.seek(offset)
                view = memoryview(dest.reshape(-1).view(np.uint8))
                while len(view):
                    got = f.readinto(view)
                    if not got:
                        raise FormatError(f"{path}: the chunk ended early")
                    view = view[got:]
        except FileNotFoundError:
            raise FormatError(f"{path}: a chunk of the store is missing") from None
        except OSError as exc:
            raise FormatError(f"{path}: cannot read the chunk ({exc.strerror})") from None
        if self.dtype.byteorder == ">":  # pragma: no cover - stores are little-endian
            dest.byteswap(inplace=True)

    def chunks(self, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, block)`` over the whole array, ``rows`` rows at a time (default: a chunk)."""
        step = rows or self.chunk_rows
        for lo in range(0, len(self), step):
            yield lo, self.read(lo, lo + step)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            first, rest = key[0], key[1:]
            return self[first][(slice(None), *rest) if not _is_int(first) else rest]
        if _is_int(key):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} of an array of {len(self)} rows")
            return self.read(i, i + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.read(start, stop)
            return self.take(np.arange(start, stop, step))
        return self.take(key)

    def take(self, rows) -> np.ndarray:
        """Rows ``rows`` (indices or a boolean mask), in that order; each chunk read once."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise IndexError(f"a mask of {rows.shape} for an array of {len(self)} rows")
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64).reshape(-1)
        rows = np.where(rows < 0, rows + len(self), rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for an array of {len(self)} rows")
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        order = np.argsort(rows, kind="stable")
        chunk_of = rows[order] // self.chunk_rows
        bounds = np.flatnonzero(np.diff(chunk_of, prepend=-1, append=-2))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            chunk = int(chunk_of[a])
            block = self.read(chunk * self.chunk_rows, (chunk + 1) * self.chunk_rows)
            out[order[a:b]] = block[rows[order[a:b]] - chunk * self.chunk_rows]
        return out

    def __call__(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi``: what a Dask worker reading its shard calls."""
        return self.read(lo, hi)

    def __array__(self, dtype=None, copy=None):
        limit = in_memory_bytes()
        if self.nbytes > limit:
            raise DatasetError(
                f"{self.folder}: {self.nbytes:,} bytes on disk, more than the in-memory limit "
                f"of {limit:,} (${IN_MEMORY_ENV}); read it in chunks (StoredArray.chunks), "
                "search it with imgclf.neighbors.StreamedIndex or ShardedIndex (--scheduler), or "
                "raise the limit"
            )
        array = self.read(0, len(self))
        return array if dtype is None else array.astype(dtype, copy=False)

    def shard_reader(self) -> StoredArray:
        """A picklable reader of flat rows (``reader(lo, hi)``), for workers reading shards."""
        return self.reshape_rows()

    def __getstate__(self) -> dict:
        return dict(self.__dict__)


def _is_int(key) -> bool:
    return isinstance(key, int | np.integer) and not isinstance(key, bool)


def _checked_array(meta: dict, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and chunk rows of an array's metadata, or a FormatError saying what is
    not a store imgclf writes (Zarr v3, uint8, int64 or float32, chunked by rows, raw bytes)."""

    def wrong(what: str) -> FormatError:
        return FormatError(f"{path}: {what}")

    if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        raise wrong("not a Zarr v3 array")
    dtype = _DTYPES.get(meta.get("data_type"))
    if dtype is None:
        raise wrong(f"data_type {meta.get('data_type')!r:.40}, not one of {sorted(_DTYPES)}")
    shape = meta.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= _MAX_DIMS
        or not all(type(s) is int and 0 <= s < 2**48 for s in shape)
    ):
        raise wrong(f"shape {shape!r:.80} is not a list of sizes")
    grid = meta.get("chunk_grid")
    chunk = grid.get("configuration", {}).get("chunk_shape") if isinstance(grid, dict) else None
    if (
        not isinstance(grid, dict)
        or grid.get("name") != "regular"
        or not isinstance(chunk, list)
        or len(chunk) != len(shape)
        or not all(type(c) is int for c in chunk)
        or chunk[1:] != shape[1:]
        or not 1 <= chunk[0] <= 2**31
        or math.prod(chunk) * dtype.itemsize > 2**31
    ):
        raise wrong(f"chunk grid {grid!r:.120} is not chunks of whole rows")
    if meta.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}}:
        raise wrong("chunk keys are not Zarr's default c/0/0 encoding")
    codecs = meta.get("codecs")
    if codecs != [{"name": "bytes", "configuration": {"endian": "little"}}] and codecs != [
        {"name": "bytes"}
    ]:
        raise wrong(f"codecs {codecs!r:.120}: only uncompressed little-endian bytes are read")
    return tuple(shape), dtype, chunk[0]
