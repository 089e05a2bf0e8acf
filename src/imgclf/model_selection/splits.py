"""Seeded train/validation(/test) splits and k-fold cross-validation folds.

The lecture's rule: choose hyperparameters on validation data, never on the
test set. These helpers return *indices*, so the same split can select from
images, features and labels alike; stratification (the default) keeps every
class's share the same in each part.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from imgclf._sampling import split_indices
from imgclf._validation import check_int

__all__ = [
    "folds_of",
    "kfold",
    "repeated_train_val_split",
    "train_val_split",
    "train_val_test_split",
]

Fold = tuple[np.ndarray, np.ndarray]


def train_val_split(y, val_size: float | int, *, seed: int = 0, stratify: bool = True) -> Fold:
    """Indices ``(train, val)`` of a seeded split of ``n = len(y)`` samples.

    Parameters
    ----------
    y : array-like, shape (n,)
        Labels (used for stratification and for ``n``).
    val_size : float or int
        Fraction (0 < f < 1) or number of validation samples.
    seed : int
    stratify : bool
        Keep each class's share equal in both parts.

    Examples
    --------
    >>> train, val = train_val_split([0, 0, 0, 0, 1, 1, 1, 1], val_size=0.5)
    >>> len(train), len(val), sorted(np.asarray([0, 0, 0, 0, 1, 1, 1, 1])[val].tolist())
    (4, 4, [0, 0, 1, 1])
    """
    y = np.asarray(y)
    _check_size("val_size", val_size, len(y))
    try:
        return split_indices(y, val_size, seed=seed, stratify=stratify)
    except ValueError as exc:
        raise ValueError(f"cannot split with val_size={val_size!r}: {exc}") from None


def repeated_train_val_split(
    y, val_size: float | int, repeats: int = 5, *, seed: int = 0, stratify: bool = True
) -> list[Fold]:
    """``repeats`` independent seeded splits ``(train, val)`` (repeated hold-out).

    One validation set of 1,000 images measures accuracy to about +-1.5 points
    (the standard error of a proportion near 0.4), and the best of many
    configurations on it is biased upwards by its luck. Averaging over several
    splits of the same sizes shrinks both, without changing what is trained on.
    Split ``i`` is ``train_val_split(y, val_size, seed=seed + i)``, so the first
    is the single split a plain hold-out would use.

    Parameters
    ----------
    y : array-like, shape (n,)
    val_size : float or int
        As in :func:`train_val_split`.
    repeats : int, default=5
    seed : int
    stratify : bool

    Returns
    -------
    list of (ndarray, ndarray)
        Index pairs, usable as ``folds`` anywhere in :mod:`imgclf.model_selection`.

    Examples
    --------
    >>> y = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> splits = repeated_train_val_split(y, 2, repeats=3)
    >>> [len(val) for _, val in splits]
    [2, 2, 2]
    >>> bool((splits[0][1] == train_val_split(y, 2)[1]).all())
    True
    """
    repeats = check_int("repeats", repeats, low=1)
    return [train_val_split(y, val_size, seed=seed + i, stratify=stratify) for i in range(repeats)]


def train_val_test_split(
    y, val_size: float | int, test_size: float | int, *, seed: int = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``(train, val, test)``; sizes as in :func:`train_val_split` (of all ``n``)."""
    y = np.asarray(y)
    _check_size("test_size", test_size, len(y))
    rest, test = train_val_split(y, test_size, seed=seed, stratify=stratify)
    val_count = val_size if isinstance(val_size, int) else round(val_size * len(y))
    train, val = train_val_split(y[rest], val_count, seed=seed + 1, stratify=stratify)
    return rest[train], rest[val], test


def _check_size(name: str, size, n: int) -> None:
    if isinstance(size, float) and 0 < size < 1:
        return
    if isinstance(size, int | np.integer) and not isinstance(size, bool) and 0 < size < n:
        return
    raise ValueError(
        f"{name} must be a fraction in (0, 1) or a count in [1, {n - 1}]; got {size!r}"
    )


def kfold(
    y, folds: int = 5, *, shuffle: bool = True, seed: int | None = 0, stratify: bool = True
) -> list[Fold]:
    """``folds`` pairs of index arrays ``(train, val)``; every sample is validated once.

    Raises a ValueError naming the count when there are fewer samples than
    folds, or, when stratifying, a class with fewer members than folds.
    """
    y = np.asarray(y)
    folds = check_int("folds", folds, low=2)
    if len(y) < folds:
        raise ValueError(f"folds={folds} is more than the {len(y)} samples")
    if stratify:
        _check_class_sizes(y, folds)
        splitter = StratifiedKFold(folds, shuffle=shuffle, random_state=seed if shuffle else None)
    else:
        splitter = KFold(folds, shuffle=shuffle, random_state=seed if shuffle else None)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def _check_class_sizes(y: np.ndarray, folds: int) -> None:
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        small = classes[counts.argmin()].item()
        raise ValueError(
            f"class {small!r} has only {counts.min()} member(s), fewer than "
            f"folds={folds}; use fewer folds or stratify=False"
        )


def folds_of(spec, X, y, *, seed: int | None = 0) -> list[Fold]:
    """Folds from an int (stratified, shuffled k-fold), a scikit-learn splitter, or pairs."""
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
        return kfold(y, int(spec), seed=seed)
    if hasattr(spec, "split"):
        return [(np.asarray(a), np.asarray(b)) for a, b in spec.split(X, y)]
    if isinstance(spec, Iterable):
        pairs = [(np.asarray(a), np.asarray(b)) for a, b in spec]
        if pairs:
            return pairs
    raise ValueError(
        f"folds must be an int >= 2, a scikit-learn splitter or (train, val) "
        f"index pairs; got {spec!r}"
    )
