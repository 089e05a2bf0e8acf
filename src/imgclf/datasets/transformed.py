"""A fitted transformer applied to a lazy array chunk by chunk: on demand, or into a store.

Feature extraction (HOG, colour histograms, a mean image, any scikit-learn
transformer) maps rows to rows, so a set larger than memory is transformed a block
at a time and never whole:

``TransformedArray``     a lazy view: ``transformer.transform`` runs on the rows as they
                         are read, so training and scoring see features, not pixels
``transform_to_store``   every row transformed once and written, chunk by chunk, to an
                         array of a new store (float32): computed once, read many times

Nothing here knows a particular transformer: the transformer is fitted beforehand,
and its ``transform`` must map ``(m, d)`` rows to ``(m, d')`` rows independently
(row ``i`` of the output depends on row ``i`` of the input only).

Examples
--------
>>> import tempfile, pathlib
>>> from sklearn.preprocessing import FunctionTransformer
>>> from imgclf.datasets.store import StoreWriter, open_store
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with StoreWriter(folder / "pixels.zarr") as store:
...     rows = np.arange(6, dtype=np.uint8).reshape(3, 2)
...     store.array("x", (2,), "uint8", chunk_rows=2).append(rows)
...     _ = store.publish({})
>>> pixels = open_store(folder / "pixels.zarr")[1]["x"]
>>> halves = FunctionTransformer(lambda x: x / 2)
>>> TransformedArray(pixels, halves)[1:].tolist()
[[1.0, 1.5], [2.0, 2.5]]
>>> transform_to_store(pixels, halves, folder / "features.zarr")[2].tolist()
[2.0, 2.5]
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from imgclf.datasets._lazy_rows import LazyRows
from imgclf.datasets.chunked import blocks
from imgclf.datasets.store import (
    StoredArray,
    StoreWriter,
    open_store,
)

__all__ = ["TransformedArray", "transform_to_store"]

TRANSFORM_BLOCK_BYTES = 64 * 2**20  # the transformed rows of one block, at most


class TransformedArray(LazyRows):
    """``transformer.transform`` of a lazy array's rows, computed as they are read.

    Parameters
    ----------
    source : lazy array, shape (n, ...)
        E.g. a :class:`~imgclf.datasets.store.StoredArray`; images are presented
        to the transformer as flat rows ``(m, d)``, as ``Dataset.X`` presents them.
    transformer : fitted transformer
        Its ``transform`` maps rows ``(m, d)`` to ``(m, d')`` row by row.
    dtype : dtype, default=float32
        Of the transformed rows.

    Attributes
    ----------
    shape : tuple (n, d')
    chunk_rows : int
        The source's: a window of chunks reads whole chunks of the source.
    """

    ndim = 2
    too_large_hint = "read it in chunks, or write it to a store (transform_to_store)"

    def __init__(self, source, transformer, *, dtype=np.float32):
        self.source = source.reshape_rows() if source.ndim > 2 else source
        self.transformer, self.dtype = transformer, np.dtype(dtype)
        width = self._apply(self.source.read(0, 1)).shape[1] if len(self.source) else 0
        self.shape = (len(self.source), width)
        self.chunk_rows = self.source.chunk_rows

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"TransformedArray({self.source!r}, {type(self.transformer).__name__})"

    def reshape_rows(self) -> TransformedArray:
        return self  # already rows

    def _apply(self, rows: np.ndarray) -> np.ndarray:
        out = np.asarray(self.transformer.transform(rows), dtype=self.dtype)
        if out.ndim != 2 or len(out) != len(rows):
            raise ValueError(
                f"{type(self.transformer).__name__}.transform gave shape {out.shape} for "
                f"{len(rows)} rows; it must map rows to rows"
            )
        return out

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Transformed rows ``lo..hi``."""
        return self._apply(self.source.read(lo, hi))

    def take(self, rows) -> np.ndarray:
        """Transformed rows ``rows``, in that order (each source chunk read once)."""
        return self._apply(self.source.take(rows))


def transform_to_store(
    X, transformer, target: str | os.PathLike, *, name: str = "features", attributes=None
) -> StoredArray:
    """Transform every row of ``X`` once and write the result to a new store.

    Parameters
    ----------
    X : lazy array or ndarray, shape (n, ...)
    transformer : fitted transformer
        Row to row, as for :class:`TransformedArray`.
    target : path
        The store's folder (``….zarr``), published atomically when complete.
    name : str, default="features"
        The array's name in the store.
    attributes : dict, optional
        JSON-able attributes of the store's group.

    Returns
    -------
    StoredArray, shape (n, d')
        The written float32 array, lazy.
    """
    view = TransformedArray(X if getattr(X, "lazy", False) else _InMemory(X), transformer)
    with StoreWriter(target) as store:
        out = store.array(name, (view.shape[1],), np.float32)
        for _, block in blocks(view, max_bytes=TRANSFORM_BLOCK_BYTES):
            out.append(block)
        path = store.publish(dict(attributes or {}))
    return open_store(Path(path))[1][name]


class _InMemory:
    """An ndarray seen through the lazy-array interface (for :func:`transform_to_store`)."""

    lazy = True

    def __init__(self, array):
        array = np.asarray(array)
        self.array = array.reshape(len(array), -1)
        self.ndim, self.chunk_rows = 2, max(1, len(array))

    def __len__(self) -> int:
        return len(self.array)

    def read(self, lo: int, hi: int) -> np.ndarray:
        return self.array[lo:hi]

    def take(self, rows) -> np.ndarray:
        return self.array[np.asarray(rows)]
