"""LinearClassifier: scores ``f(x) = W x + b``, trained by minibatch SGD or full-batch L-BFGS."""

from __future__ import annotations

import os

import numpy as np
from sklearn.utils.metaestimators import available_if
from threadpoolctl import threadpool_limits

from imgclf._minibatch import MinibatchClassifier, MinibatchTraining
from imgclf._validation import check_choice, check_int
from imgclf.defaults import LINEAR, LINEAR_LEARNING_RATES
from imgclf.linear.lbfgs import SOLVERS, design_matrix, train_lbfgs
from imgclf.linear.losses import softmax_loss, svm_loss
from imgclf.optimizers import make_optimizer

__all__ = ["DEFAULT_LEARNING_RATES", "LOSSES", "SOLVERS", "LinearClassifier"]

LOSSES = {"softmax": softmax_loss, "svm": svm_loss}
#: the initial step size ``learning_rate=None`` stands for, by loss (see LinearClassifier)
# the defaults live in one table (imgclf.defaults), shared with the command line
DEFAULT_LEARNING_RATES = LINEAR_LEARNING_RATES
THREADED_VALUES = 1 << 24  # L-BFGS on a design matrix this large uses every BLAS thread
INIT_SCALE = 1e-3  # small random weights: every class starts with nearly equal scores


