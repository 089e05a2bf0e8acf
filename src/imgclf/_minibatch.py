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
``Standardization``      per-feature ``(x - mean_) / scale_`` applied to each
                         minibatch, then folded into the first layer's weights

A subclass of ``MinibatchClassifier`` gives ``_check_model_params``,
``_train`` and ``_block_scores``; one of ``MinibatchTraining`` gives ``step``
(one gradient step on a minibatch) and ``scores`` (its current class scores).

Out of core. ``fit`` also takes a *lazy* array (``Dataset.images`` of a set
stored on disk, :class:`~imgclf.datasets.store.StoredArray`, or a
:class:`~imgclf.datasets.transformed.TransformedArray`). One that fits in
:func:`~imgclf.datasets.store.in_memory_bytes` is read whole and trains exactly
as the same array in memory. A larger one is never read whole: the
standardization is summed a window of chunks at a time, and each epoch reads
windows (half the limit each) of blocks of ~1 MiB of consecutive rows, every window
dealt blocks from all over the set, in a seeded order, its rows shuffled within it
(:func:`~imgclf.datasets.chunked.shuffled_windows`); each window ends on its own,
possibly short, minibatch. Validation accuracy and scoring read the rows in
windows and blocks too; scores are the in-memory ones exactly.

Why training standardizes (``standardize=True``): a gradient step on raw pixels
(0-255) is 255**2 times larger than the same step on pixels in 0-1, so no one
learning rate serves both, and features of very different spread (HOG, colour
histograms) need a different rate per feature. Training on
``(x - mean_) / scale_`` makes every input look the same to the optimizer, so
one default learning rate serves them all. After training the standardization
is folded into the first layer (``W / scale`` and ``b - (mean / scale) @ W``):
the public weights stay in input space, and scoring, model files and pictures
of the weights need no extra step.

Examples
--------
>>> import numpy as np
>>> X = np.array([[0, 10], [2, 10], [4, 10]], dtype=np.uint8)
>>> s = Standardization.learn(X, np.arange(3))
>>> s.mean, s.scale.round(4)  # the constant second column keeps scale 1
(array([ 2., 10.], dtype=float32), array([1.633, 1.   ], dtype=float32))
>>> s.apply(X.astype(np.float32)).round(4)
array([[-1.2247,  0.    ],
       [ 0.    ,  0.    ],
       [ 1.2247,  0.    ]], dtype=float32)
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
from imgclf.preprocessing import column_moments

__all__ = [
    "MinibatchClassifier",
    "MinibatchTraining",
    "Standardization",
    "check_diverged",
    "softmax",
    "split_off_validation",
]

SCORE_BLOCK = 4096  # rows converted to float64 at a time when scoring, at most
SCORE_BLOCK_BYTES = 64 * 2**20  # ... and at most this many bytes of float64 copy
_SCORED_DTYPES = [np.float64, np.float32, np.uint8]  # kept as given; others become float64
# uint8 pixels stay uint8 in training (4x smaller); each minibatch becomes float32
_TRAINED_DTYPES = [np.float32, np.uint8]
# a feature whose spread is below this share of its mean is constant up to float32 rounding
_CONSTANT_RTOL = 1e-6


