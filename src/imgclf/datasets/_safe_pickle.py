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

The work of one load is bounded by what the largest CIFAR file needs
(CIFAR-100's ``train``: 50,000 rows of 3,072 pixel bytes, two labels and a
file name each; 155 MB, about 200,000 opcodes):

- at most :data:`MAX_FILE_BYTES` are read (the file is refused beyond);
- at most :data:`MAX_OPCODES` opcodes, so at most that many objects built;
- every value is memoised, so a value shared many times (``t = (t, t)``
  forty levels deep, 262 bytes) is built and visited once; a tuple that
  would *expand* past :data:`MAX_TUPLE_NODES` (hashing or comparing it
  walks every path) is refused before the unpickler sees it, and so is a
  value whose expansion as a tree passes :data:`MAX_NODES`, or that is
  nested deeper than :data:`MAX_DEPTH`, or that contains itself;
- the arrays built may not hold more bytes than the file itself: each byte
  of pixel data is in the file once, so one buffer used by many arrays is
  refused.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import pickletools
import reprlib
from typing import IO

import numpy as np

from imgclf.errors import FormatError, UnsafePickleError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_OPCODES",
    "MAX_TUPLE_NODES",
    "safe_load",
]

# Budgets, from the largest official file (CIFAR-100 train, 50,000 rows):
# per row 3,072 pixel bytes and up to 256 bytes of labels and file name in
# pickle form (the official files use about 32), plus 1 MiB.
ROW_BUDGET_BYTES = 3072 + 256
MAX_FILE_BYTES = 50_000 * ROW_BUDGET_BYTES + (1 << 20)
# That file has about 200,000 opcodes and 150,000 values: ten times that.
MAX_OPCODES = 2_000_000
MAX_NODES = 1_500_000
# A CIFAR tuple (an array's state, a shape) has under 10 nodes; a dict nests
# lists of labels, arrays nest state tuples: 5 levels at most.
MAX_TUPLE_NODES = 10_000
MAX_DEPTH = 32

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
_MEMO_PUTS = frozenset(["PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"])
_MEMO_GETS = frozenset(["GET", "BINGET", "LONG_BINGET"])
_TUPLES = frozenset(["TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "FROZENSET"])
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
            raise _Malformed(
                f"dtype {_short(self.spec)} with state {_short(state)}, expected a number type"
            )
        order = _BYTE_ORDERS.get(_text(state[1]))
        if order is None or any(part is not None for part in state[2:5]):
            raise _Malformed(f"dtype {spec!r} with state {_short(state)}, expected a number type")
        # Built afresh from the type code: the state's flags and sizes are ignored.
        return np.dtype(order + spec)


class _ArrayStandIn:
    """Stands for ``_reconstruct(ndarray, shape, typecode)`` until resolved."""

    def __init__(self, cls: object, shape: object, typecode: object) -> None:
        if cls is not _NdarrayClass:
            raise _Malformed(f"_reconstruct of {_short(cls)}, expected numpy.ndarray")
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


class _FrombufferStandIn:
    """Stands for ``_frombuffer(buf, dtype, shape, order, axis_order)``: protocol 5's arrays."""

    def __init__(
        self, buf: object, dtype: object, shape: object, order: object, axis_order: object = None
    ) -> None:
        self.args = (buf, dtype, shape, order, axis_order)

    def resolve(self) -> np.ndarray:
        buf, dtype, shape, order, axis_order = self.args
        shape, dtype = _shape(shape), _dtype(dtype)
        _check_length(buf, math.prod(shape) * dtype.itemsize, f"array of shape {shape}")
        flat = np.frombuffer(buf, dtype)
        if order in ("C", "F") and axis_order is None:
            return flat.reshape(shape, order=order).copy(order="K")
        # NumPy 2 writes a permuted contiguous array as "K" and the axes' order.
        if order != "K" or sorted(_shape(axis_order)) != list(range(len(shape))):
            raise _Malformed(
                f"array order {_short(order)} with axes {_short(axis_order)}, expected "
                f"'C', 'F', or 'K' with a permutation of the axes"
            )
        return flat.reshape(shape, order="C").transpose(axis_order).copy(order="K")


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


def _text(value: object) -> str | None:
    """A str or Python 2 string as text; None for anything else (never its repr)."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return value if isinstance(value, str) else None


# repr of a value in a message: a few items and levels, whatever the value's size or sharing.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 6


def _short(value: object) -> str:
    if isinstance(value, bytes | bytearray) and len(value) > 40:
        return f"{type(value).__name__} of {len(value)} bytes"
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int of more digits than str() allows
        return f"a {type(value).__name__}"
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
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ARRAY_GLOBALS[_module, "_frombuffer"] = _FrombufferStandIn
_STAND_INS = (_ArrayStandIn, _DtypeStandIn, _FrombufferStandIn)


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
            raise self._refuse(f"_codecs.encode with codec {_short(encoding)}")
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


def safe_load(fileobj: IO[bytes], source_name: str, max_bytes: int = MAX_FILE_BYTES) -> object:
    """Unpickle ``fileobj``, allowing only what plain NumPy arrays need.

    Parameters
    ----------
    fileobj : binary file
        Open for reading, positioned at the start of the pickle.
    source_name : str
        The file's name for error messages.
    max_bytes : int, default MAX_FILE_BYTES
        The largest pickle accepted; no more than one byte beyond is read.

    Returns
    -------
    object
        The unpickled value: dicts, lists, tuples, bytes, numbers and NumPy
        arrays or scalars of plain number types (int, uint, float, complex).
        Strings written by Python 2 come back as ``bytes``. Protocols 0 to 5
        are read (protocol 5 with its buffers in band).

    Raises
    ------
    UnsafePickleError
        The pickle names a global outside the allow-list (``os.system``, say).
        It is raised when the global is looked up, before anything is called.
    FormatError
        The pickle is truncated or corrupt, holds an array that is not of a
        plain number type or whose data does not fit its shape, or needs more
        work than any CIFAR file (see the module's budgets).

    Examples
    --------
    >>> import io, pickle
    >>> import numpy as np
    >>> blob = pickle.dumps({b"labels": [3, 1], b"x": np.arange(2)}, protocol=2)
    >>> safe_load(io.BytesIO(blob), "x")
    {b'labels': [3, 1], b'x': array([0, 1])}
    """
    try:
        data = fileobj.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FormatError(
                f"{source_name}: more than {max_bytes:,} bytes, larger than any CIFAR file "
                f"can need; refused without reading the rest"
            )
        _check_opcodes(data)
        value = _RestrictedUnpickler(io.BytesIO(data), source_name).load()
        return _Resolver(len(data)).resolve(value, 0)
    except UnsafePickleError:
        raise
    except _Malformed as exc:
        raise FormatError(f"{source_name}: pickle holds a malformed NumPy value: {exc}") from exc
    except _TooMuch as exc:
        raise FormatError(f"{source_name}: refused, {exc}") from exc
    except _CORRUPT as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(
            f"{source_name}: not a readable pickle, the file is truncated or corrupt "
            f"({type(exc).__name__}: {_short_text(str(exc))})"
        ) from exc


class _TooMuch(Exception):
    """The pickle asks for more work than any CIFAR file needs."""


def _short_text(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def _check_opcodes(data: bytes) -> None:
    """Check ``data``'s opcodes before the C unpickler runs them.

    :mod:`pickletools` checks each string length against the bytes left; a
    memo index above the number of opcodes before it is written by no
    pickler. The stack is followed to know how many nodes each tuple and
    frozenset expands to (hashing one, as a dict key, walks every path: C
    code that no timer interrupts); lists and dicts are unhashable, so a
    hash stops there and they count 1.

    Raises
    ------
    ValueError
        Corrupt opcodes, or a memo index the file cannot have written.
    _TooMuch
        Too many opcodes, or a tuple expanding past MAX_TUPLE_NODES.
    """
    stack: list[int | None] = []  # nodes per value; None marks a MARK
    memo: dict[int, int] = {}
    for count, (opcode, arg, _) in enumerate(pickletools.genops(data)):
        if count >= MAX_OPCODES:
            raise _TooMuch(f"more than {MAX_OPCODES:,} opcodes, more than any CIFAR file holds")
        name = opcode.name
        if name in _MEMO_PUTS:
            index = len(memo) if name == "MEMOIZE" else arg
            if index > count:
                raise ValueError(f"memo index {index} after only {count} opcodes")
            memo[index] = _top(stack)
            continue
        if name in _MEMO_GETS:
            if arg not in memo:
                raise ValueError(f"memo index {arg} read before it was written")
            stack.append(memo[arg])
            continue
        if name == "DUP":
            stack.append(_top(stack))
            continue
        popped = _pop(stack, opcode)
        pushed = 1 + sum(popped) if name in _TUPLES else 1
        if pushed > MAX_TUPLE_NODES:
            raise _TooMuch(
                f"a tuple expands to {pushed:,} nodes (values shared and nested), more than "
                f"the {MAX_TUPLE_NODES:,} any CIFAR file needs"
            )
        stack.extend(
            None if item is pickletools.markobject else pushed for item in opcode.stack_after
        )


def _top(stack: list[int | None]) -> int:
    if not stack or stack[-1] is None:
        raise ValueError("memo write or DUP with no value on the stack")
    return stack[-1]


def _pop(stack: list[int | None], opcode: pickletools.OpcodeInfo) -> list[int]:
    """Pop what ``opcode`` takes off ``stack``; the node counts of the values it uses."""
    before = opcode.stack_before
    taken: list[int] = []
    if pickletools.markobject in before:
        if None not in stack:
            raise ValueError(f"{opcode.name} without a MARK")
        mark = len(stack) - 1 - stack[::-1].index(None)
        taken = [n for n in stack[mark + 1 :] if n is not None]
        del stack[mark:]
        before = before[: before.index(pickletools.markobject)]
    if len(stack) < len(before) or None in stack[len(stack) - len(before) :]:
        raise ValueError(f"{opcode.name} needs {len(before)} values on the stack")
    if before:
        taken += stack[len(stack) - len(before) :]
        del stack[len(stack) - len(before) :]
    return taken


class _Resolver:
    """Replaces stand-ins by what they stand for, visiting each value once.

    Parameters
    ----------
    file_bytes : int
        The pickle's length: the arrays built may hold no more than it does.
    """

    def __init__(self, file_bytes: int) -> None:
        self.file_bytes = file_bytes
        self.array_bytes = 0
        self.done: dict[int, object] = {}  # id -> the value resolved
        self.nodes: dict[int, int] = {}  # id -> nodes of its expansion as a tree
        self.active: set[int] = set()  # ids being resolved: seen again, a cycle
        self.keep: list[object] = []  # originals kept alive, so that ids stay unique

    def resolve(self, value: object, depth: int) -> object:
        """``value`` resolved; raises _TooMuch or _Malformed past a budget."""
        return self._visit(value, depth)[0]

    def _visit(self, value: object, depth: int) -> tuple[object, int]:
        """``(value resolved, nodes of its expansion as a tree)``, memoised by identity."""
        key = id(value)
        if key in self.done:
            return self.done[key], self.nodes[key]
        if key in self.active:
            raise _TooMuch("a value contains itself, which no CIFAR file does")
        if depth > MAX_DEPTH:
            raise _TooMuch(f"values nested more than {MAX_DEPTH} deep; CIFAR files nest 5")
        self.active.add(key)
        result, nodes = self._build(value, depth + 1)
        self.active.discard(key)
        if nodes > MAX_NODES:
            raise _TooMuch(
                f"the values expand to more than {MAX_NODES:,} nodes (shared and nested), "
                f"more than any CIFAR file needs"
            )
        self.keep.append(value)
        self.done[key], self.nodes[key] = result, nodes
        return result, nodes

    def _build(self, value: object, depth: int) -> tuple[object, int]:
        if isinstance(value, _STAND_INS):
            return self._array(value), 1
        if isinstance(value, list | tuple):
            visited = [self._visit(item, depth) for item in value]
            items = [item for item, _ in visited]
            nodes = 1 + sum(n for _, n in visited)
            if isinstance(value, list):
                value[:] = items
                return value, nodes
            same = all(new is old for new, old in zip(items, value, strict=True))
            return (value if same else tuple(items)), nodes
        if isinstance(value, dict):
            nodes = 1
            for k, item in value.items():
                # Keys are hashable, so bounded by _check_opcodes; left as they are.
                resolved, item_nodes = self._visit(item, depth)
                value[k] = resolved
                nodes += 1 + item_nodes
            return value, nodes
        if isinstance(value, set | frozenset):
            return value, 1 + len(value)  # items checked by _check_opcodes
        return value, 1

    def _array(self, stand_in: object) -> object:
        result = stand_in.resolve()
        self.array_bytes += getattr(result, "nbytes", 0)
        if self.array_bytes > self.file_bytes:
            raise _TooMuch(
                f"its arrays hold more than its {self.file_bytes:,} bytes: the same data "
                f"is used for several arrays"
            )
        return result
