"""Update rules for gradient descent: one small class per rule.

Every optimizer has ``step(w, grad, learning_rate) -> new w``: the learning rate
is passed each step so the caller owns its schedule (decay per epoch).
State (velocity, moments) lives on the optimizer and has the shape and dtype
of ``w``, created at the first step. ``w`` itself is never modified in place.

Examples
--------
>>> import numpy as np
>>> w = np.array([3.0])
>>> opt = make_optimizer("momentum")
>>> for _ in range(200):
...     w = opt.step(w, 2 * w, 0.05)   # minimise w**2
>>> bool(abs(w[0]) < 1e-3)
True
"""

from __future__ import annotations

import numpy as np

from imgclf._validation import check_choice

__all__ = ["OPTIMIZERS", "SGD", "Adam", "Momentum", "make_optimizer"]


class SGD:
    """Plain stochastic gradient descent: ``w - lr * grad``."""

    def step(self, w: np.ndarray, grad: np.ndarray, learning_rate: float) -> np.ndarray:
        return w - learning_rate * grad


class Momentum:
    """SGD with momentum: a velocity ``v = beta v - lr grad`` carries ``w`` along.

    Parameters
    ----------
    beta : float, default=0.9
        How much of the previous velocity is kept each step.
    """

    def __init__(self, beta: float = 0.9):
        self.beta = beta
        self.velocity: np.ndarray | None = None

    def step(self, w: np.ndarray, grad: np.ndarray, learning_rate: float) -> np.ndarray:
        if self.velocity is None:
            self.velocity = np.zeros_like(w)
        self.velocity = self.beta * self.velocity - learning_rate * grad
        return w + self.velocity


class Adam:
    """Adam (Kingma & Ba, 2015): steps scaled by running moments of the gradient.

    Parameters
    ----------
    beta1, beta2 : float, default=0.9, 0.999
        Decay rates of the first and second moment estimates.
    eps : float, default=1e-8
        Keeps the step finite where the second moment is zero.
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.t = 0

    def step(self, w: np.ndarray, grad: np.ndarray, learning_rate: float) -> np.ndarray:
        if self.m is None:
            self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * (grad * grad)
        # bias correction: both moments start at zero and would underestimate early on
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return w - learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str):
    """A fresh optimizer by name: ``"sgd"``, ``"momentum"`` or ``"adam"``."""
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)]()
