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
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from imgclf._progress import progress
from imgclf.datasets import cache
from imgclf.datasets._dataset import Dataset
from imgclf.errors import DatasetError

__all__ = ["image_size", "load_folder", "looks_like_folder", "read_image"]

SPLITS = ("train", "test")
_MODES = ("RGB", "L")
_ON_ERROR = ("raise", "skip")
_CHUNK = 500  # files per worker task: large enough to amortise inter-process traffic


@functools.cache
def _image_extensions() -> frozenset[str]:
    """Every file ending some installed Pillow plugin can read."""
    return frozenset(Image.registered_extensions())


@dataclass(frozen=True)
class _Listing:
    """The image files of one split, grouped by class, in a fixed order.

    ``manifest`` has a line per file (name, size, mtime) for the cache key; the
    stat calls come from the directory scan, so listing and manifest share one pass.
    """

    classes: tuple[str, ...]
    files: list[str]
    labels: np.ndarray
    manifest: list[str]


# --- finding files -----------------------------------------------------------------------


def _subdirs(folder: Path) -> list[os.DirEntry]:
    return sorted(
        (e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")),
        key=lambda e: e.name,
    )


def _image_entries(folder: str | Path) -> list[os.DirEntry]:
    extensions = _image_extensions()
    entries = [
        e
        for e in os.scandir(folder)
        if not e.name.startswith(".")
        and os.path.splitext(e.name)[1].lower() in extensions
        and e.is_file()
    ]
    return sorted(entries, key=lambda e: e.name)


def _class_folders(split_root: Path) -> list[tuple[str, Path]]:
    """``(class name, folder)`` pairs; a folder of folders is a group (Omniglot)."""
    found = []
    for entry in _subdirs(split_root):
        inner = _subdirs(Path(entry.path))
        if inner and not _image_entries(entry.path):
            found += [(f"{entry.name}/{sub.name}", Path(sub.path)) for sub in inner]
        else:
            found.append((entry.name, Path(entry.path)))
    return found


def _list_split(split_root: Path) -> _Listing:
    class_folders = _class_folders(split_root)
    if not class_folders:
        raise DatasetError(
            f"{split_root}: no class folders found; expected {split_root}/<class>/<image>"
        )
    files, labels, manifest = [], [], []
    for label, (name, folder) in enumerate(class_folders):
        entries = _image_entries(folder)
        if not entries:
            raise DatasetError(f"{folder}: class folder {name!r} holds no images")
        files += [e.path for e in entries]
        labels += [label] * len(entries)
        manifest += [_manifest_line(name, e) for e in entries]
    classes = tuple(name for name, _ in class_folders)
    return _Listing(classes, files, np.asarray(labels, dtype=np.int64), manifest)


def _manifest_line(class_name: str, entry: os.DirEntry) -> str:
    stat = entry.stat()
    return f"{class_name}/{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}"


def _split_roots(root: Path) -> dict[str, Path]:
    named = {s: root / s for s in SPLITS if (root / s).is_dir()}
    return named if "train" in named else {"train": root}


def looks_like_folder(path: Path) -> bool:
    """True if ``path`` is a folder with at least one sub-folder (a class or a split)."""
    return path.is_dir() and bool(_subdirs(path))


# --- decoding ----------------------------------------------------------------------------


def _open(path: str) -> Image.Image:
    """Open with the plugin the file ending names first: trying every plugin in turn
    costs more than decoding a small JPEG. A misnamed file falls back to all of them."""
    hint = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    try:
        return Image.open(path, formats=[hint] if hint else None)
    except UnidentifiedImageError:
        return Image.open(path)


# what Pillow raises (or, for bombs, warns) on a file it cannot read
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _decode(path: str, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image as uint8 ``(H, W, C)``; Pillow's errors become a DatasetError."""
    try:
        with _open(path) as image:
            if size is not None:
                image.draft(mode, (size[1], size[0]))  # JPEG: decode at a reduced scale
            if image.mode != mode:
                image = image.convert(mode)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{path}: cannot decode image ({exc})") from exc
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)


@contextlib.contextmanager
def _refusing_bombs():
    """Pillow only *warns* between one and two times its pixel limit: refuse those too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def read_image(
    path: str | os.PathLike, *, size: tuple[int, int] | None = None, mode: str = "RGB"
) -> np.ndarray:
    """One image file as uint8 ``(H, W, C)``, resized to ``size=(H, W)`` if given.

    Any format Pillow reads; errors (missing, corrupt, too large) name the file.
    """
    size = _check_options(mode, size, "raise")
    with _refusing_bombs():
        return _decode(str(path), mode, size)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header: no pixel is decoded."""
    with _refusing_bombs():
        try:
            with _open(str(path)) as image:
                width, height = image.size
        except _DECODE_ERRORS as exc:
            raise DatasetError(f"{path}: cannot read image ({exc})") from exc
    return height, width


def _decode_chunk(paths: list[str], mode: str, size, on_error: str):
    """Decode ``paths``; return ``(images, kept mask, errors)``.

    Runs in a worker process, so it returns errors instead of raising them
    for ``on_error="skip"``; for ``"raise"`` the first error propagates.
    """
    images, kept, errors = [], [], []
    with _refusing_bombs():
        for path in paths:
            try:
                images.append(_decode(path, mode, size))
                kept.append(True)
            except DatasetError as exc:
                if on_error == "raise":
                    raise
                kept.append(False)
                errors.append(str(exc))
    return images, kept, errors


def _stack(images: list[np.ndarray], files: list[str]) -> np.ndarray:
    first = images[0].shape
    for image, path in zip(images, files, strict=True):
        if image.shape != first:
            raise DatasetError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, but {files[0]} is "
                f"{first[1]}x{first[0]}; pass size=(H, W) to resize images of mixed sizes"
            )
    return np.stack(images)


