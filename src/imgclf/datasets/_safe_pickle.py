"""Unpickling dataset files without running code from them.

A pickle may name any importable callable and have it called while loading
(``os.system`` among them), so a downloaded dataset pickle is untrusted input.
:func:`safe_load` accepts only the globals a pickled NumPy array refers to,
and even those are not NumPy's own functions: NumPy's ``__setstate__`` trusts
its input (a dtype whose state claims to hold object references turns pixel
bytes into pointers), so each name maps to a stand-in here that checks the
state and builds the array with :func:`numpy.frombuffer` from plain types and
byte strings. Anything else stops the load before a single call is made.

Before that, the opcodes are checked for sizes the file cannot back: the C
unpickler allocates a string's declared length before reading it, and grows
its memo table to any index it is given, so one damaged byte could otherwise
ask for gigabytes.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import pickletools
from typing import IO

import numpy as np

from imgclf.errors import FormatError, UnsafePickleError

__all__ = ["safe_load"]

# What a damaged pickle makes the unpickler raise: besides its own errors,
# whatever the stand-ins raise when called with the wrong arguments.
_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
)

# Plain numeric element types (typestr without byte order): no objects, no
# fields, no sub-arrays, so any bytes of the right length are a valid array.
# (Not bool either: a bool byte other than 0 or 1 is not a valid value.)
_SIMPLE_TYPES = frozenset(
    ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"]
)
_MEMO_PUTS = frozenset(["PUT", "BINPUT", "LONG_BINPUT"])
_BYTE_ORDERS = {"<": "<", ">": ">", "=": "=", "|": ""}


class _Malformed(Exception):
    """An allowed global was given a state no NumPy writer produces."""


class _NdarrayClass:
    """Stands for ``numpy.ndarray``: only ever passed to ``_reconstruct``, never called."""


class _DtypeStandIn:
    """Stands for ``numpy.dtype(spec, align, copy)`` until resolved."""

    def __init__(self, spec: object, align: object = False, copy: object = False) -> None:
        self.spec = spec
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        spec = _text(self.spec)
        state = self.state if self.state is not None else (3, "|", None, None, None)
        if spec not in _SIMPLE_TYPES or not isinstance(state, tuple) or len(state) < 5:
            raise _Malformed(f"dtype {spec!r} with state {_short(state)}, expected a number type")
        order = _BYTE_ORDERS.get(_text(state[1]))
        if order is None or any(part is not None for part in state[2:5]):
            raise _Malformed(f"dtype {spec!r} with state {_short(state)}, expected a number type")
        # Built afresh from the type code: the state's flags and sizes are ignored.
        return np.dtype(order + spec)


class _ArrayStandIn:
    """Stands for ``_reconstruct(ndarray, shape, typecode)`` until resolved."""

    def __init__(self, cls: object, shape: object, typecode: object) -> None:
        if cls is not _NdarrayClass:
            raise _Malformed(f"_reconstruct of {cls!r}, expected numpy.ndarray")
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state

    def resolve(self) -> np.ndarray:
        state = self.state
        # NumPy writes (version, shape, dtype, fortran, data); very old ones omit version.
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Malformed(f"array state {_short(state)}, expected (shape, dtype, order, data)")
        shape, dtype, fortran, data = state
        shape, dtype = _shape(shape), _dtype(dtype)
        if not isinstance(fortran, int):
            raise _Malformed(f"array order flag {_short(fortran)}, expected a bool")
        _check_length(data, math.prod(shape) * dtype.itemsize, f"array of shape {shape}")
        flat = np.frombuffer(data, dtype)
        return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _scalar(dtype: object, data: object) -> object:
    """Stands for ``numpy.core.multiarray.scalar``: one number from its bytes."""
    dtype = _dtype(dtype)
    _check_length(data, dtype.itemsize, f"{dtype} scalar")
    return np.frombuffer(data, dtype)[0]


def _dtype(value: object) -> np.dtype:
    if not isinstance(value, _DtypeStandIn):
        raise _Malformed(f"dtype given as {_short(value)}, expected numpy.dtype")
    return value.resolve()


def _shape(value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(n) is int and n >= 0 for n in value):
        raise _Malformed(f"array shape {_short(value)}, expected a tuple of sizes")
    return value


def _check_length(data: object, expected: int, what: str) -> None:
    if not isinstance(data, bytes | bytearray) or len(data) != expected:
        found = f"{len(data)} bytes" if isinstance(data, bytes | bytearray) else _short(data)
        raise _Malformed(f"{what} needs {expected} bytes, found {found}")


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# (module, name) as written in the pickle -> its stand-in. NumPy 1 wrote
# numpy.core, NumPy 2 writes numpy._core; no module a file names is imported.
_ARRAY_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): _NdarrayClass,
    ("numpy", "dtype"): _DtypeStandIn,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ARRAY_GLOBALS[_module, "_reconstruct"] = _ArrayStandIn
    _ARRAY_GLOBALS[_module, "scalar"] = _scalar


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
        if (module, name) in (("__builtin__", "bytes"), ("builtins", "bytes")):
            return self._empty_bytes
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

    def _empty_bytes(self, *args: object) -> bytes:
        # ... and an empty bytes object as bytes(). With an argument, bytes(n)
        # would allocate n bytes, so only the empty call is let through.
        if args:
            raise self._refuse(f"bytes{_short(args)}")
        return b""

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self._source}: pickle refers to {what}, which is not allowed in a "
            f"dataset file; nothing was executed"
        )


def safe_load(fileobj: IO[bytes], source_name: str) -> object:
    """Unpickle ``fileobj``, allowing only what plain NumPy arrays need.

    Parameters
    ----------
    fileobj : binary file
        Open for reading, positioned at the start of the pickle.
    source_name : str
        The file's name for error messages.

    Returns
    -------
    object
        The unpickled value: dicts, lists, tuples, bytes, numbers and NumPy
        arrays or scalars of plain number types (int, uint, float, complex).
        Strings written by Python 2 come back as ``bytes``.

    Raises
    ------
    UnsafePickleError
        The pickle names a global outside the allow-list (``os.system``, say).
        It is raised when the global is looked up, before anything is called.
    FormatError
        The pickle is truncated or corrupt, or holds an array that is not of
        a plain number type or whose data does not fit its shape.

    Examples
    --------
    >>> import io, pickle
    >>> import numpy as np
    >>> blob = pickle.dumps({b"labels": [3, 1], b"x": np.arange(2)}, protocol=2)
    >>> safe_load(io.BytesIO(blob), "x")
    {b'labels': [3, 1], b'x': array([0, 1])}
    """
    try:
        data = fileobj.read()
        _check_sizes(data)
        return _resolve(_RestrictedUnpickler(io.BytesIO(data), source_name).load(), {})
    except UnsafePickleError:
        raise
    except _Malformed as exc:
        raise FormatError(f"{source_name}: pickle holds a malformed NumPy value: {exc}") from exc
    except _CORRUPT as exc:
        raise FormatError(
            f"{source_name}: not a readable pickle, the file is truncated or corrupt "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _check_sizes(data: bytes) -> None:
    """Raise ValueError where the opcodes in ``data`` declare sizes it cannot hold.

    :mod:`pickletools` checks each string length against the bytes left; a
    memo index above the number of opcodes before it is written by no pickler.
    """
    for count, (opcode, index, _) in enumerate(pickletools.genops(data)):
        if opcode.name in _MEMO_PUTS and index > count:
            raise ValueError(f"memo index {index} after only {count} opcodes")


def _resolve(value: object, seen: dict[int, object]) -> object:
    """``value`` with every stand-in replaced by the array, dtype or number it stands for."""
    if id(value) in seen:  # shared values, self-containing lists and dicts
        return seen[id(value)]
    if isinstance(value, _ArrayStandIn | _DtypeStandIn):
        seen[id(value)] = value.resolve()
        return seen[id(value)]
    if isinstance(value, list):
        seen[id(value)] = value
        value[:] = [_resolve(item, seen) for item in value]
    elif isinstance(value, dict):
        seen[id(value)] = value
        for key, item in value.items():
            value[key] = _resolve(item, seen)
    elif isinstance(value, tuple):
        return tuple(_resolve(item, seen) for item in value)
    return value
