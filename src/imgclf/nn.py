"""TwoLayerNet: affine - ReLU - affine - softmax, trained by minibatch gradient descent.

The network is a composition of the pure layer functions of
:mod:`imgclf.layers`, trained in float32 with the update rules of
:mod:`imgclf.linear.optimizers`. :func:`net_pipeline` puts features (optional)
and standardization in front of it, as :func:`imgclf.linear.linear_pipeline`
does for linear classifiers.

Examples
--------
>>> from imgclf.datasets import load_digits
>>> splits = load_digits()
>>> model = net_pipeline(hidden=50, learning_rate=0.01).fit(splits["train"].images,
...                                                         splits["train"].labels)
>>> model.score(splits["test"].images, splits["test"].labels) > 0.9
True
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
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
from imgclf.layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from imgclf.linear.classifier import check_diverged
from imgclf.linear.optimizers import OPTIMIZERS, make_optimizer
from imgclf.linear.preprocessing import MeanImage

__all__ = ["TwoLayerNet", "net_pipeline"]

WEIGHTS = ("W1_", "b1_", "W2_", "b2_")  # every learned array, in forward order
TRAIN_ACC_SAMPLES = 1000  # per-epoch training accuracy is measured on this many samples
SCORE_BLOCK = 4096  # rows converted to float64 at a time when scoring
_SCORED_DTYPES = [np.float64, np.float32, np.uint8]  # kept as given; others become float64


class TwoLayerNet(ClassifierMixin, BaseEstimator):
    """Two-layer fully connected network: ``softmax(relu(x W1 + b1) W2 + b2)``.

    Weights start from He initialization (normal with variance ``2 / fan_in``,
    which keeps the scale of ReLU activations from layer to layer), biases at
    zero. Training runs in float32 on shuffled minibatches; the loss is the
    mean softmax cross-entropy plus ``reg * (sum(W1 ** 2) + sum(W2 ** 2))``
    (biases are not penalized, as in
    :class:`~imgclf.linear.LinearClassifier`). Images ``(n, H, W, C)`` are
    flattened; standardize the inputs first (:func:`net_pipeline` does).

    Parameters
    ----------
    hidden : int, default=100
        Units in the hidden layer.
    reg : float, default=1e-4
        L2 penalty on ``W1_`` and ``W2_``.
    learning_rate : float, default=1e-3
        Initial step size.
    epochs : int, default=20
        Passes over the training data.
    batch_size : int, default=200
        Samples per gradient step (the last step of an epoch may have fewer).
    optimizer : {"sgd", "momentum", "adam"}, default="adam"
        Update rule (see :mod:`imgclf.linear.optimizers`), one state per weight array.
    lr_decay : float, default=0.95
        The learning rate is multiplied by this after every epoch, in (0, 1].
    dropout : float, default=0.0
        Probability of dropping each hidden unit at training time, in [0, 1)
        (inverted dropout: nothing changes at prediction time).
    seed : int or None, default=0
        Seeds the initial weights, the shuffling, the dropout masks and the
        validation split: the same seed on the same data gives the same
        model. None: fresh randomness on every fit.
    val_fraction : float or None, default=None
        Share of the training data held out to score each epoch
        (``val_acc_history_``); None holds nothing out.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Sorted labels seen in ``fit`` (any type, strings too).
    W1_ : ndarray of float32, shape (n_features, hidden)
    b1_ : ndarray of float32, shape (hidden,)
    W2_ : ndarray of float32, shape (hidden, n_classes)
    b2_ : ndarray of float32, shape (n_classes,)
    loss_history_ : ndarray of float32, shape (n_steps,)
        Minibatch loss (regularization included) at every gradient step.
    train_acc_history_ : ndarray, shape (epochs,)
        Accuracy after each epoch on a fixed random subset of at most 1,000
        training samples (all of them is a second forward pass per epoch).
    val_acc_history_ : ndarray, shape (epochs,)
        Accuracy on the held-out share after each epoch; empty without one.
    n_iter_ : int
        Epochs run.
    n_features_in_ : int

    Notes
    -----
    Every learned value is an ndarray or a number, so :func:`imgclf.io.save`
    stores the network as it is and nothing needs rebuilding after loading.
    Scores are computed in float64 at prediction time, so that they do not
    depend on how many rows are scored together.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[-2, 0], [-1, 1], [1, 0], [2, 1]] * 10, dtype=np.float32)
    >>> net = TwoLayerNet(hidden=8, learning_rate=0.05, epochs=30).fit(X, ["a", "a", "b", "b"] * 10)
    >>> net.predict([[-3, 0], [3, 0]]), net.W1_.shape, net.W2_.shape
    (array(['a', 'b'], dtype='<U1'), (2, 8), (8, 2))
    """

    def __init__(
        self,
        hidden=100,
        reg=1e-4,
        learning_rate=1e-3,
        epochs=20,
        batch_size=200,
        optimizer="adam",
        lr_decay=0.95,
        dropout=0.0,
        seed=0,
        val_fraction=None,
    ):
        self.hidden = hidden
        self.reg = reg
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr_decay = lr_decay
        self.dropout = dropout
        self.seed = seed
        self.val_fraction = val_fraction

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
        train, val = _split(len(X), self.val_fraction, rng)
        # one BLAS thread: minibatch products (200 x 3072 x 500 at most) gain little from
        # threads on an idle machine and lose much on a busy one, where waiting threads spin
        # (measured on 2 cores: pixels 1.4x slower idle, 2x faster busy; HOG features 8x faster)
        with threadpool_limits(limits=1, user_api="blas"):
            weights = _Training(self, X, y, rng).run(train, val)
        for name, value in weights.items():
            setattr(self, name, value)
        return self

    def _check_params(self) -> None:
        check_int("hidden", self.hidden, low=1)
        check_non_negative("reg", self.reg)
        check_positive("learning_rate", self.learning_rate)
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if check_positive("lr_decay", self.lr_decay) > 1:
            raise ValueError(f"lr_decay must be in (0, 1]; got {self.lr_decay!r}")
        _check_dropout(self.dropout)
        if self.seed is not None:
            check_int("seed", self.seed, low=0)
        if (
            self.val_fraction is not None
            and not 0 < check_positive("val_fraction", self.val_fraction) < 1
        ):
            raise ValueError(f"val_fraction must be in (0, 1) or None; got {self.val_fraction!r}")

    def _scores(self, X) -> np.ndarray:
        """Class scores ``(n, n_classes)``, float64, computed a block of rows at a time."""
        check_is_fitted(self)
        X = validate_data(self, flat_images(X), dtype=_SCORED_DTYPES, reset=False)
        W1, b1, W2, b2 = (np.asarray(getattr(self, name), np.float64) for name in WEIGHTS)
        scores = np.empty((len(X), len(b2)))
        # converting block by block keeps the float64 copy small (not 8x a uint8 input)
        for start in range(0, len(X), SCORE_BLOCK):
            block = slice(start, start + SCORE_BLOCK)
            hidden = np.maximum(X[block].astype(np.float64) @ W1 + b1, 0)
            np.matmul(hidden, W2, out=scores[block])
        return scores + b2

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


class _Training:
    """One fit's minibatch loop over the weights ``W1_, b1_, W2_, b2_``."""

    def __init__(self, net: TwoLayerNet, X: np.ndarray, y: np.ndarray, rng: np.random.Generator):
        self.net, self.X, self.y, self.rng = net, X, y, rng
        n_features, n_classes = X.shape[1], int(y.max()) + 1
        self.weights = {
            "W1_": _he(rng, n_features, net.hidden),
            "b1_": np.zeros(net.hidden, np.float32),
            "W2_": _he(rng, net.hidden, n_classes),
            "b2_": np.zeros(n_classes, np.float32),
        }
        self.optimizers = {name: make_optimizer(net.optimizer) for name in WEIGHTS}
        self.batch = np.empty((min(net.batch_size, len(X)), n_features), np.float32)

    def run(self, train: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        net, losses, train_acc, val_acc = self.net, [], [], []
        probe = self.rng.choice(train, min(len(train), TRAIN_ACC_SAMPLES), replace=False)
        learning_rate = net.learning_rate
        for epoch in progress(range(net.epochs), net.epochs, "network epochs"):
            # overflow shows up as a non-finite loss, reported below as one clear error
            with np.errstate(over="ignore", invalid="ignore"):
                losses.extend(self.epoch(train, learning_rate))
                train_acc.append(self.accuracy(probe))
                val_acc += [self.accuracy(val)] if len(val) else []
            finite = all(np.isfinite(weight).all() for weight in self.weights.values())
            check_diverged(losses[-1] if finite else np.inf, epoch, net.learning_rate)
            learning_rate *= net.lr_decay
        net.loss_history_ = np.asarray(losses, dtype=np.float32)
        net.train_acc_history_ = np.asarray(train_acc)
        net.val_acc_history_ = np.asarray(val_acc)
        net.n_iter_ = net.epochs
        return self.weights

    def epoch(self, train: np.ndarray, learning_rate: float) -> list[float]:
        """One shuffled pass over ``train``; the loss of every step."""
        order = self.rng.permutation(train)
        losses, size = [], len(self.batch)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = self.batch[: len(rows)]
            np.take(self.X, rows, axis=0, out=batch)
            loss, grads = self.gradients(batch, self.y[rows])
            for name, grad in grads.items():
                self.weights[name] = self.optimizers[name].step(
                    self.weights[name], grad, learning_rate
                )
            losses.append(loss)
        return losses

    def gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient of every weight array on one minibatch."""
        w, net = self.weights, self.net
        hidden, affine1 = affine_forward(X, w["W1_"], w["b1_"])
        hidden, relu = relu_forward(hidden)
        hidden, drop = dropout_forward(hidden, net.dropout, self.rng)
        scores, affine2 = affine_forward(hidden, w["W2_"], w["b2_"])
        loss, dscores = softmax_loss(scores, y)
        dhidden, dW2, db2 = affine_backward(dscores, affine2)
        dhidden = relu_backward(dropout_backward(dhidden, drop), relu)
        _, dW1, db1 = affine_backward(dhidden, affine1, input_grad=False)
        for weight, grad in ((w["W1_"], dW1), (w["W2_"], dW2)):
            grad += (2 * net.reg) * weight
            loss += net.reg * float(np.vdot(weight, weight))
        return loss, {"W1_": dW1, "b1_": db1, "W2_": dW2, "b2_": db2}

    def accuracy(self, rows: np.ndarray) -> float:
        w = self.weights
        hidden = np.maximum(self.X[rows] @ w["W1_"] + w["b1_"], 0)
        scores = hidden @ w["W2_"] + w["b2_"]
        return float(np.mean(np.argmax(scores, axis=1) == self.y[rows]))


def _check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1); got {dropout!r}")


def _he(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """He initialization: normal weights with variance ``2 / fan_in``."""
    weights = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
    weights *= np.float32(np.sqrt(2.0 / fan_in))
    return weights


def _split(n: int, fraction: float | None, rng: np.random.Generator):
    """Training and validation indices (no validation set unless asked for)."""
    n_val = min(n - 1, max(1, round(fraction * n))) if fraction else 0
    if fraction and n_val < 1:
        raise ValueError(f"val_fraction={fraction} needs at least 2 samples; got {n}")
    order = rng.permutation(n)
    return np.sort(order[n_val:]), order[:n_val]


def net_pipeline(features=None, **params) -> Pipeline:
    """``[features ->] standardize -> TwoLayerNet(**params)`` as one estimator.

    Parameters
    ----------
    features : None, list of str, or transformer, default=None
        None: the network sees the pixels. Names (``"pixels"``, ``"hog"``,
        ``"color"``) go to :func:`imgclf.features.make_features`; a
        transformer is used as given.
    **params
        Any :class:`TwoLayerNet` parameter.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``["features",] "standardize", "net"``; it takes uint8 images
        ``(n, H, W, C)``. The standardization is
        ``MeanImage(scale="std")``: every feature centred on its training mean
        and divided by its training standard deviation.

    Examples
    --------
    >>> net_pipeline(["hog", "color"], hidden=200).named_steps["net"].hidden
    200
    """
    from imgclf.features import make_features

    steps = []
    if features is not None:
        steps.append(
            ("features", features if hasattr(features, "transform") else make_features(features))
        )
    steps += [("standardize", MeanImage(scale="std")), ("net", TwoLayerNet(**params))]
    return Pipeline(steps)
