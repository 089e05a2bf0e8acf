"""What the classifiers trained by minibatch gradient descent share.

:class:`~imgclf.linear.LinearClassifier` and :class:`~imgclf.nn.TwoLayerNet`
differ in their weights, their forward pass and their gradients; the rest is
one frame, kept here:

``MinibatchClassifier``  the estimator: shared parameters and their checks,
                         ``fit`` (encode labels, split off validation rows,
                         train on one BLAS thread), float64 scoring,
                         ``predict``, ``decision_function``, ``predict_proba``
``MinibatchTraining``    one fit's loop: shuffled epochs of minibatches,
                         learning-rate decay, a clear error on divergence

A subclass of ``MinibatchClassifier`` gives ``_check_model_params``,
``_train`` and ``_block_scores``; one of ``MinibatchTraining`` gives ``step``
(one gradient step on a minibatch) and ``scores`` (its current class scores).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from imgclf._progress import progress
from imgclf._validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    encoded_training_data,
    flat_images,
)
from imgclf.optimizers import OPTIMIZERS

__all__ = ["MinibatchClassifier", "MinibatchTraining", "check_diverged", "split_off_validation"]

SCORE_BLOCK = 4096  # rows converted to float64 at a time when scoring
_SCORED_DTYPES = [np.float64, np.float32, np.uint8]  # kept as given; others become float64


class MinibatchClassifier(ClassifierMixin, BaseEstimator):
    """Base estimator; subclasses set the parameters in ``__init__`` (scikit-learn style).

    Expected parameters: ``reg``, ``learning_rate``, ``epochs``, ``batch_size``,
    ``optimizer``, ``lr_decay``, ``seed`` and ``val_fraction``.
    """

    def fit(self, X, y):
        """Learn the weights from ``X`` ``(n, d)`` or ``(n, H, W, C)`` and labels ``y``.

        Parameters
        ----------
        X : array-like, shape (n, d) or (n, H, W, C)
        y : array-like, shape (n,)
            Labels of any type.

        Returns
        -------
        self
        """
        self._check_params()
        X, y = encoded_training_data(self, X, y, dtype=np.float32, min_classes=2)
        rng = np.random.default_rng(self.seed)
        train, val = split_off_validation(len(X), self._val_fraction(), rng)
        # One BLAS thread: minibatch products (200 x 3073 x 10 for a linear model, at most
        # 200 x 3072 x 500 for the network) gain little from threads on an idle machine and
        # lose much on a busy one, where waiting threads spin. Measured on 2 cores: linear
        # 1.3x slower idle, 10x faster busy; network on pixels 1.4x slower idle, 2x faster
        # busy, on HOG features 8x faster.
        with threadpool_limits(limits=1, user_api="blas"):
            fitted = self._train(X, y, rng, train, val)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def _val_fraction(self) -> float | None:
        return self.val_fraction

    def _check_params(self) -> None:
        self._check_model_params()
        check_non_negative("reg", self.reg)
        check_positive("learning_rate", self.learning_rate)
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if check_positive("lr_decay", self.lr_decay) > 1:
            raise ValueError(f"lr_decay must be in (0, 1]; got {self.lr_decay!r}")
        if self.seed is not None:
            check_int("seed", self.seed, low=0)
        if (
            self.val_fraction is not None
            and not 0 < check_positive("val_fraction", self.val_fraction) < 1
        ):
            raise ValueError(f"val_fraction must be in (0, 1) or None; got {self.val_fraction!r}")

    def _scores(self, X) -> np.ndarray:
        """Class scores ``(n, n_classes)``, float64, computed a block of rows at a time.

        Float64 makes a sample's scores independent of how many rows are
        scored with it; converting block by block keeps that copy small (not
        8x a uint8 input).
        """
        check_is_fitted(self)
        X = validate_data(self, flat_images(X), dtype=_SCORED_DTYPES, reset=False)
        weights = self._float64_weights()
        scores = np.empty((len(X), len(self.classes_)))
        for start in range(0, len(X), SCORE_BLOCK):
            block = slice(start, start + SCORE_BLOCK)
            scores[block] = self._block_scores(X[block].astype(np.float64), *weights)
        return scores

    def decision_function(self, X):
        """Class scores: ``(n, n_classes)``, or ``(n,)`` for two classes.

        Parameters
        ----------
        X : array-like, shape (n, d) or (n, H, W, C)

        Returns
        -------
        ndarray of float64, shape (n, n_classes) or (n,)
            With two classes, ``score(classes_[1]) - score(classes_[0])``:
            positive means ``classes_[1]``, as scikit-learn expects.
        """
        scores = self._scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict(self, X):
        """The highest-scoring class of each sample, shape ``(n,)``."""
        winners = np.argmax(self._scores(X), axis=1)  # checks fitted before classes_ is read
        return self.classes_[winners]

    def predict_proba(self, X):
        """Softmax of the scores, ``(n, n_classes)`` in ``classes_`` order; rows sum to 1."""
        scores = self._scores(X)
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class MinibatchTraining:
    """One fit's loop. ``self.weights`` maps attribute names to float32 arrays.

    Parameters
    ----------
    estimator : MinibatchClassifier
    X : ndarray of float32, shape (n, d)
    y : ndarray of int, shape (n,)
        Class indices.
    rng : numpy.random.Generator

    A subclass may widen ``self.batch``, the one minibatch buffer: each step
    fills only its first ``d`` columns (the bias trick's column of ones stays).
    """

    label = "epochs"  # the progress bar's title

    def __init__(self, estimator, X: np.ndarray, y: np.ndarray, rng: np.random.Generator):
        self.estimator, self.X, self.y, self.rng = estimator, X, y, rng
        self.weights: dict[str, np.ndarray] = {}
        self.epochs_run = 0
        self.batch = np.empty((min(estimator.batch_size, len(X)), X.shape[1]), np.float32)

    def run(self, train: np.ndarray, end_of_epoch) -> list[float]:
        """Train on the rows ``train`` for ``epochs``; every step's loss.

        ``end_of_epoch()`` is called after each epoch (to record accuracies);
        training stops early when it returns True.
        """
        est, losses = self.estimator, []
        learning_rate = est.learning_rate
        # overflow shows up as a non-finite loss or weight, reported as one clear error
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in progress(range(est.epochs), est.epochs, self.label):
                losses.extend(self.epoch(train, learning_rate))
                finite = all(np.isfinite(weight).all() for weight in self.weights.values())
                check_diverged(losses[-1] if finite else np.inf, epoch, est.learning_rate)
                learning_rate *= est.lr_decay
                self.epochs_run = epoch + 1
                if end_of_epoch():
                    break
        return losses

    def epoch(self, train: np.ndarray, learning_rate: float) -> list[float]:
        """One shuffled pass over ``train``; the loss of every step."""
        order = self.rng.permutation(train)
        losses, size, width = [], len(self.batch), self.X.shape[1]
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = self.batch[: len(rows)]
            np.take(self.X, rows, axis=0, out=batch[:, :width], mode="clip")
            losses.append(self.step(batch, self.y[rows], learning_rate))
        return losses

    def step(self, batch: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        """One gradient step on a minibatch; its loss."""
        raise NotImplementedError

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores of ``X`` under the current weights."""
        raise NotImplementedError

    def accuracy(self, rows: np.ndarray) -> float:
        """Accuracy of the current weights on the training rows ``rows``."""
        return float(np.mean(np.argmax(self.scores(self.X[rows]), axis=1) == self.y[rows]))


def split_off_validation(n: int, fraction: float | None, rng: np.random.Generator):
    """Indices ``(train, val)``: a random ``fraction`` of ``n`` held out (none if falsy)."""
    n_val = min(n - 1, max(1, round(fraction * n))) if fraction else 0
    if fraction and n_val < 1:
        raise ValueError(f"val_fraction={fraction} needs at least 2 samples; got {n}")
    order = rng.permutation(n)
    return np.sort(order[n_val:]), order[:n_val]


def check_diverged(loss: float, epoch: int, learning_rate: float) -> None:
    """A ValueError naming the epoch and the learning rate when ``loss`` is not finite."""
    if not np.isfinite(loss):
        raise ValueError(
            f"training diverged (loss {loss}) in epoch {epoch + 1} with "
            f"learning_rate={learning_rate!r}; use a smaller learning_rate, "
            f"or standardize the data (MeanImage(scale='std'))"
        )
