"""Parameter checks whose messages name the argument, the value and what is accepted.

In the manner of scikit-learn's ``_param_validation``: every public function
and estimator checks its arguments up front with these helpers, so a mistake
is reported where it was made, not as a confusing failure deep in a kernel.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

__all__ = [
    "check_choice",
    "check_finite",
    "check_int",
    "check_non_negative",
    "check_positive",
    "encoded_training_data",
    "final_estimator",
    "flat_images",
]


def check_choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {accepted}; got {value!r}")
    return value


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``, else a ValueError saying which bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value}")
    return int(value)


def check_positive(name: str, value) -> float:
    """``value`` as a float > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def check_finite(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` if it holds no NaN or infinity (integers always pass)."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} contains NaN or infinity (first at index {tuple(int(i) for i in bad)})"
        )
    return array


def check_non_negative(name: str, value) -> float:
    """``value`` as a float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number; got {value!r}")
    return float(value)


def flat_images(X):
    """Images ``(n, H, W, C)`` become rows ``(n, H*W*C)``; anything else passes through.

    Estimators accept images directly; scikit-learn's validation then sees rows.
    """
    X = X if hasattr(X, "ndim") else np.asarray(X)
    return X.reshape(len(X), -1) if getattr(X, "ndim", 2) > 2 else X


def encoded_training_data(estimator, X, y, *, dtype, min_classes: int = 1):
    """Validated ``(X, y_index)`` for ``fit``; sets ``estimator.classes_`` (sorted labels).

    ``y_index`` holds each label's position in ``classes_``. Raises a ValueError
    when ``y`` has fewer than ``min_classes`` distinct labels.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    X, y = validate_data(estimator, flat_images(X), y, dtype=dtype)
    check_classification_targets(y)
    estimator.classes_, y_index = np.unique(y, return_inverse=True)
    n_classes = len(estimator.classes_)
    if n_classes < min_classes:
        noun = "class" if n_classes == 1 else "classes"
        raise ValueError(
            f"{type(estimator).__name__} needs samples of at least {min_classes} "
            f"classes; got {n_classes} {noun} ({estimator.classes_[0]!r})"
        )
    return X, y_index


def final_estimator(model):
    """The classifier itself, or the last step of a Pipeline."""
    return model.steps[-1][1] if hasattr(model, "steps") else model
