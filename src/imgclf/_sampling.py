"""Seeded, stratified sampling of sample indices: the one primitive every split uses.

It sits below :mod:`imgclf.datasets` (``Dataset.subset(n)``) and
:mod:`imgclf.model_selection` (validation splits), so both draw the same
samples for the same seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["split_indices"]


def split_indices(
    y, size: float | int, *, seed: int = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices ``(rest, chosen)`` of ``n = len(y)``, ``chosen`` of ``size`` samples.

    ``size`` is a fraction in (0, 1) or a count in [1, n - 1]. Stratified,
    each class keeps its share in both parts (scikit-learn's
    ``train_test_split``, seeded).

    Examples
    --------
    >>> rest, chosen = split_indices([0, 0, 0, 0, 1, 1, 1, 1], 4)
    >>> len(rest), np.asarray([0, 0, 0, 0, 1, 1, 1, 1])[chosen].tolist()
    (4, [0, 0, 1, 1])
    """
    from sklearn.model_selection import train_test_split  # heavy: imported when used

    y = np.asarray(y)
    try:
        rest, chosen = train_test_split(
            np.arange(len(y)), test_size=size, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as exc:  # e.g. a class with a single member cannot be stratified
        raise ValueError(f"cannot take {size!r} of {len(y)} samples: {exc}") from None
    return np.sort(rest), np.sort(chosen)