class MinibatchClassifier(ClassifierMixin, BaseEstimator):
    """Base estimator; subclasses set the parameters in ``__init__`` (scikit-learn style).

    Expected parameters: ``standardize``, ``reg``, ``learning_rate``, ``epochs``,
    ``batch_size``, ``optimizer``, ``lr_decay``, ``seed`` and ``val_fraction``.
    Fitted: ``mean_`` and ``scale_`` (the standardization, zeros and ones
    without one) besides the subclass's weights.
    """

    def fit(self, X, y):
        """Learn the weights from ``X`` ``(n, d)`` or ``(n, H, W, C)`` and labels ``y``.

        Parameters
        ----------
        X : array-like, shape (n, d) or (n, H, W, C), or a lazy array
            A lazy (on-disk) array larger than the in-memory limit is trained on
            out of core (see the module's docstring).
        y : array-like, shape (n,)
            Labels of any type.

        Returns
        -------
        self
        """
        self._check_params()
        X, y = self._training_data(X, y)
        rng = np.random.default_rng(self.seed)
        train, val = split_off_validation(len(X), self._val_fraction(), rng)
        # learned from the rows trained on: held-out rows must not shape the model
        if self.standardize:
            standardization = Standardization.learn(X, train)
        else:
            standardization = Standardization.identity(X.shape[1])
        # One BLAS thread: minibatch products (200 x 3073 x 10 for a linear model, at most
        # 200 x 3072 x 500 for the network) gain little from threads on an idle machine and
        # lose much on a busy one, where waiting threads spin. Measured on 2 cores: linear
        # 1.3x slower idle, 10x faster busy; network on pixels 1.4x slower idle, 2x faster
        # busy, on HOG features 8x faster.
        with threadpool_limits(limits=1, user_api="blas"):
            fitted = self._train(X, y, rng, train, val, standardization)
        fitted.update(mean_=standardization.mean, scale_=standardization.scale)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def _training_data(self, X, y) -> tuple:
        """Validated ``(X, y_index)``; a lazy ``X`` stays on disk unless it fits in memory.

        A lazy array that fits in :func:`~imgclf.datasets.store.in_memory_bytes` is
        read whole, so it trains exactly as the same array in memory would.
        """
        if getattr(X, "lazy", False):
            from imgclf.datasets.chunked import fits_in_memory

            if not fits_in_memory(X):
                return _lazy_training_data(self, X, y)
            X = np.asarray(X)
        return encoded_training_data(self, X, y, dtype=_TRAINED_DTYPES, min_classes=2)

    def _val_fraction(self) -> float | None:
        return self.val_fraction

    def _learning_rate(self) -> float:
        """The initial step size (a subclass may resolve a default that depends on others)."""
        return self.learning_rate

    def _check_params(self) -> None:
        self._check_model_params()
        check_choice("standardize", self.standardize, (False, True))
        check_non_negative("reg", self.reg)
        check_positive("learning_rate", self._learning_rate())
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
        if getattr(X, "lazy", False):
            return self._lazy_scores(X)
        X = validate_data(self, flat_images(X), dtype=_SCORED_DTYPES, reset=False)
        weights = self._float64_weights()
        scores = np.empty((len(X), len(self.classes_)))
        step = _score_rows(X.shape[1])
        for start in range(0, len(X), step):
            block = slice(start, start + step)
            scores[block] = self._block_scores(X[block].astype(np.float64), *weights)
        return scores

    def _lazy_scores(self, X) -> np.ndarray:
        """:meth:`_scores` of a lazy array, read in blocks of bounded size (same values)."""
        from imgclf.datasets.chunked import blocks

        X = _flat_lazy(X)
        _check_lazy_features(self, X)
        weights = self._float64_weights()
        scores = np.empty((len(X), len(self.classes_)))
        for start, block in blocks(X, rows=_score_rows(X.shape[1])):
            rows = slice(start, start + len(block))
            scores[rows] = self._block_scores(block.astype(np.float64), *weights)
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
        return softmax(self._scores(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class MinibatchTraining:
    """One fit's loop. ``self.weights`` maps attribute names to float32 arrays.

    Parameters
    ----------
    estimator : MinibatchClassifier
    X : ndarray of float32 or uint8, shape (n, d)
        Raw inputs; each minibatch is converted to float32 and standardized.
    y : ndarray of int, shape (n,)
        Class indices.
    rng : numpy.random.Generator
    standardization : Standardization
        Applied to every minibatch (and to the rows scored while training).

    A subclass may widen ``self.batch``, the one minibatch buffer: each step
    fills only its first ``d`` columns (the bias trick's column of ones stays).
    """

    label = "epochs"  # the progress bar's title

    def __init__(
        self,
        estimator,
        X: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        standardization: Standardization,
    ):
        self.estimator, self.X, self.y, self.rng = estimator, X, y, rng
        self.standardization = standardization
        self.weights: dict[str, np.ndarray] = {}
        self.epochs_run = 0
        self._held: dict[int, tuple] = {}  # id(rows) -> (rows, X[rows]): see _held_rows
        self.batch = np.empty((min(estimator.batch_size, len(X)), X.shape[1]), np.float32)

    def run(self, train: np.ndarray, end_of_epoch) -> list[float]:
        """Train on the rows ``train`` for ``epochs``; every step's loss.

        ``end_of_epoch()`` is called after each epoch (to record accuracies);
        training stops early when it returns True.
        """
        est, losses = self.estimator, []
        learning_rate = first_rate = est._learning_rate()
        # overflow shows up as a non-finite loss or weight, reported as one clear error
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in progress(range(est.epochs), est.epochs, self.label):
                losses.extend(self.epoch(train, learning_rate))
                finite = all(np.isfinite(weight).all() for weight in self.weights.values())
                check_diverged(losses[-1] if finite else np.inf, epoch, first_rate)
                learning_rate *= est.lr_decay
                self.epochs_run = epoch + 1
                if end_of_epoch():
                    break
        return losses

    def epoch(self, train: np.ndarray, learning_rate: float) -> list[float]:
        """One shuffled pass over ``train``; the loss of every step."""
        losses, size, width = [], len(self.batch), self.X.shape[1]
        for X, y, order in self.shuffled(train):
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                batch = self.batch[: len(rows)]
                self.inputs(rows, out=batch[:, :width], X=X)
                losses.append(self.step(batch, y[rows], learning_rate))
        return losses

    def shuffled(self, train: np.ndarray):
        """``(X, y, order)`` triples that together visit every row of ``train`` once.

        In memory: one triple, ``(self.X, self.y, rng.permutation(train))``. Lazy
        ``X`` (out of core): one per window of blocks of rows read from disk, in
        :func:`~imgclf.datasets.chunked.shuffled_windows`' seeded order (blocks
        shuffled, then rows within each window), ``X`` that window's rows and
        ``order`` their shuffled positions; each window's last minibatch may be short.
        """
        if not getattr(self.X, "lazy", False):
            yield self.X, self.y, self.rng.permutation(train)
            return
        from imgclf.datasets.chunked import shuffled_windows

        for rows, block, order in shuffled_windows(self.X, train, self.rng):
            yield block, self.y[rows], order

    def inputs(self, rows: np.ndarray, out: np.ndarray | None = None, X=None) -> np.ndarray:
        """The standardized float32 rows ``rows`` of ``X`` (default ``self.X``), in ``out``."""
        X = self.X if X is None else X
        if out is None:
            out = np.empty((len(rows), X.shape[1]), np.float32)
        if X.dtype == out.dtype:
            np.take(X, rows, axis=0, out=out, mode="clip")
        else:
            out[...] = X[rows]  # uint8 -> float32, one minibatch at a time
        return self.standardization.apply(out)

    def step(self, batch: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        """One gradient step on a minibatch; its loss."""
        raise NotImplementedError

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores of ``X`` under the current weights."""
        raise NotImplementedError

    def accuracy(self, rows: np.ndarray) -> float:
        """Accuracy of the current weights on the training rows ``rows``.

        Lazy ``X``: rows scored every epoch (validation, a training probe) are read once
        and kept while they fit a quarter of the in-memory limit, so that an epoch costs
        one pass over the disk, not one more per scored set; larger sets are read again
        a window of chunks at a time.
        """
        if not getattr(self.X, "lazy", False):
            predicted = np.argmax(self.scores(self.inputs(rows)), axis=1)
            return float(np.mean(predicted == self.y[rows]))
        held = self._held_rows(rows)
        if held is not None:
            return self._correct(held, self.y[rows]) / len(rows)
        from imgclf.datasets.chunked import windows

        correct = 0  # a window of chunks at a time, a float32 block at a time
        for positions, block in windows(self.X, rows):
            correct += self._correct(block, self.y[rows[positions]])
        return correct / len(rows)

    def _correct(self, X: np.ndarray, y: np.ndarray) -> int:
        """How many rows of ``X`` (raw, in memory) the current weights classify as ``y``."""
        correct, step = 0, _score_rows(X.shape[1])
        for start in range(0, len(X), step):
            part = np.arange(start, min(start + step, len(X)))
            predicted = np.argmax(self.scores(self.inputs(part, X=X)), axis=1)
            correct += int(np.sum(predicted == y[part]))
        return correct

    def _held_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """``X[rows]`` of lazy ``X``, read on the first call for ``rows`` and kept; None
        when keeping it would pass a quarter of the in-memory limit."""
        from imgclf.datasets.chunked import windows
        from imgclf.datasets.store import in_memory_bytes

        held = self._held
        if id(rows) in held:
            return held[id(rows)][1]
        taken = sum(block.nbytes for _, block in held.values())
        if taken + len(rows) * self.X.row_bytes > in_memory_bytes() // 4:
            return None
        values = np.empty((len(rows), self.X.shape[1]), self.X.dtype)
        for positions, block in windows(self.X, rows):
            values[positions] = block
        held[id(rows)] = (rows, values)  # rows kept too: their id stays theirs
        return values


class Standardization:
    """Per-feature ``(x - mean) / scale``, float32; or nothing at all (``identity``).

    Parameters
    ----------
    mean : ndarray of float32, shape (d,)
    scale : ndarray of float32, shape (d,)
        Positive.
    active : bool
        False: :meth:`apply` leaves its input as it is (``standardize=False``).
    varies : ndarray of bool, shape (d,), optional
        False for the features constant in training (all of them vary if None).
    """

    def __init__(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        active: bool = True,
        varies: np.ndarray | None = None,
    ):
        self.mean, self.scale, self.active = mean, scale, active
        self.varies = np.ones(len(mean), bool) if varies is None else varies

    @classmethod
    def learn(cls, X: np.ndarray, rows: np.ndarray) -> Standardization:
        """Mean and standard deviation of the rows ``rows`` of ``X`` ``(n, d)``.

        Summed in float64 a block of rows at a time (no float64 copy of ``X``).
        A feature that is constant (up to float32 rounding) gets scale 1, so it
        stays 0 after centring instead of being blown up; :meth:`fold` gives it
        weight 0.
        """
        mean, std = _moments(X, rows)
        varies = std > _CONSTANT_RTOL * np.abs(mean)
        scale = np.where(varies, std, 1.0)
        return cls(mean.astype(np.float32), scale.astype(np.float32), varies=varies)

    @classmethod
    def identity(cls, d: int) -> Standardization:
        """No standardization: mean 0, scale 1, and :meth:`apply` does nothing."""
        return cls(np.zeros(d, np.float32), np.ones(d, np.float32), active=False)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Standardize float32 ``X`` ``(m, d)`` in place; returns it."""
        if self.active:
            X -= self.mean
            X /= self.scale
        return X

    def fold(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First-layer weights on raw inputs that score as ``W``, ``b`` do on standardized ones.

        ``((x - mean) / scale) @ W + b == x @ (W / scale[:, None]) + (b - (mean / scale) @ W)``,
        computed in float64 and returned as float32. A feature constant in
        training was 0 in every step, so its weight only holds its random start:
        it gets weight 0, and an unseen value of it cannot move the scores by an
        amount that depends on the input's units.

        Parameters
        ----------
        W : ndarray, shape (d, k)
        b : ndarray, shape (k,)

        Returns
        -------
        W_raw : ndarray of float32, shape (d, k)
        b_raw : ndarray of float32, shape (k,)
        """
        if not self.active:
            return W, b
        W64 = W.astype(np.float64) / self.scale.astype(np.float64)[:, None]
        W64[~self.varies] = 0
        b64 = b.astype(np.float64) - self.mean.astype(np.float64) @ W64
        return W64.astype(np.float32), b64.astype(np.float32)


def _moments(X, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and standard deviation of the rows ``rows`` of ``X``, per feature
    (:func:`~imgclf.preprocessing.column_moments`: a lazy ``X`` by windows of chunks)."""
    return column_moments(X, rows)


def _score_rows(n_features: int) -> int:
    """Rows scored together: their float64 copy stays within :data:`SCORE_BLOCK_BYTES`
    (a row's scores do not depend on the others, so any block size gives the same)."""
    return max(1, min(SCORE_BLOCK, SCORE_BLOCK_BYTES // (8 * max(1, n_features))))


def _flat_lazy(X):
    """A lazy array of images as flat rows ``(n, d)`` (nothing is read)."""
    return X.reshape_rows() if X.ndim > 2 else X


def _check_lazy_features(estimator, X) -> None:
    expected = estimator.n_features_in_
    if X.shape[1] != expected:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input."
        )


def _lazy_training_data(estimator, X, y) -> tuple:
    """``(X, y_index)`` for ``fit`` on a lazy ``X``, checked without reading its rows.

    The labels get every check of in-memory training (the rows' count among them:
    a placeholder of one column per row stands in for ``X``); ``X`` must hold
    uint8 or float32 rows.
    """
    X = _flat_lazy(X)
    if X.dtype not in _TRAINED_DTYPES:
        raise ValueError(
            f"a lazy X must hold uint8 or float32 values to be trained on; got {X.dtype}"
        )
    placeholder = np.zeros((len(X), 1), np.uint8)
    _, y = encoded_training_data(estimator, placeholder, y, dtype=_TRAINED_DTYPES, min_classes=2)
    estimator.n_features_in_ = X.shape[1]
    return X, y


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of class scores ``(n, n_classes)``, in place of ``scores`` (shifted by
    each row's largest first, so ``exp`` cannot overflow)."""
    scores -= scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    return probs / probs.sum(axis=1, keepdims=True)


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
            f"or standardize the inputs (standardize=True)"
        )
