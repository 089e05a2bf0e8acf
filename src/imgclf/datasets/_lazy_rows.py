"""LazyRows: what every lazy view of rows shares (indexing, chunks, the in-memory limit).

A view defines ``read(lo, hi)``, ``take(rows)``, ``__len__``, ``nbytes``, ``chunk_rows``
and a ``__repr__``; this base gives it NumPy-like indexing, ``chunks()`` and an
``np.asarray`` refused above :func:`~imgclf.datasets.store.in_memory_bytes`.
"""

from __future__ import annotations

import numpy as np

from imgclf.datasets.store import IN_MEMORY_ENV, in_memory_bytes
from imgclf.errors import DatasetError

__all__ = ["LazyRows"]


class LazyRows:
    """Base of lazy row views (:class:`~imgclf.datasets.transformed.TransformedArray`,
    :class:`~imgclf.datasets.row_subset.RowSubset`)."""

    lazy = True
    too_large_hint = "read it in chunks"  # what the error of np.asarray suggests

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            return self.read(start, stop)
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            return self.take([key])[0]
        return self.take(np.arange(len(self))[key])

    def chunks(self, rows: int | None = None):
        """``(start, block)`` over every row, ``rows`` at a time (default: a source chunk)."""
        step = rows or self.chunk_rows
        for lo in range(0, len(self), step):
            yield lo, self.read(lo, lo + step)

    def __array__(self, dtype=None, copy=None):
        limit = in_memory_bytes()
        if self.nbytes > limit:
            raise DatasetError(
                f"{self!r}: {self.nbytes:,} bytes, more than the in-memory limit of "
                f"{limit:,} (${IN_MEMORY_ENV}); {self.too_large_hint}"
            )
        array = self.read(0, len(self))
        return array if dtype is None else array.astype(dtype, copy=False)
