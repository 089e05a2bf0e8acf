"""Image folders: ``root/<class>/<image>`` and its variants.

Three layouts are recognised, by looking at what the folders contain:

``root/<class>/<image>``
    the ImageNet / torchvision ImageFolder layout; one split, ``"train"``.
``root/train/<class>/<image>`` and ``root/test/<class>/<image>``
    both splits.
``root/<group>/<class>/<image>``
    Omniglot's alphabet/character layout; classes are named ``group/class``.

Images are decoded in parallel on all cores (worker processes: decoding small
JPEGs is dominated by Python-level work that holds the GIL) and cached, see
:mod:`imgclf.datasets.cache`.

Untrusted folders are read within limits:

- Only the raster formats of :data:`FORMATS` are opened (never EPS, which would start
  Ghostscript), and only regular files: a FIFO, device or folder named ``x.png`` is
  refused by name (skipped with ``on_error="skip"``), never waited on.
- A load's decoded pixels are bounded by a budget, :func:`max_decoded_bytes` (2 GiB by
  default; ``max_bytes=`` or ``$IMGCLF_MAX_DECODED_BYTES``). The total comes from
  ``size`` or the first image's header (without ``size`` every image must match it,
  checked from each header) and is refused before any pixel is decoded; so is one image
  whose header promises more than the budget, and a ``size`` that alone exceeds it.
  The result is allocated once and filled as workers finish, so memory stays near it.
- 16- and 32-bit images are scaled to 8 bits, never clipped: see :func:`_to_8bit`.
- File and folder names that are not UTF-8 load; messages and class names show their
  odd bytes as ``\\xNN`` escapes.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import itertools
import math
import os
import re
import signal
import stat
import struct
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from imgclf._progress import progress
from imgclf.datasets import folder_cache
from imgclf.datasets._dataset import Dataset
from imgclf.datasets._listing import Listing, list_split, manifest_digest, shown, subdirs
from imgclf.datasets.store import in_memory_bytes
from imgclf.errors import DatasetError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "image_extensions",
    "image_size",
    "load_folder",
    "looks_like_folder",
    "max_decoded_bytes",
    "read_image",
    "read_image_as",
]

SPLITS = ("train", "test")
_MODES = ("RGB", "L")
_ON_ERROR = ("raise", "skip")
_CHUNK = 500  # files per worker task: large enough to amortise inter-process traffic
_CHUNK_BYTES = 64 << 20  # ... and small enough that a task's pixels stay a small transient
_SCALE_BLOCK = 1 << 20  # pixels scaled at a time when a 32-bit image is brought to 8 bits

#: The raster formats imgclf reads, by Pillow's names (``PPM`` covers PBM, PGM, PPM, PNM and
#: PFM). Pillow is never asked to try another plugin: its EPS reader, for one, runs
#: Ghostscript on whatever file it is given.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")

#: Decoded pixels one folder load (or one image) may produce, in bytes, unless ``max_bytes``
#: or ``$IMGCLF_MAX_DECODED_BYTES`` says otherwise. 2 GiB holds CIFAR-10/100 (0.18 GB),
#: MNIST and Fashion-MNIST (0.06 GB), Tiny ImageNet (1.5 GB, all splits) and ImageNet 64x64
#: subsets of up to ~170,000 images, while a folder of a few highly compressed giant images
#: (six 9000x9000 PNGs are 0.5 MB on disk, 1.5 GB decoded) cannot take a laptop's memory.
DEFAULT_MAX_BYTES = 2 << 30
MAX_BYTES_ENV = "IMGCLF_MAX_DECODED_BYTES"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_decoded_bytes(max_bytes: int | None = None) -> int:
    """The decoded-pixel budget: ``max_bytes``, else ``$IMGCLF_MAX_DECODED_BYTES``, else 2 GiB.

    The variable holds a number of bytes, optionally with a binary unit: ``4G``, ``512M``,
    ``1.5GiB``.

    Raises
    ------
    ValueError
        Naming ``max_bytes`` or the variable, when it is not a positive size.
    """
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
        return max_bytes
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, re.IGNORECASE)
    if match is None or float(match[1]) * _UNITS[match[2].upper()] < 1:
        raise ValueError(
            f"${MAX_BYTES_ENV} must be a positive number of bytes such as 4G or 500000000, "
            f"got {text!r}"
        )
    return int(float(match[1]) * _UNITS[match[2].upper()])


@functools.cache
def _format_by_extension() -> dict[str, str]:
    """File ending -> Pillow format name, for the formats in :data:`FORMATS` only."""
    Image.init()
    return {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in FORMATS}


def image_extensions() -> frozenset[str]:
    """The file endings a folder listing takes as images (those of :data:`FORMATS`)."""
    return frozenset(_format_by_extension())


def _image_extensions() -> frozenset[str]:  # the name older callers use
    return image_extensions()


_shown = shown  # the name this module's messages use


def _list_split(split_root: Path) -> Listing:
    """The split's image files (see :mod:`imgclf.datasets._listing`)."""
    return list_split(split_root, tuple(image_extensions()))