class LinearClassifier(MinibatchClassifier):
    """Multiclass linear classifier (softmax or SVM) trained by minibatch SGD or L-BFGS.

    Each class ``c`` has a template ``coef_[c]`` and a bias ``intercept_[c]``;
    a sample's score for ``c`` is ``coef_[c] @ x + intercept_[c]`` and the
    highest score wins. Training folds the bias into the weights (the bias
    trick: a column of ones is appended to each minibatch) and works in
    float32; each step is a few matrix products over a minibatch, never a
    Python loop over samples. Images ``(n, H, W, C)`` are flattened.

    Parameters
    ----------
    loss : {"softmax", "svm"}, default="softmax"
        Cross-entropy of the softmax, or an SVM (see :mod:`imgclf.linear.losses`):
        with ``solver="sgd"`` the Weston–Watkins multiclass hinge, with
        ``solver="lbfgs"`` the one-vs-all squared hinge (L2-SVM), which is
        differentiable, as a quasi-Newton method needs.
    standardize : bool, default=True
        Train on every feature centred on its training mean and divided by its
        training standard deviation (1 for a constant feature), so that one
        learning rate serves pixels 0-255, pixels 0-1 and features alike.
        After training the standardization is folded into ``coef_`` and
        ``intercept_``, which score the raw inputs; ``mean_`` and ``scale_``
        keep it for reference. False trains on the inputs as given.
    reg : float, default=0.01
        L2 penalty ``reg * sum(W ** 2)`` on the weights ``W`` of the
        standardized inputs (``coef_ * scale_`` with ``standardize=True``);
        the bias is not penalized. Little effect on CIFAR-10 between 1e-4 and
        0.1; 0.01 keeps weights bounded on small data sets.
    learning_rate : float or None, default=None
        Initial step size. None: ``DEFAULT_LEARNING_RATES[loss]``, 0.02 for
        the softmax and 0.003 for the SVM. The hinge's gradient sums up to
        ``n_classes - 1`` violated margins per sample, so the SVM needs a
        smaller step: at 0.01 or more its CIFAR-10 accuracy falls below 0.38,
        while the softmax needs 0.02 to fit small sets (scikit-learn's
        digits) within the default epochs.
    epochs : int, default=20
        Passes over the training data (about 15 s on 49,000 CIFAR-10 images
        on one core).
    batch_size : int, default=64
        Samples per gradient step (the last step of an epoch may have fewer).
        64 rather than 200 gives small data sets three times as many steps
        per epoch, at no loss of accuracy on CIFAR-10.
    optimizer : {"sgd", "momentum", "adam"}, default="sgd"
        Update rule (see :mod:`imgclf.optimizers`). Plain SGD generalized best
        on CIFAR-10 (Adam overfits a linear model: 0.39 against 0.43).
    lr_decay : float, default=0.85
        The learning rate is multiplied by this after every epoch, in (0, 1]:
        large early steps fit quickly, the small late ones (4% of the first
        after 20 epochs) let the weights settle.
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
    solver : {"sgd", "lbfgs"}, default="sgd"
        ``"sgd"``: minibatch steps for ``epochs`` epochs (``learning_rate``,
        ``batch_size``, ``optimizer``, ``lr_decay`` and ``early_stopping``
        apply). ``"lbfgs"``: the whole objective minimized from zero weights by
        scipy's L-BFGS-B (:mod:`imgclf.linear.lbfgs`), to convergence or
        ``max_iter`` iterations; it needs the training rows in memory and
        makes one float32 standardized copy of them. Better on wide features:
        on 6,400 k-means features of CIFAR-10 SGD underfits (see the README).
    max_iter : int, default=1000
        L-BFGS iterations at most (``solver="lbfgs"`` only).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Sorted labels seen in ``fit`` (any type, strings too).
    coef_ : ndarray of float32, shape (n_classes, n_features)
        One template per class, in ``classes_`` order.
    intercept_ : ndarray of float32, shape (n_classes,)
    mean_ : ndarray of float32, shape (n_features,)
        Training mean of each feature (zeros with ``standardize=False``).
    scale_ : ndarray of float32, shape (n_features,)
        Training standard deviation of each feature, 1 where it is 0 (ones
        with ``standardize=False``).
    loss_history_ : ndarray of float32, shape (n_steps,)
        Minibatch loss (regularization included) at every gradient step, on
        the standardized inputs; with L-BFGS, the whole objective at the start
        and after every iteration.
    val_score_history_ : ndarray, shape (n_iter_,)
        Validation accuracy after each epoch; empty without a validation set.
        With L-BFGS, one value: the accuracy of the final weights.
    n_iter_ : int
        Epochs run (fewer than ``epochs`` if stopped early), or L-BFGS iterations.
    n_features_in_ : int

    Notes
    -----
    The defaults were chosen on validation data: 1,000 images held out of
    CIFAR-10's training set (0.42 softmax, 0.40 SVM on raw uint8 pixels,
    trained on the other 49,000) and a fifth of scikit-learn's digits
    (above 0.9 for both losses); see ``benchmarks/bench_defaults.py``.

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
        loss=LINEAR["loss"],
        standardize=LINEAR["standardize"],
        reg=LINEAR["reg"],
        learning_rate=LINEAR["learning_rate"],
        epochs=LINEAR["epochs"],
        batch_size=LINEAR["batch_size"],
        optimizer=LINEAR["optimizer"],
        lr_decay=LINEAR["lr_decay"],
        seed=0,
        val_fraction=None,
        early_stopping=False,
        patience=5,
        solver="sgd",
        max_iter=1000,
    ):
        self.loss = loss
        self.standardize = standardize
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
        self.solver = solver
        self.max_iter = max_iter

    def _check_model_params(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("early_stopping", self.early_stopping, (False, True))
        check_int("patience", self.patience, low=1)
        check_choice("solver", self.solver, SOLVERS)
        check_int("max_iter", self.max_iter, low=1)
        if self.solver == "lbfgs" and self.early_stopping:
            raise ValueError(
                "early_stopping=True needs solver='sgd' (it stops between epochs); "
                "got solver='lbfgs', which runs to convergence or max_iter"
            )

    def _val_fraction(self) -> float | None:
        return self.val_fraction or (0.1 if self.early_stopping else None)

    def _learning_rate(self) -> float:
        if self.learning_rate is None:
            return DEFAULT_LEARNING_RATES[self.loss]
        return self.learning_rate

    def _train(self, X, y, rng, train, val, standardization) -> dict:
        """``coef_``, ``intercept_`` and the histories; see :class:`_Training`, :func:`_lbfgs`."""
        if self.solver == "lbfgs":
            W, history = _lbfgs(self, X, y, train, val, standardization)
        else:
            W, history = _Training(self, X, y, rng, standardization).run_linear(train, val)
        # trained on standardized inputs; the public weights score the raw ones
        coef, intercept = standardization.fold(W[:-1], W[-1])
        return {"coef_": np.ascontiguousarray(coef.T), "intercept_": intercept.copy(), **history}

    def _float64_weights(self) -> tuple[np.ndarray, np.ndarray]:
        return self.coef_.T.astype(np.float64), self.intercept_

    @staticmethod
    def _block_scores(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        return X @ coef + intercept

    @available_if(lambda self: _softmax_only(self))
    def predict_proba(self, X):
        """Softmax of the scores, ``(n, n_classes)`` in ``classes_`` order; rows sum to 1.

        Only for ``loss="softmax"``: SVM scores are not probabilities, so an SVM
        has no ``predict_proba`` attribute at all (``hasattr`` is False).
        """
        return super().predict_proba(X)


class _Training(MinibatchTraining):
    """One fit's minibatch loop: weights ``W`` ``(d + 1, C)`` with the bias as last row."""

    def __init__(self, clf: LinearClassifier, X: np.ndarray, y: np.ndarray, rng, standardization):
        super().__init__(clf, X, y, rng, standardization)
        self.label = f"{clf.loss} epochs"
        self.loss_fn = LOSSES[clf.loss]
        self.optimizer = make_optimizer(clf.optimizer)
        W = INIT_SCALE * rng.standard_normal((X.shape[1] + 1, int(y.max()) + 1))
        self.weights["W"] = W.astype(np.float32)
        self.weights["W"][-1] = 0
        # the minibatch buffer's last column stays 1: the bias trick
        self.batch = np.ones((len(self.batch), X.shape[1] + 1), np.float32)

    def run_linear(self, train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, dict]:
        """Train for the epochs asked (or until early stopping); weights and histories."""
        clf = self.estimator
        tracker = _BestEpoch(clf.patience if clf.early_stopping else None)

        def end_of_epoch() -> bool:
            return bool(len(val)) and tracker.out_of_patience(self.W, self.accuracy(val))

        losses = self.run(train, end_of_epoch)
        history = {
            "loss_history_": np.asarray(losses, dtype=np.float32),
            "val_score_history_": np.asarray(tracker.scores),
            "n_iter_": self.epochs_run,
        }
        return (tracker.best_W if clf.early_stopping else self.W), history

    @property
    def W(self) -> np.ndarray:
        return self.weights["W"]

    def step(self, batch: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        loss, grad = self.loss_fn(self.W, batch, y, self.estimator.reg, bias_row=True)
        self.weights["W"] = self.optimizer.step(self.W, grad, learning_rate)
        return loss

    def scores(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W[:-1] + self.W[-1]


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


def _lbfgs(clf: LinearClassifier, X, y, train, val, standardization) -> tuple:
    """Weights ``(d + 1, C)`` and histories from full-batch L-BFGS on the rows ``train``."""
    if getattr(X, "lazy", False):
        raise ValueError(
            "solver='lbfgs' trains on all rows in memory, and this X on disk is larger than "
            "the in-memory limit: use solver='sgd' (--solver sgd), which reads it in windows, "
            "or raise $IMGCLF_IN_MEMORY_BYTES"
        )
    X1 = design_matrix(X, train, standardization)
    # the minibatch frame asked for one BLAS thread; large full-batch products get every
    # core, small ones keep one (on digits, two threads on a busy machine were 12x slower)
    threads = os.cpu_count() if X1.size >= THREADED_VALUES else 1
    with threadpool_limits(limits=threads, user_api="blas"):
        W, losses, n_iter = train_lbfgs(
            X1, y[train], int(y.max()) + 1, clf.loss, clf.reg, clf.max_iter
        )
        del X1
        scores = []
        if len(val):
            predicted = np.argmax(design_matrix(X, val, standardization) @ W, axis=1)
            scores.append(float(np.mean(predicted == y[val])))
    history = {"loss_history_": losses, "val_score_history_": np.asarray(scores), "n_iter_": n_iter}
    return W, history


def _softmax_only(clf: LinearClassifier) -> bool:
    if clf.loss != "softmax":
        raise AttributeError(
            f"predict_proba is only available with loss='softmax'; "
            f"this classifier has loss={clf.loss!r}"
        )
    return True
