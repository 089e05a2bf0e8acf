"""Multiclass SVM and softmax losses of a linear score function ``s = x W``.

Each loss is a pure function ``(W, X, y, reg) -> (loss, grad)``:

- ``W`` : (D, C) weights, one column per class. With the *bias trick* (CS231n)
  ``X`` carries a last column of ones and the last row of ``W`` is the bias.
- ``X`` : (N, D) samples, one per row.
- ``y`` : (N,) integer labels in ``[0, C)``.
- ``reg`` : L2 strength; the penalty is ``reg * sum(W * W)``.

The gradient has the shape and dtype of ``W``: pass float32 to train fast,
float64 to check gradients by finite differences.

**The bias is not regularized when ``bias_row=True``.** CS231n penalises all of
``W``, bias included, which is the default here (a loss cannot know whether
the last row is a bias). :class:`~imgclf.linear.LinearClassifier` passes
``bias_row=True``: shrinking the bias towards zero only pulls every class
towards equal prior scores and makes the fit depend on where the data is
centred, as scikit-learn's linear models also avoid.

``squared_hinge_loss`` is the one-vs-all L2-SVM of Coates, Lee & Ng (2011) and
LIBLINEAR: a binary squared hinge per class, differentiable everywhere, so that
a quasi-Newton solver (:mod:`imgclf.linear.lbfgs`) can minimize it to convergence.

The ``*_naive`` versions loop over samples and classes; they are the plain
references the tests compare the vectorized ones against.
"""

from __future__ import annotations

import numpy as np

from imgclf import layers

__all__ = [
    "softmax_loss",
    "softmax_loss_naive",
    "squared_hinge_loss",
    "squared_hinge_loss_naive",
    "svm_loss",
    "svm_loss_naive",
]


def svm_loss(W, X, y, reg, *, bias_row=False):
    """Weston–Watkins multiclass hinge loss (margin 1) and its gradient.

    ``loss = mean_i sum_{j != y_i} max(0, s_ij - s_iy_i + 1) + reg * sum(W * W)``

    Parameters
    ----------
    W : ndarray, shape (D, C)
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    reg : float
    bias_row : bool, default=False
        True when the last row of ``W`` is the bias: it is left out of the penalty.

    Returns
    -------
    loss : float
    grad : ndarray, shape (D, C), dtype of ``W``
        At a kink (a margin exactly 0) the subgradient 0 is used.
    """
    n = len(X)
    rows = np.arange(n)
    scores = X @ W
    margins = scores - scores[rows, y][:, None] + 1
    np.maximum(margins, 0, out=margins)
    margins[rows, y] = 0
    # each violated margin pushes its class up and the true class down
    coeff = (margins > 0).astype(W.dtype)
    coeff[rows, y] = -coeff.sum(axis=1)
    grad = X.T @ coeff
    grad /= n
    return _regularized(margins.sum() / n, grad, W, reg, bias_row)


def softmax_loss(W, X, y, reg, *, bias_row=False):
    """Softmax cross-entropy loss and its gradient.

    ``loss = -mean_i log(exp(s_iy_i) / sum_j exp(s_ij)) + reg * sum(W * W)``;
    scores are shifted by their row maximum first so ``exp`` cannot overflow.

    Parameters
    ----------
    W : ndarray, shape (D, C)
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    reg : float
    bias_row : bool, default=False
        True when the last row of ``W`` is the bias: it is left out of the penalty.

    Returns
    -------
    loss : float
    grad : ndarray, shape (D, C), dtype of ``W``
    """
    # the layer computes the mean cross-entropy and d loss / d scores; chain through X @ W
    data_loss, dscores = layers.softmax_loss(X @ W, y)
    return _regularized(data_loss, X.T @ dscores, W, reg, bias_row)


def squared_hinge_loss(W, X, y, reg, *, bias_row=False):
    """One-vs-all squared hinge (L2-SVM) and its gradient.

    ``loss = mean_i sum_j max(0, 1 - t_ij s_ij) ** 2 + reg * sum(W * W)``, with
    ``t_ij = +1`` for the true class ``j = y_i`` and -1 for the others: each
    class is its own binary SVM, and the highest score wins.

    Parameters
    ----------
    W : ndarray, shape (D, C)
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    reg : float
    bias_row : bool, default=False
        True when the last row of ``W`` is the bias: it is left out of the penalty.

    Returns
    -------
    loss : float
        The data term is summed in float64 (a float32 sum over many rows would
        hide the small decreases a line search looks for).
    grad : ndarray, shape (D, C), dtype of ``W``
    """
    n = len(X)
    signs = np.full((n, W.shape[1]), -1, W.dtype)
    signs[np.arange(n), y] = 1
    # both products as (C, n) x (n, D) forms: with few classes BLAS streams X once per
    # product at nearly memory speed, about twice as fast as X @ W and X.T @ margins
    # (45,000 x 8,001 float32 rows, 10 classes; L-BFGS spends its time here)
    margins = 1 - signs * (W.T @ X.T).T
    np.maximum(margins, 0, out=margins)
    data_loss = np.einsum("ij,ij->", margins, margins, dtype=np.float64) / n
    # d loss / d s_ij = -2 t_ij max(0, margin_ij) / n
    margins *= signs
    margins *= -2 / n
    return _regularized(data_loss, (margins.T @ X).T, W, reg, bias_row)


def _regularized(data_loss, grad, W, reg, bias_row):
    """Add ``reg * sum(W * W)`` (bias row excluded if ``bias_row``) to loss and grad."""
    penalized = W[:-1] if bias_row else W
    grad[: len(penalized)] += (2 * reg) * penalized
    return float(data_loss + reg * np.sum(np.square(penalized), dtype=np.float64)), grad


def svm_loss_naive(W, X, y, reg, *, bias_row=False):
    """:func:`svm_loss` with explicit loops over samples and classes (reference)."""
    grad = np.zeros_like(W)
    loss = 0.0
    for i in range(len(X)):
        scores = X[i] @ W
        for j in range(W.shape[1]):
            margin = scores[j] - scores[y[i]] + 1
            if j != y[i] and margin > 0:
                loss += margin
                grad[:, j] += X[i]
                grad[:, y[i]] -= X[i]
    grad /= len(X)
    return _regularized(loss / len(X), grad, W, reg, bias_row)


def softmax_loss_naive(W, X, y, reg, *, bias_row=False):
    """:func:`softmax_loss` with explicit loops over samples and classes (reference)."""
    grad = np.zeros_like(W)
    loss = 0.0
    for i in range(len(X)):
        scores = X[i] @ W
        scores = scores - scores.max()
        total = sum(np.exp(s) for s in scores)
        loss += np.log(total) - scores[y[i]]
        for j in range(W.shape[1]):
            p = np.exp(scores[j]) / total
            grad[:, j] += (p - (j == y[i])) * X[i]
    grad /= len(X)
    return _regularized(loss / len(X), grad, W, reg, bias_row)


def squared_hinge_loss_naive(W, X, y, reg, *, bias_row=False):
    """:func:`squared_hinge_loss` with explicit loops over samples and classes (reference)."""
    grad = np.zeros_like(W)
    loss = 0.0
    for i in range(len(X)):
        scores = X[i] @ W
        for j in range(W.shape[1]):
            target = 1 if j == y[i] else -1
            margin = max(0.0, 1 - target * scores[j])
            loss += margin**2
            grad[:, j] -= 2 * margin * target * X[i]
    grad /= len(X)
    return _regularized(loss / len(X), grad, W, reg, bias_row)