def _decode_all(files: list[str], mode: str, size, on_error: str, workers: int | None):
    chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    args = ([mode] * len(chunks), [size] * len(chunks), [on_error] * len(chunks))
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    if workers <= 1:
        results = map(_decode_chunk, chunks, *args)
        return _gather(progress(results, len(chunks), "Decoding images"))
    with ProcessPoolExecutor(workers, initializer=_ignore_interrupts) as pool:
        results = pool.map(_decode_chunk, chunks, *args)
        return _gather(progress(results, len(chunks), "Decoding images"))


def _ignore_interrupts() -> None:
    """Decoding workers leave Ctrl-C to the parent, which stops them (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _gather(results):
    images, kept, errors = [], [], []
    for chunk_images, chunk_kept, chunk_errors in results:
        images += chunk_images
        kept += chunk_kept
        errors += chunk_errors
    return images, np.asarray(kept, dtype=bool), errors


# --- loading -----------------------------------------------------------------------------


def _check_options(mode: str, size, on_error: str) -> tuple[int, int] | None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    if size is None:
        return None
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (height, width) with positive sides, got {size!r}")
    return size  # type: ignore[return-value]


def _build_split(name: str, listing: _Listing, mode, size, on_error, workers) -> Dataset:
    images, kept, errors = _decode_all(listing.files, mode, size, on_error, workers)
    files = [f for f, k in zip(listing.files, kept, strict=True) if k]
    if not images:
        raise DatasetError(f"{name}: none of the {len(listing.files)} images could be decoded")
    return Dataset(
        _stack(images, files), listing.labels[kept], listing.classes, name, meta={"skipped": errors}
    )


def load_folder(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    mode: str = "RGB",
    on_error: str = "raise",
    use_cache: bool = True,
    workers: int | None = None,
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
        Read and write the decoded-image cache.
    workers : int, optional
        Decoding processes; defaults to the number of cores.

    Returns
    -------
    dict of str to Dataset
        ``{"train": ...}`` or ``{"train": ..., "test": ...}``; images are uint8
        ``(N, H, W, C)``.
    """
    root = Path(path)
    size = _check_options(mode, size, on_error)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    listings = {split: _list_split(folder) for split, folder in _split_roots(root).items()}
    options = {"size": size, "mode": mode, "on_error": on_error}
    digest = cache.manifest_digest(
        [f"{split}/{line}" for split, listing in listings.items() for line in listing.manifest]
    )
    entry = cache.entry_path(root, options)
    cached = cache.read_entry(entry, digest) if use_cache else None
    if cached is not None:
        return _from_cache(root, *cached)
    splits = {
        s: _build_split(f"{root}:{s}", lst, mode, size, on_error, workers)
        for s, lst in listings.items()
    }
    _warn_skipped(splits)
    if use_cache:
        _to_cache(entry, digest, splits)
    return splits


def _warn_skipped(splits: dict[str, Dataset]) -> None:
    skipped = [msg for ds in splits.values() for msg in ds.meta["skipped"]]
    if skipped:  # one line, so that the command line can print it as one
        shown = "; ".join(skipped[:5]) + (
            f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        )
        warnings.warn(
            f"skipped {len(skipped)} image(s) that failed to decode: {shown}", stacklevel=3
        )


def _to_cache(entry: Path, digest: str, splits: dict[str, Dataset]) -> None:
    header = {
        "splits": {
            s: {"classes": list(ds.classes), "skipped": ds.meta["skipped"]}
            for s, ds in splits.items()
        }
    }
    arrays = {}
    for s, ds in splits.items():
        arrays[f"{s}_images"], arrays[f"{s}_labels"] = ds.images, ds.labels
    try:
        cache.write_entry(entry, digest, header, arrays)
    except OSError as exc:  # a read-only or full cache disk must not fail the load
        warnings.warn(f"could not write the image cache {entry}: {exc}", stacklevel=3)


def _from_cache(root: Path, header: dict, arrays: dict) -> dict[str, Dataset]:
    return {
        s: Dataset(
            arrays[f"{s}_images"],
            arrays[f"{s}_labels"],
            tuple(h["classes"]),
            f"{root}:{s}",
            meta={"skipped": h["skipped"], "cached": True},
        )
        for s, h in header["splits"].items()
    }
