"""A cache of decoded image folders, keyed by path, options and manifest.

Decoding 60,000 JPEGs takes seconds; reading one uncompressed ``.npz`` of the
decoded pixels takes a fraction of one. An entry is valid only for the folder
it was made from *as it was then*: the key is the folder's absolute path and
the load options, and the entry stores a digest of the folder's manifest
(every file's relative name, size and modification time). Any change to the
folder changes the digest and the entry is rebuilt.

Entries are single files written atomically, so a crash mid-write leaves the
old entry (or none), never a half-written one. A corrupt or unreadable entry
counts as a miss. Entries hold only a JSON header and raw arrays of a few
allowed dtypes: a tampered cache file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from imgclf._atomic import atomic_path

__all__ = ["cache_dir", "entry_path", "manifest_digest", "read_entry", "write_entry"]

_FORMAT = 1


def cache_dir() -> Path:
    """``$IMGCLF_CACHE``, else ``$XDG_CACHE_HOME/imgclf``, else ``~/.cache/imgclf``."""
    if os.environ.get("IMGCLF_CACHE"):
        return Path(os.environ["IMGCLF_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "imgclf"
    return Path.home() / ".cache" / "imgclf"


def entry_path(source: Path, options: dict) -> Path:
    """Where the entry for ``source`` loaded with ``options`` lives."""
    key = json.dumps([str(source.resolve()), options, _FORMAT], sort_keys=True)
    return cache_dir() / "folders" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def manifest_digest(lines: list[str]) -> str:
    """SHA-256 over manifest lines (each file's relative name, size and mtime)."""
    # names that are not UTF-8 arrive as surrogate escapes: hash their original bytes
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def read_entry(path: Path, digest: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The header and arrays stored at ``path`` if it matches ``digest``, else None.

    Any failure to read the entry is a miss (None) that the caller rebuilds: a missing,
    truncated or tampered file, a wrong length field, a malformed header. Every length
    is checked against the file's size before anything is allocated, so a forged entry
    cannot make the reader ask for more memory than the file holds.
    """
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            header, start = _read_header(f, file_size)
            if header.get("digest") != digest or header.get("format") != _FORMAT:
                return None
            specs = header.get("arrays")
            if not isinstance(specs, dict):
                return None
            arrays = {name: _read_array(f, spec, start, file_size) for name, spec in specs.items()}
            return header, arrays
    except _READ_FAILURES:  # the cache is only a shortcut: whatever goes wrong, decode again
        return None


def write_entry(path: Path, digest: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` and ``header`` (JSON-able) atomically at ``path``."""
    layout, offset = {}, 0
    for name, array in arrays.items():
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += _aligned(array.nbytes)
    blob = json.dumps({**header, "digest": digest, "format": _FORMAT, "arrays": layout}).encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(_MAGIC + len(blob).to_bytes(8, "little") + blob)
        out.write(bytes(_aligned(out.tell()) - out.tell()))
        for array in arrays.values():
            out.write(np.ascontiguousarray(array).tobytes())
            out.write(bytes(_aligned(array.nbytes) - array.nbytes))


# An entry is MAGIC, the header's length (8 bytes, little-endian), the JSON header, then
# each array's raw bytes, 64-byte aligned. Raw bytes read with np.fromfile at memory speed;
# an .npz would spend as long again checking CRCs of data we check by size and digest.
_MAGIC = b"IMGCLFC\x01"
_ALIGN = 64
_DTYPES = {"|u1", "<i8", "<f4"}
_MAX_DIMS = 8
# what a damaged entry can raise (deeply nested JSON: RecursionError; the memory checks
# above make MemoryError unlikely, but a miss is still the right answer to it)
_READ_FAILURES = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    RecursionError,
    MemoryError,
    OverflowError,
)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _read_header(f, file_size: int) -> tuple[dict, int]:
    """The JSON header and where the arrays start."""
    if f.read(len(_MAGIC)) != _MAGIC:
        raise ValueError("not an imgclf cache entry")
    size = int.from_bytes(f.read(8), "little")
    if size > file_size - len(_MAGIC) - 8:
        raise ValueError(f"header length {size} is past the end of the file")
    header = json.loads(f.read(size))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, _aligned(len(_MAGIC) + 8 + size)


def _read_array(f, spec: dict, start: int, file_size: int) -> np.ndarray:
    """One array, after checking its dtype, shape and extent against the file."""
    if not isinstance(spec, dict) or spec.get("dtype") not in _DTYPES:
        raise ValueError("unexpected array spec")
    shape, offset = spec.get("shape"), spec.get("offset")
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS:
        raise ValueError(f"unexpected shape {shape!r}")
    if not all(type(n) is int and n >= 0 for n in [*shape, offset]):
        raise ValueError(f"unexpected shape {shape!r} or offset {offset!r}")
    count = math.prod(shape)  # Python ints: no overflow
    itemsize = np.dtype(spec["dtype"]).itemsize
    if start + offset + count * itemsize > file_size:
        raise ValueError("the array runs past the end of the file")
    f.seek(start + offset)
    array = np.fromfile(f, dtype=spec["dtype"], count=count)
    if array.size != count:
        raise ValueError("truncated cache entry")
    return array.reshape(shape)
