"""FileRows: rows of a raw array at a known place in a file, read on demand (a lazy array).

A model file of a k-NN classifier trained on a set larger than memory holds its
training rows as one uncompressed ``.npy`` member of the ``.npz`` archive. Loading
such a model must not read them whole: :class:`FileRows` presents the member's bytes
as a lazy ``(n, d)`` array (the interface of
:class:`~imgclf.datasets.store.StoredArray`: ``read``, ``take``, ``chunks``, indexing)
that reads rows with ``pread`` when they are asked for, so the search streams them
from the model file as it streams a store.

The file is opened once and kept open: a model file replaced while a server runs
(an atomic rename) does not change the rows under a loaded model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from imgclf.datasets.store import StoredArray, chunk_rows_for
from imgclf.errors import FormatError

__all__ = ["FileRows"]


class FileRows(StoredArray):
    """A lazy ``(n, ...)`` array: raw little-endian rows at byte ``offset`` of ``path``.

    Parameters
    ----------
    path : path
        The file holding the rows (e.g. a model file's ``.npz`` archive).
    offset : int
        Where row 0 starts in the file.
    shape : tuple of int
        ``(n, ...)``: the array's shape.
    dtype : dtype
        uint8 or little-endian float32 (as stores hold).

    Raises
    ------
    FormatError
        When the file is shorter than ``offset`` plus the array's bytes.

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "wb").write(b"head" + bytes(range(12)))
    >>> FileRows(path, 4, (4, 3), np.uint8)[2:].tolist()
    [[6, 7, 8], [9, 10, 11]]
    """

    def __init__(self, path: str | os.PathLike, offset: int, shape: tuple, dtype):
        self.folder = Path(path)  # StoredArray's name for where the bytes are
        self.offset, self.stored_shape = int(offset), tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.chunk_rows = chunk_rows_for(math.prod(self.stored_shape[1:]) * self.dtype.itemsize)
        self.flat = False
        self._open()

    def _open(self) -> None:
        self._file = open(self.folder, "rb", buffering=0)  # noqa: SIM115 - kept for the reads
        size = os.fstat(self._file.fileno()).st_size
        if size < self.offset + self.nbytes:
            raise FormatError(
                f"{self.folder}: {size:,} bytes, too short for {self.nbytes:,} bytes of rows "
                f"from byte {self.offset:,}"
            )

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi`` as a new NumPy array (one ``pread`` into it)."""
        n = len(self)
        lo, hi = max(0, min(lo, n)), max(0, min(hi, n))
        out = np.empty((max(0, hi - lo), *self.stored_shape[1:]), self.dtype)
        row_bytes = math.prod(self.stored_shape[1:]) * self.dtype.itemsize
        view, at = memoryview(out.reshape(-1).view(np.uint8)), self.offset + lo * row_bytes
        while len(view):
            got = os.preadv(self._file.fileno(), [view], at)
            if not got:
                raise FormatError(f"{self.folder}: the rows ended early (the file shrank?)")
            view, at = view[got:], at + got
        return out.reshape(len(out), *self.row_shape)

    def __repr__(self) -> str:
        return f"FileRows({str(self.folder)!r}, offset={self.offset}, shape={self.shape})"

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_file"}

    def __setstate__(self, state: dict) -> None:  # a Dask worker opens the file itself
        self.__dict__.update(state)
        self._open()
