"""MNIST and Fashion-MNIST from their IDX files, raw or gzipped.

An IDX file is a 4-byte big-endian magic number -- two zero bytes, a type
code (``0x08`` for unsigned bytes) and the number of dimensions -- then one
big-endian int32 per dimension, then the values, row-major. MNIST's image
files are ``0x00000803`` (2051: bytes, 3 dimensions N x rows x cols) and its
label files ``0x00000801`` (2049: bytes, 1 dimension N). Both datasets use
the same four file names::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

each possibly with ``.gz``. Every file is checked against its header before
use: a truncated download fails loudly instead of yielding fewer images.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from imgclf.datasets._dataset import Dataset
from imgclf.errors import DatasetError, FormatError

__all__ = ["detect_mnist", "load_mnist", "read_idx"]

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_MAGIC_MEANING = {_IMAGES_MAGIC: "an IDX image file", _LABELS_MAGIC: "an IDX label file"}
_DATA_NOUN = {_IMAGES_MAGIC: "pixel data", _LABELS_MAGIC: "label data"}

# IDX type code -> element type; multi-byte types are big-endian on disk.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FILE_NAMES = tuple(name for pair in _SPLITS.values() for name in pair)

_DIGIT_CLASSES = tuple(str(digit) for digit in range(10))
_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_mnist(path: str | os.PathLike, fashion: bool | None = None) -> dict[str, Dataset]:
    """Load MNIST or Fashion-MNIST from a folder of the four IDX files.

    Parameters
    ----------
    path : path
        Folder holding the four files, raw or ``.gz`` (or torchvision's layout,
        a folder whose ``raw`` subfolder holds them).
    fashion : bool, optional
        Name the classes as Fashion-MNIST's clothes rather than digits. By
        default, true when the folder's name (or, for ``raw``, its parent's)
        contains "fashion", in any case.

    Returns
    -------
    dict of str to Dataset
        ``"train"`` and ``"test"``. Images are uint8 ``(N, rows, cols, 1)``
        with rows and cols from the file header (28 x 28 for both datasets);
        labels int64 ``(N,)``; ``classes`` "0".."9" or the 10 clothing names.

    Raises
    ------
    DatasetError
        ``path`` is not a folder, or one of the four files is missing.
    FormatError
        A file has the wrong magic number or size, is corrupt gzip, or the
        label and image counts of a split differ.
    """
    folder = _locate(Path(path))
    # Resolve every file before reading any, so a missing one is reported
    # without first decompressing the others.
    files = {split: (_find(folder, im), _find(folder, lab)) for split, (im, lab) in _SPLITS.items()}
    if fashion is None:
        fashion = _looks_fashion(folder)
    classes = _FASHION_CLASSES if fashion else _DIGIT_CLASSES
    name = f"{'fashion-mnist' if fashion else 'mnist'}:{path}"
    return {
        split: _load_split(images, labels, classes, name, split)
        for split, (images, labels) in files.items()
    }


def detect_mnist(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of MNIST IDX files, judged by file names only.

    Parameters
    ----------
    path : path
        A folder (or anything else, which gives False).

    Returns
    -------
    bool
        True when the folder, or its ``raw`` subfolder, holds any of the four
        standard file names (raw or ``.gz``); a missing one is then reported
        by :func:`load_mnist` by name.
    """
    path = Path(path)
    return path.is_dir() and (_holds_files(path) or _holds_files(path / "raw"))


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read any IDX file, raw or gzipped (by content, whatever its name).

    Parameters
    ----------
    path : path
        The file.
    magic : int, optional
        The magic number the file must have, e.g. 2051 for an image file of
        bytes with 3 dimensions; any valid IDX magic number if None.

    Returns
    -------
    ndarray, shape given by the header
        ``(N, rows, cols)`` for an image file, ``(N,)`` for a label file. The
        element type is the header's (uint8 for MNIST), in native byte order,
        in a new writable array.

    Raises
    ------
    FormatError
        Corrupt gzip data, a bad or unexpected magic number, or a size that
        differs from what the header promises.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "labels"
    >>> _ = f.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(f, magic=2049)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    buf = _read_bytes(path)
    found, dims, dtype = _header(buf, path, magic)
    offset = 4 + 4 * len(dims)
    _check_size(len(buf) - offset, dims, dtype, path, found)
    values = np.frombuffer(buf, dtype, count=math.prod(dims), offset=offset).reshape(dims)
    # astype copies: the result owns writable memory in native byte order.
    return values.astype(dtype.newbyteorder("="))


