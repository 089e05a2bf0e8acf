"""Each update rule walks downhill on a simple quadratic, without touching its input."""

import numpy as np
import pytest

from imgclf.optimizers import OPTIMIZERS, make_optimizer

# f(w) = 0.5 w' A w with an anisotropic A: the minimum is w = 0
A = np.diag([1.0, 10.0]).astype(np.float32)
LEARNING_RATES = {"sgd": 0.05, "momentum": 0.02, "adam": 0.05}


def quadratic(w):
    return 0.5 * float(w @ A @ w)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_decreases_a_quadratic(name):
    optimizer = make_optimizer(name)
    w = np.array([3.0, -2.0], dtype=np.float32)
    start = quadratic(w)
    for _ in range(300):
        w = optimizer.step(w, A @ w, LEARNING_RATES[name])
    assert quadratic(w) < 1e-3 * start
    assert w.dtype == np.float32


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_first_step_goes_against_the_gradient_and_keeps_the_input(name):
    w = np.array([1.0, 1.0], dtype=np.float32)
    new = make_optimizer(name).step(w, A @ w, 0.01)
    assert (new < w).all()
    np.testing.assert_array_equal(w, [1.0, 1.0])


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(ValueError, match=r"optimizer must be one of .*'adam'.*; got 'rmsprop'"):
        make_optimizer("rmsprop")