def _split_roots(root: Path) -> dict[str, Path]:
    named = {s: root / s for s in SPLITS if (root / s).is_dir()}
    return named if "train" in named else {"train": root}


def looks_like_folder(path: Path) -> bool:
    """True if ``path`` is a folder with at least one sub-folder (a class or a split)."""
    return path.is_dir() and bool(subdirs(path))


# --- decoding ----------------------------------------------------------------------------


class _MixedSizes(DatasetError):
    """Images of different sizes without ``size``: an error even with ``on_error="skip"``."""


def _open_regular(path: str):
    """A binary file object for ``path``, refusing anything but a regular file.

    Opened non-blocking, so that a FIFO cannot hang the open; for a regular file the
    flag changes nothing.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            what = "a folder" if stat.S_ISDIR(kind) else "a FIFO, socket or device"
            raise DatasetError(f"{_shown(path)}: not a regular file ({what}); expected an image")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def _opened(path: str, data: bytes | None = None):
    """The image at ``path``, opened (header only) by the plugins of :data:`FORMATS`.

    The plugin the file ending names is tried first (trying every plugin in turn costs
    more than decoding a small JPEG); a misnamed file falls back to the others.
    ``data``: the file's bytes, already in memory (``path`` then only names them).
    """
    with io.BytesIO(data) if data is not None else _open_regular(path) as f:
        hint = _format_by_extension().get(os.path.splitext(path)[1].lower())
        try:
            image = Image.open(f, formats=[hint] if hint else FORMATS)
        except UnidentifiedImageError:
            f.seek(0)
            try:
                image = Image.open(f, formats=FORMATS)
            except UnidentifiedImageError:
                raise DatasetError(
                    f"{_shown(path)}: not an image in a format imgclf reads ({', '.join(FORMATS)})"
                ) from None
        with image:
            yield image


# what Pillow raises (or, for bombs, warns) on a file it cannot read
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    MemoryError,  # one image too large for this machine: named, not a traceback
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _one_line(text) -> str:
    """``text`` (or an exception) on one line; an exception without a message by its type."""
    return " ".join(str(text).split()) or type(text).__name__


def _source_bytes(image: Image.Image) -> int:
    """Bytes Pillow will allocate to decode ``image`` at full size (from its header)."""
    per_sample = 4 if image.mode in ("I", "F") else 2 if image.mode.startswith("I;16") else 1
    width, height = image.size
    return width * height * len(image.getbands()) * per_sample


def _check_budget(path: str, image: Image.Image, max_bytes: int) -> None:
    needed = _source_bytes(image)
    if needed > max_bytes:
        width, height = image.size
        raise DatasetError(
            f"{_shown(path)}: a {width}x{height} {image.mode} image takes {needed:,} bytes "
            f"decoded, over the budget of {max_bytes:,} bytes (max_bytes= or ${MAX_BYTES_ENV})"
        )


def _sixteen_bit(image: Image.Image) -> bool:
    """16-bit samples: Pillow's ``I;16`` modes, or ``I`` read from 16-bit raw data (PGM)."""
    if image.mode.startswith("I;16"):
        return True
    rawmodes = [tile.args[0] if isinstance(tile.args, tuple) else tile.args for tile in image.tile]
    return (
        image.mode == "I"
        and bool(rawmodes)
        and all(isinstance(r, str) and r.startswith("I;16") for r in rawmodes)
    )


