"""RowSubset: some rows of a lazy array, as a lazy array (a fold, or a subset, on disk).

``X[train]`` of an in-memory array is a copy; of a lazy array larger than memory
it cannot be. A :class:`RowSubset` is that copy unmade: the same rows, in the same
order, read from the source when they are asked for, so a fold's training rows
can be given to anything that trains on a lazy array (out-of-core epochs read it
a window at a time).

Examples
--------
>>> import tempfile, pathlib
>>> from imgclf.datasets.store import StoreWriter, open_store
>>> with StoreWriter(pathlib.Path(tempfile.mkdtemp()) / "s.zarr") as store:
...     store.array("x", (2,), "uint8").append(np.arange(12, dtype=np.uint8).reshape(6, 2))
...     source = open_store(store.publish({}))[1]["x"]
>>> fold = RowSubset(source, [4, 1, 5])
>>> fold.shape, fold[1:].tolist()
((3, 2), [[2, 3], [10, 11]])
"""

from __future__ import annotations

import math

import numpy as np

from imgclf.datasets._lazy_rows import LazyRows

__all__ = ["RowSubset"]


class RowSubset(LazyRows):
    """Rows ``rows`` of the lazy array ``source``, in that order, read on demand.

    Parameters
    ----------
    source : lazy array, shape (n, ...)
        E.g. a :class:`~imgclf.datasets.store.StoredArray` of images ``(n, H, W, C)``
        (a subset of a lazy :class:`~imgclf.datasets.Dataset`) or of flat rows.
    rows : array of int, shape (m,)
        Indices into ``source`` (any order).

    Attributes
    ----------
    shape : tuple (m, ...)
        The source's rows: images stay images (:meth:`reshape_rows` flattens them).
    chunk_rows : int
        The source's: a window of this many rows of the subset reads about as
        many chunks as a window of the source.
    """

    def __init__(self, source, rows):
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if isinstance(source, RowSubset):  # a subset of a subset: rows of the first source
            source, rows = source.source, source.rows[rows]
        self.source, self.rows = source, rows
        self.dtype = np.dtype(self.source.dtype)
        self.shape = (len(self.rows), *self.source.shape[1:])
        self.chunk_rows = self.source.chunk_rows

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"RowSubset({self.source!r}, {len(self)} rows)"

    def reshape_rows(self) -> RowSubset:
        """The same rows as flat vectors ``(m, d)``, without reading anything."""
        return self if self.ndim == 2 else RowSubset(self.source.reshape_rows(), self.rows)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi`` of the subset."""
        return self.source.take(self.rows[lo:hi])

    def __call__(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi``: what a Dask worker reading its shard calls."""
        return self.read(lo, hi)

    def shard_reader(self) -> RowSubset:
        """A picklable reader of flat rows (a store's subset pickles as its path and rows)."""
        return self.reshape_rows()

    def take(self, rows) -> np.ndarray:
        """Rows ``rows`` of the subset, in that order (each source chunk read once)."""
        return self.source.take(self.rows[np.asarray(rows, dtype=np.int64)])
