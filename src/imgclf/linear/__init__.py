"""Linear classifiers ``f(x) = W x + b``: losses, the estimator, pipelines.

======================  ======================================================
:mod:`.losses`          ``svm_loss``, ``softmax_loss``, ``squared_hinge_loss``:
                        pure ``(loss, grad)``
:mod:`.lbfgs`           full-batch training to convergence (``solver="lbfgs"``)
:mod:`.classifier`      :class:`LinearClassifier` (a scikit-learn estimator)
:mod:`.pipeline`        :func:`linear_pipeline`, :func:`lr_reg_search`
======================  ======================================================

The update rules (:mod:`imgclf.optimizers`) and :class:`MeanImage`
(:mod:`imgclf.preprocessing`) are shared with the two-layer network, so they
live one layer below; they are re-exported here for convenience.
"""

from __future__ import annotations

from imgclf.linear.classifier import DEFAULT_LEARNING_RATES, LOSSES, SOLVERS, LinearClassifier
from imgclf.linear.losses import (
    softmax_loss,
    softmax_loss_naive,
    squared_hinge_loss,
    svm_loss,
    svm_loss_naive,
)
from imgclf.linear.pipeline import linear_pipeline, lr_reg_search
from imgclf.optimizers import OPTIMIZERS, SGD, Adam, Momentum, make_optimizer
from imgclf.preprocessing import MeanImage

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "LOSSES",
    "OPTIMIZERS",
    "SGD",
    "SOLVERS",
    "Adam",
    "LinearClassifier",
    "MeanImage",
    "Momentum",
    "linear_pipeline",
    "lr_reg_search",
    "make_optimizer",
    "softmax_loss",
    "softmax_loss_naive",
    "squared_hinge_loss",
    "svm_loss",
    "svm_loss_naive",
]