def _to_8bit(image: Image.Image, path: str) -> Image.Image:
    """High-bit-depth images scaled to 8 bits (never clipped); others unchanged.

    - 16-bit samples (``I;16`` PNG/TIFF, 16-bit PGM): the high byte, ``value >> 8``, as
      Pillow itself reads 16-bit colour PNGs.
    - 32-bit integers (``I``) and floats (``F``): ``round(value * 255 / top)`` with
      ``top = max(image maximum, white)``, white being 255 for integers and 1.0 for
      floats: values in the 8-bit range, or in the usual ``[0, 1]`` of float images, keep
      their meaning; a brighter image is scaled down by its own maximum.
    - Negative or non-finite values are refused, naming the file.
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    sixteen = _sixteen_bit(image)  # before the pixels load: Pillow then forgets the tiles
    values = np.asarray(image)
    if sixteen:
        return Image.fromarray((values >> 8).astype(np.uint8))
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0:
        raise DatasetError(
            f"{_shown(path)}: a {image.mode} image with values from {low} to {high}; "
            "expected non-negative, finite pixel values"
        )
    factor = 255.0 / max(float(high), 255.0 if image.mode == "I" else 1.0)
    out = np.empty(values.shape, dtype=np.uint8)
    rows = max(1, _SCALE_BLOCK // max(values.shape[1], 1))  # a small float64 transient
    for start in range(0, values.shape[0], rows):
        out[start : start + rows] = np.rint(values[start : start + rows] * factor)
    return Image.fromarray(out)


def _decode(
    path: str,
    mode: str,
    size: tuple[int, int] | None,
    max_bytes: int,
    expect: tuple[int, int] | None = None,
    data: bytes | None = None,
) -> np.ndarray:
    """One image as uint8 ``(H, W, C)``; Pillow's errors become a DatasetError.

    ``expect`` is the ``(W, H)`` every image of a folder loaded without ``size`` must have:
    checked from the header, before any pixel is decoded.
    """
    with _decode_errors(path), _opened(path, data) as image:
        return _pixels(image, path, mode, size, max_bytes, expect)


@contextlib.contextmanager
def _decode_errors(path: str):
    """Pillow's (and the decoders') errors as a DatasetError naming ``path``."""
    try:
        yield
    except DatasetError:
        raise
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{_shown(path)}: cannot decode image ({_one_line(exc)})") from exc


def _pixels(image, path: str, mode: str, size, max_bytes: int, expect=None) -> np.ndarray:
    """An opened image's pixels, uint8 ``(H, W, C)`` (see :func:`_decode`)."""
    _check_budget(path, image, max_bytes)
    if expect is not None and image.size != expect:
        raise _MixedSizes(_mixed_sizes(path, image.size, expect))
    if size is not None:
        image.draft(mode, (size[1], size[0]))  # JPEG: decode at a reduced scale
    image = _to_8bit(image, path)
    if image.mode != mode:
        image = image.convert(mode)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)


def _mixed_sizes(path: str, found: tuple[int, int], expect: tuple[int, int]) -> str:
    return (
        f"{_shown(path)}: image is {found[0]}x{found[1]}, but the folder's first image is "
        f"{expect[0]}x{expect[1]}; pass size=(H, W) to resize images of mixed sizes"
    )


