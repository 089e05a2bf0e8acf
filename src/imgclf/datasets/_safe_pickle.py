"""Unpickling dataset files without running code from them.

A pickle may name any importable callable and have it called while loading
(``os.system`` among them), so a downloaded dataset pickle is untrusted input.
:func:`safe_load` resolves globals from a fixed table of the few a CIFAR file
needs to rebuild NumPy arrays, instead of importing whatever the file names;
anything else stops the load before a single call is made.
"""

from __future__ import annotations

import codecs
import pickle
from typing import IO

import numpy as np

from imgclf.errors import FormatError, UnsafePickleError

try:  # NumPy 2 moved the array internals to numpy._core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray

__all__ = ["safe_load"]

# (module, name) as written in the pickle -> the object it stands for. Files
# written under NumPy 1 say numpy.core, under NumPy 2 numpy._core; both map to
# the same function, so no module named by a file is ever imported.
_ARRAY_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ARRAY_GLOBALS[_module, "_reconstruct"] = _multiarray._reconstruct
    _ARRAY_GLOBALS[_module, "scalar"] = _multiarray.scalar

# What a damaged pickle makes the unpickler raise (it calls numpy with
# whatever arguments the bytes happen to hold, hence TypeError and friends).
_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals come only from :data:`_ARRAY_GLOBALS`."""

    def __init__(self, fileobj: IO[bytes], source_name: str) -> None:
        # Python 2 wrote the official files; "bytes" keeps its str as bytes
        # (pixel buffers must not be decoded as text).
        super().__init__(fileobj, encoding="bytes")
        self._source = source_name

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("_codecs", "encode"):
            return self._latin1_encode
        found = _ARRAY_GLOBALS.get((module, name))
        if found is None:
            raise self._refuse(f"{module}.{name}")
        return found

    def _latin1_encode(self, text: object, encoding: object = "utf-8", *_: object) -> bytes:
        # Python 3 writes bytes at protocol 2 as _codecs.encode(text, "latin1").
        # Only that codec is needed; any other name would reach every codec
        # installed, so it is refused like a foreign global.
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise self._refuse(f"_codecs.encode with codec {encoding!r}")
        return codecs.encode(text, "latin1")

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self._source}: pickle refers to {what}, which is not allowed in a "
            f"dataset file; nothing was executed"
        )


def safe_load(fileobj: IO[bytes], source_name: str) -> object:
    """Unpickle ``fileobj``, allowing only the globals NumPy arrays need.

    Parameters
    ----------
    fileobj : binary file
        Open for reading, positioned at the start of the pickle.
    source_name : str
        The file's name for error messages.

    Returns
    -------
    object
        The unpickled value: dicts, lists, bytes, numbers and NumPy arrays.
        Strings written by Python 2 come back as ``bytes``.

    Raises
    ------
    UnsafePickleError
        The pickle names a global outside the allow-list (``os.system``, say).
        It is raised when the global is looked up, before anything is called.
    FormatError
        The pickle is truncated or corrupt.

    Examples
    --------
    >>> import io, pickle
    >>> safe_load(io.BytesIO(pickle.dumps({b"labels": [3, 1]}, protocol=2)), "x")
    {b'labels': [3, 1]}
    """
    try:
        return _RestrictedUnpickler(fileobj, source_name).load()
    except UnsafePickleError:
        raise
    except _CORRUPT as exc:
        raise FormatError(
            f"{source_name}: not a readable pickle, the file is truncated or corrupt "
            f"({type(exc).__name__}: {exc})"
        ) from exc