# --- files ---------------------------------------------------------------------


def _locate(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder; expected a folder holding {_listing()}")
    # torchvision keeps the files in <root>/MNIST/raw; accept its root too.
    return path / "raw" if not _holds_files(path) and _holds_files(path / "raw") else path


def _holds_files(folder: Path) -> bool:
    return any((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in _FILE_NAMES)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{folder / name}: missing (nor {name}.gz); expected {_listing()}")


def _listing() -> str:
    return f"the MNIST IDX files {', '.join(_FILE_NAMES)}, each raw or .gz"


def _looks_fashion(folder: Path) -> bool:
    folder = folder.absolute()
    names = [folder.name, folder.parent.name] if folder.name == "raw" else [folder.name]
    return any("fashion" in name.lower() for name in names)


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    # Judge by content, not name: browsers often gunzip a download but keep
    # its .gz name, and an IDX file never starts with the gzip magic bytes.
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise FormatError(
            f"{path}: corrupt gzip data ({exc}); expected a complete gzip stream"
        ) from exc


# --- contents ------------------------------------------------------------------


def _header(buf: bytes, path: Path, expected: int | None) -> tuple[int, tuple[int, ...], np.dtype]:
    """``(magic number, dimensions, element type)`` from the start of ``buf``."""
    if len(buf) < 4:
        raise FormatError(f"{path}: {len(buf)} bytes long, too short for an IDX magic number (4)")
    found = int.from_bytes(buf[:4], "big")
    zeros, code, ndim = found >> 16, (found >> 8) & 0xFF, found & 0xFF
    if expected is not None and found != expected:
        what = _MAGIC_MEANING.get(expected, "an IDX file")
        raise FormatError(f"{path}: magic number {found}, expected {expected} ({what})")
    if zeros or code not in _IDX_TYPES or not ndim:
        raise FormatError(
            f"{path}: magic number {found} (0x{found:08x}), expected an IDX magic number: two "
            f"zero bytes, a type code in {{{', '.join(f'0x{c:02x}' for c in _IDX_TYPES)}}} "
            f"and a number of dimensions above 0"
        )
    end = 4 + 4 * ndim
    if len(buf) < end:
        raise FormatError(
            f"{path}: truncated: {len(buf)} bytes, a header of {ndim} dimensions needs {end}"
        )
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    return found, dims, _IDX_TYPES[code]


def _check_size(have: int, dims: tuple[int, ...], dtype: np.dtype, path: Path, magic: int) -> None:
    want = math.prod(dims) * dtype.itemsize
    if have == want:
        return
    noun = _DATA_NOUN.get(magic, "data")
    shape = " x ".join(map(str, dims))
    if have < want:
        raise FormatError(
            f"{path}: truncated: {have} bytes of {noun}, header promises {want} ({shape})"
        )
    raise FormatError(
        f"{path}: {have} bytes of {noun}, header promises {want} ({shape}); "
        f"{have - want} bytes too many"
    )


def _load_split(
    images_path: Path, labels_path: Path, classes: tuple[str, ...], name: str, split: str
) -> Dataset:
    images = read_idx(images_path, _IMAGES_MAGIC)
    labels = read_idx(labels_path, _LABELS_MAGIC)
    if len(labels) != len(images):
        raise FormatError(
            f"{labels_path}: {len(labels)} labels, but {images_path} holds {len(images)} "
            f"images; expected one label per image"
        )
    outside = labels[labels >= len(classes)]  # uint8, so never below 0
    if outside.size:
        raise FormatError(
            f"{labels_path}: labels must lie in [0, {len(classes)}) for {len(classes)} classes, "
            f"found {outside[0]}"
        )
    # The channel axis makes these (N, H, W, 1) images like every other Dataset.
    return Dataset(images[..., np.newaxis], labels, classes, name, meta={"split": split})