@contextlib.contextmanager
def _refusing_bombs():
    """Pillow only *warns* between one and two times its pixel limit: refuse those too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def read_image(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    mode: str = "RGB",
    max_bytes: int | None = None,
    data: bytes | None = None,
) -> np.ndarray:
    """One image file as uint8 ``(H, W, C)``, resized to ``size=(H, W)`` if given.

    Reads the formats of :data:`FORMATS`; 16- and 32-bit images are scaled to 8 bits
    (see :func:`_to_8bit`). Errors (missing, not a regular file, corrupt, over the
    decoded-pixel budget :func:`max_decoded_bytes`) name the file. ``data``: the
    file's bytes, already in memory (an upload); ``path`` then only names them in
    messages, and its ending picks the format tried first.
    """
    budget = max_decoded_bytes(max_bytes)
    size = _check_options(mode, size, "raise", budget)
    with _refusing_bombs():
        return _decode(os.fspath(path), mode, size, budget, data=data)


def read_image_as(
    path: str | os.PathLike,
    *,
    size: tuple[int, int],
    mode: str = "RGB",
    max_bytes: int | None = None,
    data: bytes | None = None,
) -> tuple[np.ndarray, bool]:
    """``(pixels, resized)``: an image read as a dataset of ``size=(H, W)`` images holds it.

    An image of that size is decoded as it is (as a folder of such images loads,
    without ``size``: a size would let Pillow's JPEG draft mode change pixels); one
    of another size is resized as :func:`read_image` does. The file is opened once.
    """
    budget = max_decoded_bytes(max_bytes)
    size = _check_options(mode, size, "raise", budget)
    path = os.fspath(path)
    with _refusing_bombs(), _decode_errors(path), _opened(path, data) as image:
        resized = image.size != (size[1], size[0])
        return _pixels(image, path, mode, size if resized else None, budget), resized


def image_size(path: str | os.PathLike, *, data: bytes | None = None) -> tuple[int, int]:
    """``(H, W)`` of an image file (or of its bytes, ``data``), read from its header only."""
    path = os.fspath(path)
    with _refusing_bombs():
        try:
            with _opened(path, data) as image:
                width, height = image.size
        except DatasetError:
            raise
        except _DECODE_ERRORS as exc:
            raise DatasetError(f"{_shown(path)}: cannot read image ({_one_line(exc)})") from exc
    return height, width


def _header_size(path: str) -> tuple[int, int]:
    """``(W, H)`` from the header, as Pillow gives it."""
    height, width = image_size(path)
    return width, height


def _decode_chunk(paths: list[str], mode: str, size, on_error: str, max_bytes: int, expect):
    """Decode ``paths``; return ``(images, errors)``, None in ``images`` for a skipped file.

    Runs in a worker process, so it returns errors instead of raising them
    for ``on_error="skip"``; for ``"raise"`` the first error propagates.
    """
    images, errors = [], []
    with _refusing_bombs():
        for path in paths:
            try:
                images.append(_decode(path, mode, size, max_bytes, expect))
            except _MixedSizes:
                raise
            except DatasetError as exc:
                if on_error == "raise":
                    raise
                images.append(None)
                errors.append(_one_line(exc))
    return images, errors


def _decode_all(files: list[str], plan: _Plan, on_error: str, workers: int | None, sinks):
    """Decode ``files``, appending each chunk's images to every sink (an array in memory, a
    cache store on disk); ``(kept, errors)``. Chunks are small in bytes too, so the
    transient beside the sinks is small."""
    per_chunk = max(1, min(_CHUNK, _CHUNK_BYTES // max(plan.image_bytes, 1)))
    chunks = [files[i : i + per_chunk] for i in range(0, len(files), per_chunk)]
    n = len(chunks)
    args = ([plan.mode] * n, [plan.size] * n, [on_error] * n, [plan.max_bytes] * n)
    args += ([plan.expect] * n,)
    workers = min(workers or os.cpu_count() or 1, n)
    if workers <= 1:
        results = map(_decode_chunk, chunks, *args)
        return _gather(progress(results, n, "Decoding images"), files, plan, sinks)
    with ProcessPoolExecutor(workers, initializer=_ignore_interrupts) as pool:
        results = _in_order_ahead(pool, _decode_chunk, 2 * workers, chunks, *args)
        return _gather(progress(results, n, "Decoding images"), files, plan, sinks)


def _in_order_ahead(pool, fn, ahead: int, *iterables):
    """``pool.map(fn, *iterables)`` with at most ``ahead`` tasks submitted and not yet taken.

    ``pool.map`` submits every task at once, so when the sinks (a compressed cache store)
    are slower than the workers, decoded chunks pile up in the parent: 2 GB of them under a
    1.5 GiB cap was a MemoryError. Here a task is submitted only as one is taken.
    """
    tasks, pending = zip(*iterables, strict=True), collections.deque()
    try:
        for task in itertools.islice(tasks, ahead):
            pending.append(pool.submit(fn, *task))
        while pending:
            result = pending.popleft().result()
            for task in itertools.islice(tasks, 1):
                pending.append(pool.submit(fn, *task))
            yield result
    finally:
        for future in pending:
            future.cancel()


def _ignore_interrupts() -> None:
    """Decoding workers leave Ctrl-C to the parent, which stops them (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _gather(results, files: list[str], plan: _Plan, sinks) -> tuple[np.ndarray, list[str]]:
    """Each chunk's decoded images, in file order and without the skipped ones, to ``sinks``."""
    kept = np.zeros(len(files), dtype=bool)
    errors, position = [], 0
    for chunk_images, chunk_errors in results:
        good = []
        for image in chunk_images:
            if image is not None:
                if image.shape != plan.shape:  # only if a file changed under us
                    found = (image.shape[1], image.shape[0])
                    raise _MixedSizes(_mixed_sizes(files[position], found, plan.expect or found))
                good.append(image)
                kept[position] = True
            position += 1
        if good:
            block = np.stack(good)
            for sink in sinks:
                sink.append(block)
        errors += chunk_errors
    return kept, errors


# --- loading ----------------------------------------------------------------------------


def _check_options(mode: str, size, on_error: str, max_bytes: int) -> tuple[int, int] | None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    if size is None:
        return None
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (height, width) with positive sides, got {size!r}")
    needed = size[0] * size[1] * (3 if mode == "RGB" else 1)
    if needed > max_bytes:  # refused before any file is opened
        raise ValueError(
            f"size={size[0]}x{size[1]} makes {needed:,} bytes per {mode} image, over the "
            f"decoded-pixel budget of {max_bytes:,} bytes (max_bytes= or ${MAX_BYTES_ENV})"
        )
    return size  # type: ignore[return-value]


@dataclass(frozen=True)
class _Plan:
    """What decoding one split will produce, known before any pixel is decoded.

    ``expect`` is the ``(W, H)`` every image must have when no ``size`` is given (the
    first readable header's); ``shape`` is one image's ``(H, W, C)``.
    """

    mode: str
    size: tuple[int, int] | None
    expect: tuple[int, int] | None
    max_bytes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        channels = 3 if self.mode == "RGB" else 1
        if self.size is not None:
            return (*self.size, channels)
        width, height = self.expect or (0, 0)
        return height, width, channels

    @property
    def image_bytes(self) -> int:
        return math.prod(self.shape)


def _plan(listing: Listing, mode: str, size, on_error: str, max_bytes: int) -> _Plan:
    """The split's plan; without ``size``, the first image's header sets every image's size
    (with ``on_error="skip"``, the first whose header can be read)."""
    if size is not None:
        return _Plan(mode, size, None, max_bytes)
    for path in listing.first_files():
        try:
            with _refusing_bombs():
                return _Plan(mode, None, _header_size(path), max_bytes)
        except DatasetError:
            if on_error == "raise":
                raise
    return _Plan(mode, None, None, max_bytes)


def _check_total(root: Path, listings: dict[str, Listing], plans: dict[str, _Plan]) -> None:
    """Refuse a load whose decoded pixels would exceed the budget, before decoding any."""
    total = sum(len(listings[s]) * plans[s].image_bytes for s in listings)
    budget = next(iter(plans.values())).max_bytes
    if total > budget:
        shapes = ", ".join(
            f"{len(listings[s]):,} {s} images of {'x'.join(map(str, plans[s].shape))}"
            for s in listings
        )
        raise DatasetError(
            f"{_shown(root)}: decoding would take {total:,} bytes ({shapes}), over the "
            f"decoded-pixel budget of {budget:,} bytes; pass size=(H, W) for smaller images, "
            f"or raise the budget with max_bytes= or ${MAX_BYTES_ENV}"
        )


def _build_split(
    name: str, split: str, listing: Listing, plan: _Plan, on_error, workers, entry, in_memory
) -> Dataset | None:
    """Decode one split into memory (if ``in_memory``) and into the cache ``entry``; its
    Dataset, or None when its images live only in the entry (read back lazily)."""
    memory = folder_cache.MemorySink(len(listing), plan.shape) if in_memory else None
    sinks = [sink for sink in (memory, entry.sink(split, plan.shape)) if sink is not None]
    kept, errors = _decode_all(listing.files, plan, on_error, workers, sinks)
    if not kept.any():
        raise DatasetError(f"{name}: none of the {len(listing)} images could be decoded")
    labels = listing.labels[kept]
    entry.finish_split(split, labels, listing.classes, errors)
    if memory is None:
        return None
    return Dataset(memory.images, labels, listing.classes, name, meta={"skipped": errors})


def load_folder(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    mode: str = "RGB",
    on_error: str = "raise",
    use_cache: bool = True,
    workers: int | None = None,
    max_bytes: int | None = None,
) -> dict[str, Dataset]:
    """Load an image folder, decoding in parallel and caching the result.

    Parameters
    ----------
    path : path
        The folder, in one of the layouts of this module's docstring.
    size : (int, int), optional
        Resize every image to ``(H, W)``. Needed when images differ in size.
    mode : {"RGB", "L"}
        Colour (C=3) or greyscale (C=1).
    on_error : {"raise", "skip"}
        What to do with a file that fails to decode. Skipped files are listed
        in ``dataset.meta["skipped"]`` and reported as a warning.
    use_cache : bool
        Read and write the decoded-image cache (a Zarr store, written while decoding;
        :mod:`imgclf.datasets.folder_cache`). A folder whose pixels exceed
        ``$IMGCLF_IN_MEMORY_BYTES`` (default 2 GiB) is loaded *lazily* from it: its
        images are a :class:`~imgclf.datasets.store.StoredArray` read in chunks, so
        it needs the cache.
    workers : int, optional
        Decoding processes; defaults to the number of cores.
    max_bytes : int, optional
        The decoded-pixel budget: the most bytes of pixels the load (all splits) may
        produce, and any one image may take while decoded. Default
        ``$IMGCLF_MAX_DECODED_BYTES``, else :data:`DEFAULT_MAX_BYTES` (2 GiB). The total
        is computed from ``size`` or the first image's header before decoding starts.

    Returns
    -------
    dict of str to Dataset
        ``{"train": ...}`` or ``{"train": ..., "test": ...}``; images are uint8
        ``(N, H, W, C)``.

    Raises
    ------
    DatasetError
        Naming the folder or file: no classes, an image that cannot be read (with
        ``on_error="raise"``), images of mixed sizes without ``size``, or more decoded
        pixels than the budget.
    """
    root = Path(path)
    budget = max_decoded_bytes(max_bytes)
    size = _check_options(mode, size, on_error, budget)
    if not root.is_dir():
        raise DatasetError(f"{_shown(root)}: not a folder")
    listings = {split: _list_split(folder) for split, folder in _split_roots(root).items()}
    plans = {s: _plan(lst, mode, size, on_error, budget) for s, lst in listings.items()}
    _check_total(root, listings, plans)
    options = {"size": size, "mode": mode, "on_error": on_error}
    digest = manifest_digest(listings)
    path = folder_cache.entry_path(root, options, digest)
    names = {s: f"{_shown(root)}:{s}" for s in listings}
    expected = {s: (lst.classes, plans[s].shape, len(lst)) for s, lst in listings.items()}
    if use_cache and (splits := folder_cache.read_entry(path, digest, expected, names)):
        return splits
    total = sum(len(listings[s]) * plans[s].image_bytes for s in listings)
    in_memory = total <= in_memory_bytes()
    if not in_memory and not use_cache:
        raise DatasetError(
            f"{_shown(root)}: {total:,} bytes of pixels are more than the in-memory limit of "
            f"{in_memory_bytes():,} (${'IMGCLF_IN_MEMORY_BYTES'}); such a folder is read from "
            "its cache store, so load it with use_cache=True"
        )
    with folder_cache.Entry(path, digest, enabled=use_cache) as entry:
        splits = {
            s: _build_split(names[s], s, lst, plans[s], on_error, workers, entry, in_memory)
            for s, lst in listings.items()
        }
        published = entry.publish()
    if not in_memory:
        splits = _read_back(path, digest, expected, names, published, entry)
    else:
        folder_cache.warn_unwritten(entry, _shown(path))
    _warn_skipped(splits)
    return splits


def _read_back(path: Path, digest: str, expected, names, published: bool, entry):
    """The splits of a folder too large for memory, lazily from the entry just written."""
    splits = folder_cache.read_entry(path, digest, expected, names) if published else None
    if splits is None:
        reason = _one_line(entry.failed) if entry.failed else "it could not be read back"
        raise DatasetError(f"cannot write the image store {_shown(path)}: {reason}")
    for ds in splits.values():
        ds.meta.pop("cached", None)  # decoded now, not found in the cache
    return splits


def _warn_skipped(splits: dict[str, Dataset]) -> None:
    skipped = [_one_line(msg) for ds in splits.values() for msg in ds.meta["skipped"]]
    if skipped:  # one line, so that the command line can print it as one
        shown = "; ".join(skipped[:5]) + (
            f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        )
        warnings.warn(
            f"skipped {len(skipped)} image(s) that failed to decode: {shown}", stacklevel=3
        )
