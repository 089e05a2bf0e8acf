"""Getting labelled images in: one :class:`Dataset` per split.

:func:`load` turns a *spec* string into ``{"train": Dataset, "test": Dataset}``
(a folder without splits gives ``"train"`` only). Specs:

==========================  ====================================================
``digits``                  scikit-learn's 8x8 digits, fixed train/test split
``toy:NAME``                2D points: ``blobs``, ``xor``, ``ring``, ``three-modes``
``cifar10:PATH``            CIFAR-10, python format: folder or ``.tar.gz``
``cifar100:PATH``           CIFAR-100, python format (fine and coarse labels)
``mnist:PATH``              MNIST or Fashion-MNIST IDX files, raw or ``.gz``
``folder:PATH``             an image folder (see :mod:`imgclf.datasets.folder`)
``PATH``                    any of the above, detected from what is there
==========================  ====================================================

Every command of the command line accepts the same specs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgclf.datasets._dataset import Dataset
from imgclf.datasets.builtin import TOY_SETS, load_digits, load_toy
from imgclf.datasets.cifar import detect_cifar, load_cifar10, load_cifar100
from imgclf.datasets.folder import load_folder, looks_like_folder
from imgclf.datasets.mnist import detect_mnist, load_mnist
from imgclf.errors import DatasetError

__all__ = [
    "Dataset",
    "load",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_folder",
    "load_mnist",
    "load_toy",
]

_PATH_LOADERS: dict[str, Callable[..., dict[str, Dataset]]] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "mnist": load_mnist,
    "folder": load_folder,
}
_FOLDER_OPTIONS = ("size", "mode", "on_error", "use_cache", "workers", "max_bytes")
_IMAGE_OPTIONS = ("size", "mode", "on_error")  # what changes the pixels a folder gives


def load(spec: str, *, seed: int = 0, **folder_options) -> dict[str, Dataset]:
    """Load the dataset named by ``spec``.

    Parameters
    ----------
    spec : str
        One of the forms in this module's docstring.
    seed : int
        Seed of the toy sets' sampling.
    **folder_options
        ``size``, ``mode``, ``on_error``, ``use_cache``, ``workers``, ``max_bytes``
        (the decoded-pixel budget): passed to
        :func:`~imgclf.datasets.folder.load_folder` for image folders.

    Returns
    -------
    dict of str to Dataset
        Split name (``"train"``, ``"test"``) to its images and labels.

    Examples
    --------
    >>> sorted(load("toy:ring")), len(load("digits")["test"])
    (['test', 'train'], 360)
    """
    unknown = set(folder_options) - set(_FOLDER_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; accepted: {_FOLDER_OPTIONS}")
    if not spec.strip():
        raise DatasetError("the dataset spec is empty; " + _SPECS)
    scheme, _, rest = spec.partition(":")
    if spec == "digits" or scheme == "toy":
        _check_no_folder_options(spec, folder_options)
        return load_digits() if spec == "digits" else load_toy(rest, seed=seed)
    if scheme in _PATH_LOADERS and rest:
        return _load_path(scheme, Path(rest), folder_options)
    return _load_path(_detect(Path(spec)), Path(spec), folder_options)


def _load_path(kind: str, path: Path, folder_options: dict) -> dict[str, Dataset]:
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if kind != "folder":
        _check_no_folder_options(f"{path} ({kind})", folder_options)
    options = {k: v for k, v in folder_options.items() if v is not None}
    return _PATH_LOADERS[kind](path, **options)


_SPECS = (
    f"use digits, toy:{{{','.join(TOY_SETS)}}}, cifar10:PATH, cifar100:PATH, mnist:PATH or a PATH"
)


def _check_no_folder_options(source: str, folder_options: dict) -> None:
    """Resizing and colour modes apply to image folders; saying so beats ignoring them."""
    given = sorted(k for k, v in folder_options.items() if v is not None and k in _IMAGE_OPTIONS)
    if given:
        raise DatasetError(
            f"{source}: option(s) {', '.join(given)} apply to image folders only; "
            f"this dataset's images are used as they are"
        )


def _detect(path: Path) -> str:
    """The format of ``path``: ``cifar10``, ``cifar100``, ``mnist`` or ``folder``."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder, and not a dataset spec; {_SPECS}")
    kind = detect_cifar(path) or ("mnist" if detect_mnist(path) else None)
    if kind:
        return kind
    if looks_like_folder(path):
        return "folder"
    raise DatasetError(
        f"{path}: not a dataset: found no CIFAR batches, no MNIST IDX files and no "
        f"class folders of images"
    )
