"""TwoLayerNet: affine - ReLU - affine - softmax, trained by minibatch gradient descent.

The network is a composition of the pure layer functions of
:mod:`imgclf.layers`, trained in float32 with the update rules of
:mod:`imgclf.optimizers`. :func:`net_pipeline` puts features (optional)
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
from sklearn.pipeline import Pipeline

from imgclf._minibatch import MinibatchClassifier, MinibatchTraining
from imgclf._validation import check_int
from imgclf.defaults import NET
from imgclf.layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from imgclf.optimizers import make_optimizer
from imgclf.preprocessing import MeanImage

__all__ = ["TwoLayerNet", "net_pipeline"]

WEIGHTS = ("W1_", "b1_", "W2_", "b2_")  # every learned array, in forward order
TRAIN_ACC_SAMPLES = 1000  # per-epoch training accuracy is measured on this many samples


class TwoLayerNet(MinibatchClassifier):
    """Two-layer fully connected network: ``softmax(relu(x W1 + b1) W2 + b2)``.

    Weights start from He initialization (normal with variance ``2 / fan_in``,
    which keeps the scale of ReLU activations from layer to layer), biases at
    zero. Training runs in float32 on shuffled minibatches; the loss is the
    mean softmax cross-entropy plus ``reg * (sum(W1 ** 2) + sum(W2 ** 2))``
    (biases are not penalized, as in
    :class:`~imgclf.linear.LinearClassifier`). Images ``(n, H, W, C)`` are
    flattened; the inputs are standardized inside (``standardize=True``), so
    raw uint8 pixels need no preprocessing.

    Parameters
    ----------
    hidden : int, default=100
        Units in the hidden layer. 200 gains about one point on CIFAR-10 for
        twice the training time.
    standardize : bool, default=True
        Train on every feature centred on its training mean and divided by its
        training standard deviation (1 for a constant feature): He
        initialization assumes inputs of unit scale, and one learning rate
        then serves pixels 0-255, pixels 0-1 and features alike. After
        training the standardization is folded into ``W1_`` and ``b1_``, which
        take the raw inputs; ``mean_`` and ``scale_`` keep it for reference.
        False trains on the inputs as given.
    reg : float, default=1e-3
        L2 penalty on ``W1_`` and ``W2_`` (of the standardized inputs). The
        network overfits CIFAR-10 (training accuracy 0.7 against 0.55); 1e-3
        narrows that gap a little without slowing the fit.
    learning_rate : float, default=1e-3
        Initial step size; Adam's usual one.
    epochs : int, default=15
        Passes over the training data (about 1.5 min on 49,000 CIFAR-10
        images on one core); validation accuracy stops improving before 15.
    batch_size : int, default=64
        Samples per gradient step (the last step of an epoch may have fewer).
        64 rather than 200 gives small data sets three times as many steps
        per epoch (digits: 0.93 against 0.90).
    optimizer : {"sgd", "momentum", "adam"}, default="adam"
        Update rule (see :mod:`imgclf.optimizers`), one state per weight array.
    lr_decay : float, default=0.9
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
    mean_ : ndarray of float32, shape (n_features,)
        Training mean of each feature (zeros with ``standardize=False``).
    scale_ : ndarray of float32, shape (n_features,)
        Training standard deviation of each feature, 1 where it is 0 (ones
        with ``standardize=False``).
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
    The defaults were chosen on validation data: 1,000 images held out of
    CIFAR-10's training set (0.55 on raw uint8 pixels, trained on the other
    49,000) and a fifth of scikit-learn's digits (0.93); see
    ``benchmarks/bench_defaults.py``.

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
        hidden=NET["hidden"],
        standardize=NET["standardize"],
        reg=NET["reg"],
        learning_rate=NET["learning_rate"],
        epochs=NET["epochs"],
        batch_size=NET["batch_size"],
        optimizer=NET["optimizer"],
        lr_decay=NET["lr_decay"],
        dropout=NET["dropout"],
        seed=0,
        val_fraction=None,
    ):
        self.hidden = hidden
        self.standardize = standardize
        self.reg = reg
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr_decay = lr_decay
        self.dropout = dropout
        self.seed = seed
        self.val_fraction = val_fraction

    def _check_model_params(self) -> None:
        check_int("hidden", self.hidden, low=1)
        _check_dropout(self.dropout)

    def _train(self, X, y, rng, train, val, standardization) -> dict:
        """The weights ``W1_, b1_, W2_, b2_`` and the histories; see :class:`_Training`."""
        fitted = _Training(self, X, y, rng, standardization).run_net(train, val)
        # trained on standardized inputs; the public first layer takes the raw ones
        fitted["W1_"], fitted["b1_"] = standardization.fold(fitted["W1_"], fitted["b1_"])
        return fitted

    def _float64_weights(self) -> list[np.ndarray]:
        return [np.asarray(getattr(self, name), np.float64) for name in WEIGHTS]

    @staticmethod
    def _block_scores(X, W1, b1, W2, b2) -> np.ndarray:
        return np.maximum(X @ W1 + b1, 0) @ W2 + b2


class _Training(MinibatchTraining):
    """One fit's minibatch loop over the weights ``W1_, b1_, W2_, b2_``."""

    label = "network epochs"

    def __init__(
        self,
        net: TwoLayerNet,
        X: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        standardization,
    ):
        super().__init__(net, X, y, rng, standardization)
        n_features, n_classes = X.shape[1], int(y.max()) + 1
        self.weights = {
            "W1_": _he(rng, n_features, net.hidden),
            "b1_": np.zeros(net.hidden, np.float32),
            "W2_": _he(rng, net.hidden, n_classes),
            "b2_": np.zeros(n_classes, np.float32),
        }
        self.optimizers = {name: make_optimizer(net.optimizer) for name in WEIGHTS}

    def run_net(self, train: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
        """Train for every epoch; the weights and the histories, by attribute name."""
        train_acc, val_acc = [], []
        probe = self.rng.choice(train, min(len(train), TRAIN_ACC_SAMPLES), replace=False)

        def end_of_epoch() -> bool:
            train_acc.append(self.accuracy(probe))
            val_acc.extend([self.accuracy(val)] if len(val) else [])
            return False

        losses = self.run(train, end_of_epoch)
        return {
            **self.weights,
            "loss_history_": np.asarray(losses, dtype=np.float32),
            "train_acc_history_": np.asarray(train_acc),
            "val_acc_history_": np.asarray(val_acc),
            "n_iter_": self.epochs_run,
        }

    def step(self, batch: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        loss, grads = self.gradients(batch, y)
        for name, grad in grads.items():
            self.weights[name] = self.optimizers[name].step(self.weights[name], grad, learning_rate)
        return loss

    def gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient of every weight array on one minibatch."""
        w, net = self.weights, self.estimator
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

    def scores(self, X: np.ndarray) -> np.ndarray:
        w = self.weights
        return np.maximum(X @ w["W1_"] + w["b1_"], 0) @ w["W2_"] + w["b2_"]


def _check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1); got {dropout!r}")


def _he(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """He initialization: normal weights with variance ``2 / fan_in``."""
    weights = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
    weights *= np.float32(np.sqrt(2.0 / fan_in))
    return weights


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
        and divided by its training standard deviation. The network
        standardizes its inputs itself (``standardize=True``), so this step
        changes nothing in what is learned; it stays so that the pipeline's
        steps, and the model files written from it, keep their form.

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
