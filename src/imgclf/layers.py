"""Layers of a neural network as pure forward/backward function pairs.

Each ``*_forward`` returns ``(out, cache)``; the matching ``*_backward`` takes
the upstream gradient ``dout`` (same shape as ``out``) and that ``cache`` and
returns the gradients of the inputs, as in CS231n. Nothing is stored between
calls, so a network is a composition of these functions and each can be
checked on its own against finite differences (see ``tests/test_nn.py``).

Arrays keep the dtype they are given: float32 to train fast, float64 to check
gradients.

=====================  ==========================================  ========================
function               forward                                     backward returns
=====================  ==========================================  ========================
affine                 ``x @ w + b``                               ``dx, dw, db``
relu                   ``max(x, 0)``                               ``dx``
dropout                zero a share ``p`` of units, scale the      ``dx``
                       rest by ``1 / (1 - p)`` (inverted dropout)
softmax_loss           mean cross-entropy of class scores          ``(loss, dscores)`` at once
=====================  ==========================================  ========================

Examples
--------
>>> import numpy as np
>>> x, w, b = np.ones((2, 3)), np.full((3, 4), 0.5), np.zeros(4)
>>> scores, cache = affine_forward(x, w, b)
>>> loss, dscores = softmax_loss(scores, np.array([0, 1]))
>>> dx, dw, db = affine_backward(dscores, cache)
>>> round(loss, 4), dx.shape, dw.shape, db.shape   # equal scores: loss = log(4)
(1.3863, (2, 3), (3, 4), (4,))
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "affine_backward",
    "affine_forward",
    "dropout_backward",
    "dropout_forward",
    "relu_backward",
    "relu_forward",
    "softmax_loss",
]


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Fully connected layer ``out = x @ w + b``.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    w : ndarray, shape (D, M)
    b : ndarray, shape (M,)

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : tuple
        ``(x, w)``, for :func:`affine_backward`.
    """
    out = x @ w
    out += b
    return out, (x, w)


def affine_backward(dout: np.ndarray, cache: tuple, *, input_grad: bool = True):
    """Gradients of :func:`affine_forward`.

    Parameters
    ----------
    dout : ndarray, shape (N, M)
    cache : tuple
        From :func:`affine_forward`.
    input_grad : bool, default=True
        False skips ``dx`` (returned as None): a network's first layer has no
        use for the gradient of its input, which costs a third of the layer.

    Returns
    -------
    dx : ndarray, shape (N, D), or None
    dw : ndarray, shape (D, M)
    db : ndarray, shape (M,)
    """
    x, w = cache
    dx = dout @ w.T if input_grad else None
    return dx, x.T @ dout, dout.sum(axis=0)


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rectified linear unit ``max(x, 0)``, any shape; the cache is the output."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu_forward`: ``dout`` where the unit was active, else 0.

    At ``x = 0`` the subgradient 0 is used.
    """
    return dout * (cache > 0)


def dropout_forward(
    x: np.ndarray, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout at training time: zero each unit with probability ``p``.

    The survivors are scaled by ``1 / (1 - p)`` so the expected output equals
    ``x``: at prediction time the layer is simply left out.

    Parameters
    ----------
    x : ndarray, any shape
    p : float
        Probability of *dropping* a unit, in [0, 1) (PyTorch's convention;
        CS231n's assignment passes the probability of keeping it).
    rng : numpy.random.Generator
        Draws the mask (the only randomness; a seeded generator repeats it).

    Returns
    -------
    out : ndarray, shape and dtype of ``x``
    cache : ndarray or None
        The scaled mask, for :func:`dropout_backward` (None when ``p == 0``).
    """
    if p == 0:
        return x, None
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
    mask /= x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, cache: np.ndarray | None) -> np.ndarray:
    """Gradient of :func:`dropout_forward`: ``dout`` through the same scaled mask."""
    return dout if cache is None else dout * cache


def softmax_loss(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of class scores and its gradient.

    ``loss = -mean_i log(exp(s_iy_i) / sum_j exp(s_ij))``; the scores are
    shifted by their row maximum first so ``exp`` cannot overflow. (For the
    loss of a linear model with its weight gradient, see
    :func:`imgclf.linear.softmax_loss`.)

    Parameters
    ----------
    scores : ndarray, shape (N, C)
    y : ndarray of int, shape (N,)
        Labels in ``[0, C)``.

    Returns
    -------
    loss : float
    dscores : ndarray, shape (N, C), dtype of ``scores``
    """
    n = len(scores)
    rows = np.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    total = probs.sum(axis=1, keepdims=True)
    loss = (np.log(total[:, 0]).sum() - shifted[rows, y].sum()) / n
    probs /= total
    probs[rows, y] -= 1  # d loss / d scores = (p - onehot(y)) / n
    probs /= n
    return float(loss), probs
