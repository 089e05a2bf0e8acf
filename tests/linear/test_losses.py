"""SVM, squared hinge and softmax losses: vectorized against loops, gradients against
finite differences."""

import numpy as np
import pytest

from imgclf.linear import softmax_loss, softmax_loss_naive, svm_loss, svm_loss_naive
from imgclf.linear.losses import squared_hinge_loss, squared_hinge_loss_naive

PAIRS = [
    (svm_loss, svm_loss_naive),
    (softmax_loss, softmax_loss_naive),
    (squared_hinge_loss, squared_hinge_loss_naive),
]


def problem(n=40, d=12, c=5, scale=0.1, seed=0, dtype=np.float64):
    """Random data with a ones column (the bias trick) and random weights."""
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((n, d)), np.ones((n, 1))]).astype(dtype)
    W = (scale * rng.standard_normal((d + 1, c))).astype(dtype)
    return W, X, rng.integers(0, c, n)


@pytest.mark.parametrize("fast, naive", PAIRS)
@pytest.mark.parametrize("reg", [0.0, 0.05])
@pytest.mark.parametrize("bias_row", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_equals_naive(fast, naive, reg, bias_row, seed):
    W, X, y = problem(seed=seed, scale=0.5)
    loss, grad = fast(W, X, y, reg, bias_row=bias_row)
    expected_loss, expected_grad = naive(W, X, y, reg, bias_row=bias_row)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


def numeric_gradient(f, W, h=1e-5):
    grad = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        old = W[index]
        W[index] = old + h
        plus = f(W)
        W[index] = old - h
        minus = f(W)
        W[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


def relative_error(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8))


def margins_far_from_kinks(W, X, y, h):
    """True if no hinge margin is within reach of a +-h step in any weight."""
    scores = X @ W
    margins = scores - scores[np.arange(len(y)), y][:, None] + 1
    margins[np.arange(len(y)), y] = np.inf
    return np.abs(margins).min() > 10 * h * np.abs(X).max()


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss, squared_hinge_loss])
@pytest.mark.parametrize("bias_row", [False, True])
def test_gradient_matches_central_differences(loss_fn, bias_row):
    h = 1e-5
    for seed in range(20):  # the first random draw whose margins avoid the kinks
        W, X, y = problem(n=25, d=6, c=4, scale=0.5, seed=seed)
        if loss_fn is not svm_loss or margins_far_from_kinks(W, X, y, h):
            break
    numeric = numeric_gradient(lambda w: loss_fn(w, X, y, 0.1, bias_row=bias_row)[0], W, h)
    _, analytic = loss_fn(W, X, y, 0.1, bias_row=bias_row)
    assert relative_error(numeric, analytic) < 1e-6


@pytest.mark.parametrize("c", [3, 10])
def test_small_random_weights_give_chance_losses(c):
    W, X, y = problem(n=500, d=100, c=c, scale=1e-4)
    assert softmax_loss(W, X, y, 0.0)[0] == pytest.approx(np.log(c), rel=1e-2)
    assert svm_loss(W, X, y, 0.0)[0] == pytest.approx(c - 1, rel=1e-2)


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss, squared_hinge_loss])
def test_float32_in_float32_out(loss_fn):
    W, X, y = problem(dtype=np.float32)
    loss, grad = loss_fn(W, X, y, 1e-3)
    assert grad.dtype == np.float32 and grad.shape == W.shape
    assert isinstance(loss, float)


@pytest.mark.parametrize("loss_fn", [svm_loss, softmax_loss, squared_hinge_loss])
def test_bias_row_is_left_out_of_the_penalty(loss_fn):
    W, X, y = problem()
    reg = 0.3
    with_bias, grad_with = loss_fn(W, X, y, reg)
    without_bias, grad_without = loss_fn(W, X, y, reg, bias_row=True)
    assert with_bias - without_bias == pytest.approx(reg * np.sum(W[-1] ** 2))
    np.testing.assert_allclose(grad_with[-1] - grad_without[-1], 2 * reg * W[-1])
    np.testing.assert_allclose(grad_with[:-1], grad_without[:-1])


def test_softmax_is_stable_for_huge_scores():
    W, X, y = problem(scale=1e4)
    loss, grad = softmax_loss(W, X, y, 0.0)
    assert np.isfinite(loss) and np.isfinite(grad).all()


def test_perfectly_separated_svm_has_zero_loss_and_gradient():
    X = np.eye(3)
    W = 5 * np.eye(3)
    loss, grad = svm_loss(W, X, np.arange(3), 0.0)
    assert loss == 0 and not grad.any()


def test_squared_hinge_is_one_binary_l2_svm_per_class():
    """Each class's term is the binary squared hinge of its own +1/-1 targets."""
    W, X, y = problem(scale=0.5)
    scores = X @ W
    expected = sum(
        np.mean(np.maximum(0, 1 - np.where(y == c, 1, -1) * scores[:, c]) ** 2)
        for c in range(W.shape[1])
    )
    assert squared_hinge_loss(W, X, y, 0.0)[0] == pytest.approx(expected, rel=1e-12)
    small, _ = squared_hinge_loss(np.zeros_like(W), X, y, 0.0)
    assert small == pytest.approx(W.shape[1])  # all scores 0: every margin is 1
