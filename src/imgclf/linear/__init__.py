"""Linear classifiers ``f(x) = W x + b``: losses, optimizers, the estimator, preprocessing.

======================  ======================================================
:mod:`.losses`          ``svm_loss``, ``softmax_loss``: pure ``(loss, grad)``
:mod:`.optimizers`      SGD, momentum and Adam update rules
:mod:`.classifier`      :class:`LinearClassifier` (a scikit-learn estimator)
:mod:`.preprocessing`   :class:`MeanImage`: flatten, subtract the mean image
:mod:`.pipeline`        :func:`linear_pipeline`, :func:`lr_reg_search`
======================  ======================================================
"""

from __future__ import annotations

from imgclf.linear.classifier import LOSSES, LinearClassifier
from imgclf.linear.losses import softmax_loss, softmax_loss_naive, svm_loss, svm_loss_naive
from imgclf.linear.optimizers import OPTIMIZERS, SGD, Adam, Momentum, make_optimizer
from imgclf.linear.pipeline import linear_pipeline, lr_reg_search
from imgclf.linear.preprocessing import MeanImage

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "LinearClassifier",
    "MeanImage",
    "Momentum",
    "linear_pipeline",
    "lr_reg_search",
    "make_optimizer",
    "softmax_loss",
    "softmax_loss_naive",
    "svm_loss",
    "svm_loss_naive",
]
