"""Built-in datasets that need no download: digits and the 2D toy sets.

``digits`` is scikit-learn's copy of the UCI handwritten digits (8x8 pixels,
1,797 images), rescaled from 0..16 to 0..255 and split once, stratified, with
a fixed seed: 1,437 training and 360 test images.

The toy sets are the lecture's hard cases for a linear classifier, as 2D
points in ``Dataset.points`` (float32, shape ``(N, 2)``):

``blobs``        three Gaussian blobs (linearly separable: the easy case)
``xor``          first and third quadrants against second and fourth
``ring``         1 <= ||x|| <= 2 against everything else
``three-modes``  three small disks against everything else
"""

from __future__ import annotations

import numpy as np

from imgclf.datasets._dataset import Dataset
from imgclf.errors import DatasetError

__all__ = ["TOY_SETS", "load_digits", "load_toy"]

DIGITS_TEST_SIZE = 360
DIGITS_SEED = 0


def load_digits() -> dict[str, Dataset]:
    """scikit-learn's 8x8 digits as uint8 images ``(N, 8, 8, 1)``, split train/test.

    Examples
    --------
    >>> splits = load_digits()
    >>> len(splits["train"]), len(splits["test"]), splits["train"].image_shape
    (1437, 360, (8, 8, 1))
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[..., None]
    classes = tuple(str(c) for c in bunch.target_names)
    train, test = train_test_split(
        np.arange(len(images)),
        test_size=DIGITS_TEST_SIZE,
        stratify=bunch.target,
        random_state=DIGITS_SEED,
    )
    full = Dataset(images, bunch.target, classes, "digits")
    return {
        "train": _renamed(full.subset(train), "digits:train"),
        "test": _renamed(full.subset(test), "digits:test"),
    }


def _renamed(ds: Dataset, name: str) -> Dataset:
    return Dataset(ds.images, ds.labels, ds.classes, name)


# --- 2D toy sets -------------------------------------------------------------------------


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]])
    labels = rng.integers(0, 3, n)
    return centres[labels] + rng.normal(scale=0.7, size=(n, 2)), labels


def _xor(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    points = rng.uniform(-2, 2, size=(n, 2))
    return points, (points[:, 0] * points[:, 1] < 0).astype(np.int64)


def _ring(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    points = rng.uniform(-3, 3, size=(n, 2))
    radius = np.linalg.norm(points, axis=1)
    return points, ((radius >= 1) & (radius <= 2)).astype(np.int64)


_MODES = np.array([[-1.8, -1.2], [1.8, -1.2], [0.0, 1.9]])


def _three_modes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Half the points in the three disks, half outside, so both classes are well represented.
    inside = _MODES[rng.integers(0, 3, n // 2)] + _in_disk(rng, n // 2, 0.7)
    outside = rng.uniform(-3, 3, size=(4 * n, 2))
    far = np.linalg.norm(outside[:, None, :] - _MODES[None], axis=2).min(axis=1) > 0.7
    outside = outside[far][: n - n // 2]
    labels = np.r_[np.ones(len(inside), np.int64), np.zeros(len(outside), np.int64)]
    order = rng.permutation(n)
    return np.vstack([inside, outside])[order], labels[order]


def _in_disk(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi, n)
    r = radius * np.sqrt(rng.uniform(0, 1, n))
    return np.c_[r * np.cos(angle), r * np.sin(angle)]


TOY_SETS = {
    "blobs": (_blobs, ("A", "B", "C")),
    "xor": (_xor, ("quadrants 1+3", "quadrants 2+4")),
    "ring": (_ring, ("rest", "ring")),
    "three-modes": (_three_modes, ("rest", "modes")),
}


def load_toy(name: str, *, n: int = 400, seed: int = 0) -> dict[str, Dataset]:
    """A 2D toy set, ``n`` points per split, reproducible from ``seed``.

    Examples
    --------
    >>> xor = load_toy("xor", n=10)["train"]
    >>> xor.points.shape, xor.classes
    ((10, 2), ('quadrants 1+3', 'quadrants 2+4'))
    """
    if name not in TOY_SETS:
        raise DatasetError(f"unknown toy set {name!r}; choose one of {sorted(TOY_SETS)}")
    make, classes = TOY_SETS[name]
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "test"):
        points, labels = make(rng, n)
        splits[split] = Dataset(None, labels, classes, f"toy:{name}:{split}", points=points)
    return splits
