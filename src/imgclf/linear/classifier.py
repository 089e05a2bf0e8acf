"""LinearClassifier: scores ``f(x) = W x + b``, trained by minibatch gradient descent."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
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
from imgclf.linear.losses import softmax_loss, svm_loss
from imgclf.linear.optimizers import OPTIMIZERS, make_optimizer

__all__ = ["LOSSES", "LinearClassifier"]

LOSSES = {"softmax": softmax_loss, "svm": svm_loss}
INIT_SCALE = 1e-3  # small random weights: every class starts with nearly equal scores
SCORE_BLOCK = 4096  # rows converted to float64 at a time when scoring
_SCORED_DTYPES = [np.float64, np.float32, np.uint8]  # kept as given; others become float64


class LinearClassifier(ClassifierMixin, BaseEstimator):
    """Multiclass linear classifier (softmax or SVM) trained by minibatch SGD.

    Each class ``c`` has a template ``coef_[c]`` and a bias ``intercept_[c]``;
    a sample's score for ``c`` is ``coef_[c] @ x + intercept_[c]`` and the
    highest score wins. Training folds the bias into the weights (the bias
    trick: a column of ones is appended to each minibatch) and works in
    float32; each step is a few matrix products over a minibatch, never a
    Python loop over samples. Images ``(n, H, W, C)`` are flattened.

    Parameters
    ----------
    loss : {"softmax", "svm"}, default="softmax"
        Cross-entropy of the softmax, or the Weston–Watkins multiclass hinge
        (see :mod:`imgclf.linear.losses`).
    reg : float, default=1e-4
        L2 penalty ``reg * sum(coef_ ** 2)``; the bias is not penalized.
    learning_rate : float, default=1e-3
        Initial step size.
    epochs : int, default=20
        Passes over the training data.
    batch_size : int, default=200
        Samples per gradient step (the last step of an epoch may have fewer).
    optimizer : {"sgd", "momentum", "adam"}, default="sgd"
        Update rule (see :mod:`imgclf.linear.optimizers`).
    lr_decay : float, default=0.95
        The learning rate is multiplied by this after every epoch, in (0, 1].
    seed : int or None, default=0
        Seeds the initial weights, the shuffling and the validation split:
        the same seed on the same data gives the same model. None: fresh
        randomness on every fit.
    val_fraction : float or None, default=None
        Share of the training data held out to score each epoch
        (``val_score_history_``); needed by ``early_stopping`` (0.1 if None).
    early_stopping : bool, default=False
        Stop when validation accuracy has not improved for ``patience``
        epochs, and keep the weights of the best epoch.
    patience : int, default=5
        Epochs without improvement tolerated by ``early_stopping``.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Sorted labels seen in ``fit`` (any type, strings too).
    coef_ : ndarray of float32, shape (n_classes, n_features)
        One template per class, in ``classes_`` order.
    intercept_ : ndarray of float32, shape (n_classes,)
    loss_history_ : ndarray of float32, shape (n_steps,)
        Minibatch loss (regularization included) at every gradient step.
    val_score_history_ : ndarray, shape (n_iter_,)
        Validation accuracy after each epoch; empty without a validation set.
    n_iter_ : int
        Epochs run (fewer than ``epochs`` if stopped early).
    n_features_in_ : int

    Notes
    -----
    Scores are computed in float64 at prediction time, so that they do not
    depend on how many rows are scored together. For two classes,
    :meth:`decision_function` returns scikit-learn's ``(n,)`` shape, the
    second class's score minus the first's.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[-2, 0], [-1, 1], [1, 0], [2, 1]], dtype=np.float32)
    >>> clf = LinearClassifier(learning_rate=0.1).fit(X, ["cat", "cat", "dog", "dog"])
    >>> clf.predict([[-3, 0], [3, 0]]), clf.coef_.shape
    (array(['cat', 'dog'], dtype='<U3'), (2, 2))
    """

    def __init__(
        self,
        loss="softmax",
        reg=1e-4,
        learning_rate=1e-3,
        epochs=20,
        batch_size=200,
        optimizer="sgd",
        lr_decay=0.95,
        seed=0,
        val_fraction=None,
        early_stopping=False,
        patience=5,
    ):
        self.loss = loss
        self.reg = reg
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr_decay = lr_decay
        self.seed = seed
        self.val_fraction = val_fraction
        self.early_stopping = early_stopping
        self.patience = patience

    def fit(self, X, y):
        """Learn ``coef_`` and ``intercept_`` from ``X`` ``(n, d)`` or ``(n, H, W, C)``.

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
        train, val = self._split(len(X), rng)
        # minibatch products are small (200 x 3073 x 10): BLAS threads cost more to
        # synchronise than they save, and on a busy machine they spin against other
        # processes (measured: 1.3x slower on an idle 2-core machine, 10x faster on a busy one)
        with threadpool_limits(limits=1, user_api="blas"):
            W = _Training(self, X, y, rng).run(train, val)
        self.coef_ = np.ascontiguousarray(W[:-1].T)
        self.intercept_ = W[-1].copy()
        return self

    def _check_params(self) -> None:
        check_choice("loss", self.loss, LOSSES)
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
        check_choice("early_stopping", self.early_stopping, (False, True))
        check_int("patience", self.patience, low=1)

    def _split(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation indices (no validation set unless asked for)."""
        fraction = self.val_fraction or (0.1 if self.early_stopping else 0.0)
        n_val = min(n - 1, max(1, round(fraction * n))) if fraction else 0
        if fraction and n_val < 1:
            raise ValueError(f"val_fraction={fraction} needs at least 2 samples; got {n}")
        order = rng.permutation(n)
        return np.sort(order[n_val:]), order[:n_val]

    def _scores(self, X) -> np.ndarray:
        """Class scores ``(n, n_classes)``, float64, computed a block of rows at a time."""
        check_is_fitted(self)
        X = validate_data(self, flat_images(X), dtype=_SCORED_DTYPES, reset=False)
        coef = self.coef_.T.astype(np.float64)
        scores = np.empty((len(X), len(coef.T)))
        # converting block by block keeps the float64 copy small (not 8x a uint8 input)
        for start in range(0, len(X), SCORE_BLOCK):
            block = slice(start, start + SCORE_BLOCK)
            np.matmul(X[block].astype(np.float64), coef, out=scores[block])
        return scores + self.intercept_

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

    @available_if(lambda self: _softmax_only(self))
    def predict_proba(self, X):
        """Softmax of the scores, ``(n, n_classes)`` in ``classes_`` order; rows sum to 1.

        Only for ``loss="softmax"``: SVM scores are not probabilities, so an SVM
        has no ``predict_proba`` attribute at all (``hasattr`` is False).
        """
        scores = self._scores(X)
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class _Training:
    """One fit's minibatch loop: weights with the bias as their last row."""

    def __init__(
        self, clf: LinearClassifier, X: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ):
        self.clf, self.X, self.y, self.rng = clf, X, y, rng
        self.loss_fn = LOSSES[clf.loss]
        self.optimizer = make_optimizer(clf.optimizer)
        n_classes = int(y.max()) + 1
        W = INIT_SCALE * rng.standard_normal((X.shape[1] + 1, n_classes))
        self.W = W.astype(np.float32)
        self.W[-1] = 0
        # one buffer for every minibatch; its last column stays 1 (the bias trick)
        self.batch = np.ones((min(clf.batch_size, len(X)), X.shape[1] + 1), np.float32)

    def run(self, train: np.ndarray, val: np.ndarray) -> np.ndarray:
        """Train for the epochs asked (or until early stopping); the final weights."""
        clf, losses = self.clf, []
        tracker = _BestEpoch(clf.patience if clf.early_stopping else None)
        learning_rate = clf.learning_rate
        for epoch in progress(range(clf.epochs), clf.epochs, f"{clf.loss} epochs"):
            # overflow shows up as a non-finite loss, reported below as one clear error
            with np.errstate(over="ignore", invalid="ignore"):
                losses.extend(self.epoch(train, learning_rate))
            check_diverged(losses[-1], epoch, clf.learning_rate)
            learning_rate *= clf.lr_decay
            if len(val) and tracker.out_of_patience(self.W, self.accuracy(val)):
                break
        clf.loss_history_ = np.asarray(losses, dtype=np.float32)
        clf.val_score_history_ = np.asarray(tracker.scores)
        clf.n_iter_ = epoch + 1
        return tracker.best_W if clf.early_stopping else self.W

    def epoch(self, train: np.ndarray, learning_rate: float) -> list[float]:
        """One shuffled pass over ``train``; the loss of every step."""
        order = self.rng.permutation(train)
        losses, size, reg = [], len(self.batch), self.clf.reg
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = self.batch[: len(rows)]
            np.take(self.X, rows, axis=0, out=batch[:, :-1], mode="clip")
            loss, grad = self.loss_fn(self.W, batch, self.y[rows], reg, bias_row=True)
            self.W = self.optimizer.step(self.W, grad, learning_rate)
            losses.append(loss)
        return losses

    def accuracy(self, rows: np.ndarray) -> float:
        scores = self.X[rows] @ self.W[:-1] + self.W[-1]
        return float(np.mean(np.argmax(scores, axis=1) == self.y[rows]))


class _BestEpoch:
    """Validation accuracy per epoch, the weights of the best epoch, and patience."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.scores: list[float] = []
        self.best_W: np.ndarray | None = None
        self.waited = 0

    def out_of_patience(self, W: np.ndarray, score: float) -> bool:
        """Record an epoch; True once ``patience`` epochs passed without improvement."""
        if not self.scores or score > max(self.scores):
            self.best_W, self.waited = W, 0  # W is replaced, never updated in place
        else:
            self.waited += 1
        self.scores.append(score)
        return self.patience is not None and self.waited >= self.patience


def _softmax_only(clf: LinearClassifier) -> bool:
    if clf.loss != "softmax":
        raise AttributeError(
            f"predict_proba is only available with loss='softmax'; "
            f"this classifier has loss={clf.loss!r}"
        )
    return True


def check_diverged(loss: float, epoch: int, learning_rate: float) -> None:
    if not np.isfinite(loss):
        raise ValueError(
            f"training diverged (loss {loss}) in epoch {epoch + 1} with "
            f"learning_rate={learning_rate!r}; use a smaller learning_rate, "
            f"or standardize the data (MeanImage(scale='std'))"
        )
