"""The plainest features: the pixels themselves, and per-feature standardization."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import validate_data

from imgclf._validation import flat_images
from imgclf.preprocessing import MeanImage

__all__ = ["Pixels", "Standardize"]

_KEPT_DTYPES = [np.float64, np.float32, np.uint8]


class Pixels(TransformerMixin, BaseEstimator):
    """Images as rows of their raw values, dtype kept: uint8 stays uint8.

    The plainest feature, and the smallest: uint8 rows are 4x smaller than
    float32 ones and are what imgclf's fastest k-NN kernels take. Stateless.

    Examples
    --------
    >>> import numpy as np
    >>> Pixels().fit_transform(np.zeros((2, 4, 4, 3), np.uint8)).shape
    (2, 48)
    """

    def fit(self, X, y=None):
        """Record the number of values per image; returns self."""
        validate_data(self, flat_images(X), dtype=_KEPT_DTYPES)
        return self

    def transform(self, X):
        """Rows ``(n, H*W*C)``, dtype of ``X`` (uint8, float32 or float64)."""
        return validate_data(self, flat_images(X), dtype=_KEPT_DTYPES, reset=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class Standardize(MeanImage):
    """Centre every feature on its training mean and divide by its training std.

    :class:`~imgclf.linear.MeanImage` with ``scale="std"`` under its own
    name, for feature matrices (HOG values and hue shares live on different
    scales; this puts them on one). A feature constant in training is only
    centred (divided by 1). Output float32 ``(n, n_features)``.

    Attributes
    ----------
    mean_ : ndarray of float32, shape (n_features,)
    scale_ : ndarray of float32, shape (n_features,)
        The training standard deviations (1 where it is 0).
    n_features_in_ : int
    """

    scale = "std"  # fixed: a class attribute, not a parameter

    def __init__(self):
        pass
