"""Parameter checks whose messages name the argument, the value and what is accepted.

In the manner of scikit-learn's ``_param_validation``: every public function
and estimator checks its arguments up front with these helpers, so a mistake
is reported where it was made, not as a confusing failure deep in a kernel.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

__all__ = ["check_choice", "check_finite", "check_int", "check_positive"]


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
        raise ValueError(f"{name} contains NaN or infinity (first at index {tuple(bad)})")
    return array
