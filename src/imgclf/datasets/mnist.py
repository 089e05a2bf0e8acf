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

The header says how many bytes follow, so that is all that is read: a raw
file's size is compared with it before reading; a gzip stream is inflated
to at most that (and a little more, to report trailing bytes), so a small
``.gz`` cannot inflate to gigabytes. Before anything is allocated the
header's size is bounded by what the file can hold (its size, or 1032 times
it for gzip: deflate's largest ratio) and by :data:`MAX_IDX_BYTES`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgclf.datasets._dataset import Dataset
from imgclf.errors import DatasetError, FormatError

__all__ = ["MAX_IDX_BYTES", "detect_mnist", "load_mnist", "read_idx"]

# The largest IDX file read: 1 GiB, twice EMNIST's largest (byclass training
# images, 697,932 x 28 x 28 = 547 MB; MNIST's is 47 MB).
MAX_IDX_BYTES = 1 << 30
# Deflate's largest ratio of output to input, so what a gzip file can hold.
_GZIP_RATIO = 1032
# Bytes read past the promised data to say how many too many there are.
_TRAILING = 1 << 16

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
    with _open(path) as (stream, capacity, exact):
        found, dims, dtype = _header(stream, path, magic)
        want = math.prod(dims) * dtype.itemsize
        _check_capacity(want, capacity - 4 - 4 * len(dims), exact, dims, path, found)
        buf = _read_exactly(stream, want, path, found, dims)
    values = np.frombuffer(buf, dtype).reshape(dims)  # writable: buf is a bytearray
    return values.astype(dtype.newbyteorder("="), copy=False)


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


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tuple[gzip.GzipFile | io.BufferedReader, int, bool]]:
    """``(stream of the IDX bytes, the most bytes it can hold, whether exactly)`` for ``path``."""
    try:
        with open(path, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            # Judge by content, not name: browsers often gunzip a download but keep
            # its .gz name, and an IDX file never starts with the gzip magic bytes.
            if raw.peek(2)[:2] != _GZIP_MAGIC:
                yield raw, size, True
                return
            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream, size * _GZIP_RATIO, False
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise FormatError(
            f"{path}: corrupt gzip data ({exc}); expected a complete gzip stream"
        ) from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


# --- contents ------------------------------------------------------------------


def _header(stream, path: Path, expected: int | None) -> tuple[int, tuple[int, ...], np.dtype]:
    """``(magic number, dimensions, element type)`` read from the start of ``stream``."""
    buf = stream.read(4)
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
    buf += stream.read(4 * ndim)
    end = 4 + 4 * ndim
    if len(buf) < end:
        raise FormatError(
            f"{path}: truncated: {len(buf)} bytes, a header of {ndim} dimensions needs {end}"
        )
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    return found, dims, _IDX_TYPES[code]


def _check_capacity(
    want: int, capacity: int, exact: bool, dims: tuple[int, ...], path: Path, magic: int
) -> None:
    """Refuse a header promising more than the file can hold or MAX_IDX_BYTES, unread.

    ``capacity`` is the size of the data after the header when ``exact`` (a raw
    file), else the most it can be (a gzip file).
    """
    shape = _shape(dims)
    if exact and capacity != want:
        _wrong_size(capacity, want, shape, path, magic)
    if want > MAX_IDX_BYTES:
        raise FormatError(
            f"{path}: header promises {want:,} bytes ({shape}), more than the "
            f"{MAX_IDX_BYTES:,} imgclf reads from an IDX file"
        )
    if want > capacity:
        raise FormatError(
            f"{path}: truncated: header promises {want:,} bytes of {_noun(magic)} ({shape}), "
            f"more than the file can hold ({max(capacity, 0):,})"
        )


def _read_exactly(stream, want: int, path: Path, magic: int, dims: tuple[int, ...]) -> bytearray:
    """The ``want`` bytes after the header, refusing fewer or more (reading little beyond)."""
    buf = bytearray(want)
    view, have = memoryview(buf), 0
    while have < want:
        n = stream.readinto(view[have:])
        if not n:
            break
        have += n
    shape, noun = _shape(dims), _noun(magic)
    if have < want:
        _wrong_size(have, want, shape, path, magic)
    # Reading to the end also checks a gzip stream's CRC; a bomb stops here.
    extra = len(stream.read(_TRAILING + 1))
    if extra > _TRAILING:
        raise FormatError(
            f"{path}: more than {want + _TRAILING:,} bytes of {noun}, header promises {want} "
            f"({shape}); refused without reading the rest"
        )
    if extra:
        _wrong_size(want + extra, want, shape, path, magic)
    return buf


def _wrong_size(have: int, want: int, shape: str, path: Path, magic: int) -> None:
    noun = _noun(magic)
    if have < want:
        raise FormatError(
            f"{path}: truncated: {have} bytes of {noun}, header promises {want} ({shape})"
        )
    raise FormatError(
        f"{path}: {have} bytes of {noun}, header promises {want} ({shape}); "
        f"{have - want} bytes too many"
    )


def _shape(dims: tuple[int, ...]) -> str:
    return " x ".join(map(str, dims))


def _noun(magic: int) -> str:
    return _DATA_NOUN.get(magic, "data")


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
    if not len(images) or 0 in images.shape[1:]:
        # A valid IDX file, but no images to make a Dataset of.
        raise FormatError(
            f"{images_path}: {' x '.join(map(str, images.shape))} images, expected at least one "
            f"image of at least 1 x 1 pixels"
        )
    outside = labels[labels >= len(classes)]  # uint8, so never below 0
    if outside.size:
        raise FormatError(
            f"{labels_path}: labels must lie in [0, {len(classes)}) for {len(classes)} classes, "
            f"found {outside[0]}"
        )
    # The channel axis makes these (N, H, W, 1) images like every other Dataset.
    return Dataset(images[..., np.newaxis], labels, classes, name, meta={"split": split})
