"""Ready-made linear pipelines and the learning-rate x regularization search.

These are the pieces a command line or a notebook needs: build
``MeanImage -> LinearClassifier`` from a few options, and try a small grid of
learning rates and regularization strengths against a validation set.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.pipeline import Pipeline

from imgclf.linear.classifier import LinearClassifier
from imgclf.preprocessing import MeanImage

__all__ = ["linear_pipeline", "lr_reg_search"]


def linear_pipeline(loss: str = "softmax", scale=None, **params) -> Pipeline:
    """``MeanImage(scale) -> LinearClassifier(loss, **params)`` as one estimator.

    Parameters
    ----------
    loss : {"softmax", "svm"}, default="softmax"
    scale : None, "std" or float, default=None
        See :class:`~imgclf.linear.MeanImage`.
    **params
        Any other :class:`~imgclf.linear.LinearClassifier` parameter.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``"mean"`` and ``"clf"``; it takes uint8 images ``(n, H, W, C)``.
        The classifier standardizes its inputs itself (``standardize=True``),
        so ``scale`` does not change what is learned (up to float32 rounding):
        the mean image step shows the centred pixels, and keeps the form of
        pipelines and model files written before. ``LinearClassifier()`` alone
        fits raw pixels just as well, without the float32 copy of the data.

    Examples
    --------
    >>> from imgclf.datasets import load_digits
    >>> splits = load_digits()
    >>> model = linear_pipeline(scale="std")
    >>> _ = model.fit(splits["train"].images, splits["train"].labels)
    >>> bool(model.score(splits["test"].images, splits["test"].labels) > 0.9)
    True
    """
    return Pipeline(
        [("mean", MeanImage(scale=scale)), ("clf", LinearClassifier(loss=loss, **params))]
    )


def lr_reg_search(
    X_train, y_train, X_val, y_val, learning_rates: Iterable[float], regs: Iterable[float], **params
) -> dict[tuple[float, float], tuple]:
    """Train one classifier per (learning rate, reg) and score it on both sets.

    Give already preprocessed features (e.g. from a fitted
    :class:`~imgclf.linear.MeanImage`): they are shared by every configuration.

    Parameters
    ----------
    X_train : ndarray, shape (n, d)
    y_train : ndarray, shape (n,)
    X_val : ndarray, shape (m, d)
    y_val : ndarray, shape (m,)
    learning_rates, regs : iterable of float
        The grid's two axes.
    **params
        Other :class:`~imgclf.linear.LinearClassifier` parameters (loss, epochs, ...).

    Returns
    -------
    dict of (float, float) to (float, float)
        ``(learning_rate, reg) -> (train_accuracy, val_accuracy)`` in the form
        :func:`imgclf.plots.lr_reg_grid` draws; a configuration whose training
        diverged scores ``(nan, nan)``.
    """
    results = {}
    for lr in learning_rates:
        for reg in regs:
            clf = LinearClassifier(learning_rate=lr, reg=reg, **params)
            results[(lr, reg)] = _scores(clf, X_train, y_train, X_val, y_val)
    return results


def _scores(clf, X_train, y_train, X_val, y_val) -> tuple[float, float]:
    try:
        clf.fit(X_train, y_train)
    except ValueError as error:
        if "diverged" not in str(error):
            raise
        return (np.nan, np.nan)
    return clf.score(X_train, y_train), clf.score(X_val, y_val)
