"""MeanImage: flatten images to float32 rows and subtract the training mean image."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from imgclf._validation import flat_images

__all__ = ["MeanImage", "column_moments"]

# kept as they come (uint8 pixels stay uint8 until the subtraction); others become float32
_KEPT_DTYPES = [np.float32, np.float64, np.uint8]


class MeanImage(TransformerMixin, BaseEstimator):
    """Centre images on the mean image of the training set, optionally scaled.

    ``fit`` learns the mean (and scale) from the training data only; in a
    :class:`~sklearn.pipeline.Pipeline` validation and test data are then
    transformed with those training statistics and never leak into them.

    Parameters
    ----------
    scale : None, "std" or float, default=None
        None: subtract the mean only. ``"std"``: also divide every feature by
        its training standard deviation (1 where it is 0). A number: divide
        every feature by it (e.g. 255).

    Attributes
    ----------
    mean_ : ndarray of float32, shape (n_features,)
        The mean image, flattened.
    scale_ : ndarray of float32, shape (n_features,)
        What each centred feature is divided by (ones for ``scale=None``).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> images = np.array([[[[0]], [[2]]], [[[4]], [[6]]]], dtype=np.uint8)  # (2, 2, 1, 1)
    >>> MeanImage().fit_transform(images)
    array([[-2., -2.],
           [ 2.,  2.]], dtype=float32)
    """

    def __init__(self, scale=None):
        self.scale = scale

    def fit(self, X, y=None):
        """Learn the mean image of ``X`` ``(n, d)`` or ``(n, H, W, C)``; returns self.

        ``X`` may be a lazy (on-disk) array: it is then summed a window of chunks at a
        time (:func:`column_moments`), never read whole.
        """
        _check_scale(self.scale)
        lazy = getattr(X, "lazy", False)
        if lazy:
            X = X.reshape_rows() if X.ndim > 2 else X
        else:
            X = validate_data(self, flat_images(X), dtype=_KEPT_DTYPES)
        mean, std = column_moments(X, std=self.scale == "std")
        self.mean_ = mean.astype(np.float32)
        if self.scale is None:
            self.scale_ = np.ones(X.shape[1], np.float32)
        elif std is None:
            self.scale_ = np.full(X.shape[1], self.scale, np.float32)
        else:
            self.scale_ = np.where(std > 0, std, 1).astype(np.float32)
        if lazy:  # what validate_data records in memory
            self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Centred (and scaled) float32 rows, shape ``(n, n_features)``."""
        check_is_fitted(self)
        return self._centred(validate_data(self, flat_images(X), dtype=_KEPT_DTYPES, reset=False))

    def _centred(self, X: np.ndarray) -> np.ndarray:
        """:meth:`transform` of checked rows ``(n, n_features)`` (a server's decoded images)."""
        out = np.subtract(X, self.mean_, dtype=np.float32)
        if self.scale is not None:
            out /= self.scale_
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def column_moments(X, rows: np.ndarray | None = None, *, std: bool = True):
    """Float64 ``(mean, standard deviation)`` of each column of ``X[rows]`` (all rows if None).

    The one place the statistics of standardization are computed (MeanImage, and the
    minibatch trainers' standardized copies). A lazy ``X`` is summed a window of
    chunks at a time (:func:`~imgclf.datasets.chunked.column_sums`), an array a block
    at a time (:func:`_column_sum`); either way in float64.

    Parameters
    ----------
    X : ndarray or lazy array, shape (n, d)
    rows : ndarray of int, optional
    std : bool, default=True
        False: the standard deviation is not computed (None), saving a pass.

    Raises
    ------
    ValueError
        When the rows hold NaN or infinity.
    """
    n = len(X) if rows is None else len(rows)
    if getattr(X, "lazy", False):
        from imgclf.datasets.chunked import column_sums

        every = np.arange(len(X)) if rows is None else rows

        def total(centre):
            return column_sums(X, every, centre)
    else:
        rows = None if n == len(X) else rows  # all rows: plain slices, no gather

        def total(centre):
            return _column_sum(X, centre, rows=rows)

    mean = total(None) / n
    if not np.isfinite(mean).all():  # in memory, validate_data refuses them up front
        raise ValueError("X contains NaN or infinity (found while summing its columns)")
    return mean, (np.sqrt(total(mean) / n) if std else None)


def _column_sum(
    X: np.ndarray,
    centre: np.ndarray | None = None,
    block: int = 1024,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Column sums of ``X`` (or of ``(X - centre) ** 2``) in float64, a block of rows at a time.

    float64, since a float32 sum over 50,000 images loses digits; by blocks, since a
    float64 copy of all of CIFAR-10 would take 1.2 GB. ``rows`` (indices) sums only
    those rows, gathered a block at a time too; None sums them all.
    """
    total = np.zeros(X.shape[1])
    n = len(X) if rows is None else len(rows)
    for start in range(0, n, block):
        part = slice(start, start + block)
        values = (X[part] if rows is None else X[rows[part]]).astype(np.float64)
        if centre is not None:
            values -= centre
            values *= values
        total += values.sum(axis=0)
    return total


def _check_scale(scale) -> None:
    if scale is None or scale == "std":
        return
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0:
        raise ValueError(f"scale must be None, 'std' or a positive number; got {scale!r}")
