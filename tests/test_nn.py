"""Layers against finite differences; TwoLayerNet as an estimator; its pictures."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgclf import io
from imgclf._minibatch import Standardization
from imgclf.datasets import load_digits
from imgclf.errors import NotFittedError
from imgclf.layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from imgclf.nn import TwoLayerNet, _Training, net_pipeline
from imgclf.plots.nn import first_layer, training_curves
from tests.plots_helpers import assert_png


def numeric_gradient(f, x, h=1e-5):
    """Central differences of the scalar ``f()`` with respect to every entry of ``x``."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + h
        plus = f()
        x[index] = old - h
        minus = f()
        x[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


def relative_error(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8))


# --- layers ------------------------------------------------------------------------------


def test_affine_gradients():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    dout = rng.standard_normal((6, 4))

    def f():
        return np.sum(affine_forward(x, w, b)[0] * dout)

    dx, dw, db = affine_backward(dout, affine_forward(x, w, b)[1])
    for analytic, wrt in ((dx, x), (dw, w), (db, b)):
        assert relative_error(analytic, numeric_gradient(f, wrt)) < 1e-7
    assert affine_backward(dout, (x, w), input_grad=False)[0] is None


def test_relu_gradient_away_from_the_kink():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 6))
    x[np.abs(x) < 1e-3] = 0.5  # a step of h must not cross 0
    dout = rng.standard_normal(x.shape)
    dx = relu_backward(dout, relu_forward(x)[1])
    assert relative_error(dx, numeric_gradient(lambda: np.sum(relu_forward(x)[0] * dout), x)) < 1e-8
    np.testing.assert_array_equal(dx[x < 0], 0)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.75])
def test_dropout_gradient(p):
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((8, 6)), rng.standard_normal((8, 6))

    def f():  # the same mask on every call: a fresh generator with the same seed
        return np.sum(dropout_forward(x, p, np.random.default_rng(9))[0] * dout)

    dx = dropout_backward(dout, dropout_forward(x, p, np.random.default_rng(9))[1])
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-7


@pytest.mark.parametrize("p", [0.0, 0.3, 0.75])
def test_dropout_drops_a_share_p_and_scales_the_rest(p):
    x = np.random.default_rng(2).standard_normal((100, 100))
    out, _ = dropout_forward(x, p, np.random.default_rng(9))
    assert abs(np.mean(out == 0) - p) < 0.02
    np.testing.assert_allclose(out[out != 0], x[out != 0] / (1 - p))  # inverted dropout


def test_softmax_loss_value_and_gradient():
    rng = np.random.default_rng(3)
    scores, y = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    loss, dscores = softmax_loss(scores, y)
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(8), y])), rel=1e-12)
    assert (
        relative_error(dscores, numeric_gradient(lambda: softmax_loss(scores, y)[0], scores)) < 1e-7
    )
    huge = softmax_loss(scores * 1e4, y)  # shifted by the row maximum: no overflow
    assert np.isfinite(huge[0]) and np.isfinite(huge[1]).all()


def test_layers_keep_float32():
    x = np.ones((3, 4), np.float32)
    out, cache = affine_forward(x, np.ones((4, 2), np.float32), np.zeros(2, np.float32))
    loss, dscores = softmax_loss(relu_forward(out)[0], np.array([0, 1, 0]))
    dropped, _ = dropout_forward(out, 0.5, np.random.default_rng(0))
    assert {a.dtype for a in (out, dscores, dropped, *affine_backward(dscores, cache))} == {
        np.dtype(np.float32)
    }


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_network_gradient_matches_its_loss(dropout):
    """The net's own backward pass, run in float64, against differences of its loss."""
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    net = TwoLayerNet(hidden=7, reg=0.05, dropout=dropout)
    training = _Training(net, X.astype(np.float32), y, rng, Standardization.identity(6))
    training.weights = {
        k: w.astype(np.float64) + 0.01 * rng.standard_normal(w.shape)
        for k, w in training.weights.items()
    }

    def loss_and_grads():
        training.rng = np.random.default_rng(5)  # the same dropout mask every time
        return training.gradients(X, y)

    _, grads = loss_and_grads()
    for name, weight in training.weights.items():
        numeric = numeric_gradient(lambda: loss_and_grads()[0], weight)
        assert relative_error(grads[name], numeric) < 1e-6, name


# --- TwoLayerNet -------------------------------------------------------------------------


@parametrize_with_checks(
    [
        TwoLayerNet(),
        TwoLayerNet(optimizer="sgd", learning_rate=0.1, dropout=0.5, val_fraction=0.2),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def digits_net(digits):
    train = digits["train"]
    return net_pipeline(hidden=64, learning_rate=0.01, epochs=15, val_fraction=0.1).fit(
        train.images, train.labels
    )


def test_fits_digits_above_90_percent(digits, digits_net):
    assert digits_net.score(digits["test"].images, digits["test"].labels) > 0.9
    assert [name for name, _ in digits_net.steps] == ["standardize", "net"]


def test_learned_attributes_and_histories(digits_net):
    net = digits_net.named_steps["net"]
    assert net.W1_.shape == (64, 64) and net.b1_.shape == (64,)
    assert net.W2_.shape == (64, 10) and net.b2_.shape == (10,)
    assert {w.dtype for w in (net.W1_, net.b1_, net.W2_, net.b2_)} == {np.dtype(np.float32)}
    n_train = 1437 - round(0.1 * 1437)
    assert net.loss_history_.shape == (15 * -(-n_train // net.batch_size),)
    assert net.train_acc_history_.shape == net.val_acc_history_.shape == (15,)
    assert net.n_iter_ == 15 and net.val_acc_history_[-1] > 0.85
    assert net.loss_history_[-10:].mean() < net.loss_history_[:10].mean() / 3


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    labels = rng.integers(0, 3, n)
    return (centres[labels] + rng.standard_normal((n, 2))).astype(np.float32), labels


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_same_seed_same_model_other_seed_other_model(optimizer):
    X, y = blobs()
    params = dict(
        hidden=16,
        optimizer=optimizer,
        learning_rate=0.01,
        epochs=3,
        batch_size=32,
        dropout=0.2,
        val_fraction=0.2,
    )
    first = TwoLayerNet(seed=3, **params).fit(X, y)
    again = TwoLayerNet(seed=3, **params).fit(X, y)
    other = TwoLayerNet(seed=4, **params).fit(X, y)
    for name in ("W1_", "b1_", "W2_", "b2_", "loss_history_", "val_acc_history_"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.W1_, other.W1_)


def test_predictions_and_probabilities():
    X, y = blobs()
    names = np.array(["cat", "dog", "ship"])[y]
    net = TwoLayerNet(hidden=16, learning_rate=0.01, batch_size=32, dropout=0.3).fit(X, names)
    assert list(net.classes_) == ["cat", "dog", "ship"] and net.score(X, names) > 0.9
    probs = net.predict_proba(X)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    np.testing.assert_array_equal(net.classes_[probs.argmax(axis=1)], net.predict(X))
    hidden = np.maximum(X @ net.W1_ + net.b1_, 0)
    np.testing.assert_allclose(
        net.decision_function(X), hidden @ net.W2_ + net.b2_, rtol=1e-5, atol=1e-5
    )
    assert TwoLayerNet().fit(X, y == 1).decision_function(X[:5]).shape == (5,)


def test_saved_and_loaded_network_predicts_the_same(tmp_path, digits, digits_net):
    path = io.save(digits_net, tmp_path / "net.imgclf", model_type="net")
    loaded = io.load(path).model
    test = digits["test"].images
    np.testing.assert_array_equal(loaded.predict(test), digits_net.predict(test))
    np.testing.assert_array_equal(loaded[-1].val_acc_history_, digits_net[-1].val_acc_history_)


def test_feature_pipeline_round_trips_once_its_classes_are_registered(tmp_path, monkeypatch):
    from imgclf import features

    known = {**io.model_classes(), "FeatureSet": features.FeatureSet}
    monkeypatch.setattr(io, "model_classes", lambda: known)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
    model = net_pipeline("hog,color", hidden=8, epochs=2).fit(images, rng.integers(0, 3, 30))
    loaded = io.load(io.save(model, tmp_path / "hog.imgclf", model_type="net")).model
    np.testing.assert_array_equal(loaded.predict_proba(images), model.predict_proba(images))
    assert loaded.named_steps["features"].get_params() == model[0].get_params()


def test_pipeline_with_features():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    model = net_pipeline(["hog", "color"], hidden=8, epochs=2).fit(images, rng.integers(0, 2, 40))
    assert [name for name, _ in model.steps] == ["features", "standardize", "net"]
    assert model.named_steps["net"].W1_.shape == (2 * 2 * 9 + 10, 8)  # one block on 16x16


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(hidden=0), r"hidden must be >= 1; got 0"),
        (dict(hidden=2.5), r"hidden must be an integer; got 2.5"),
        (dict(reg=-1.0), r"reg must be a non-negative number; got -1.0"),
        (dict(learning_rate=0), r"learning_rate must be a positive number; got 0"),
        (dict(epochs=0), r"epochs must be >= 1; got 0"),
        (dict(batch_size=0), r"batch_size must be >= 1; got 0"),
        (
            dict(optimizer="rmsprop"),
            r"optimizer must be one of 'sgd', 'momentum', 'adam'; "
            r"got 'rmsprop'",
        ),
        (dict(lr_decay=1.5), r"lr_decay must be in \(0, 1\]; got 1.5"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\); got 1.0"),
        (dict(dropout=-0.1), r"dropout must be a number in \[0, 1\); got -0.1"),
        (dict(seed=-1), r"seed must be >= 0; got -1"),
        (dict(val_fraction=1.0), r"val_fraction must be in \(0, 1\) or None; got 1.0"),
    ],
    ids=str,
)
def test_bad_parameters_name_argument_value_and_accepted(params, message):
    X, y = blobs(20)
    with pytest.raises(ValueError, match=message):
        TwoLayerNet(**params).fit(X, y)


def test_divergence_and_misuse_are_clear_errors():
    X, y = blobs()
    with pytest.raises(ValueError, match=r"training diverged .* learning_rate=1e\+30"):
        TwoLayerNet(optimizer="sgd", learning_rate=1e30).fit(X * 1e6, y)
    with pytest.raises(NotFittedError):
        TwoLayerNet().predict(X)
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        TwoLayerNet().fit(X, np.zeros(len(X)))


# --- pictures ----------------------------------------------------------------------------


def test_training_curves_png(tmp_path, digits_net):
    figure = training_curves(digits_net, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    (accuracy_axes,) = [ax for ax in figure.axes if ax.get_title() == "Accuracy after each epoch"]
    assert [line.get_label() for line in accuracy_axes.lines] == ["training", "validation"]


def test_training_curves_without_validation(tmp_path):
    X, y = blobs()
    figure = training_curves(TwoLayerNet(epochs=3).fit(X, y), tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    assert len(figure.axes[1].lines) == 1


def test_first_layer_png(tmp_path, digits_net):
    figure = first_layer(digits_net, (8, 8, 1), tmp_path / "w1.png", max_units=30)
    assert_png(tmp_path / "w1.png")
    assert sum(bool(ax.get_title()) for ax in figure.axes) == 30
    rng = np.random.default_rng(0)
    colour = TwoLayerNet(hidden=5, epochs=1).fit(
        rng.random((20, 4 * 4 * 3)), rng.integers(0, 2, 20)
    )
    first_layer(colour, (4, 4, 3), tmp_path / "colour.png")
    assert_png(tmp_path / "colour.png")
    with pytest.raises(
        ValueError,
        match=r"first layer takes 64 inputs, not images of shape "
        r"\(32, 32, 3\)",
    ):
        first_layer(digits_net, (32, 32, 3))


# --- standardize and the defaults ---------------------------------------------------------


@pytest.fixture(scope="module")
def default_net(digits):
    train = digits["train"]
    return TwoLayerNet().fit(train.images, train.labels)


def test_defaults_fit_raw_digits(digits, default_net):
    """No hyperparameter: raw uint8 pixels, the epoch loss falls, accuracy > 0.9."""
    assert digits["train"].images.dtype == np.uint8
    losses = default_net.loss_history_.reshape(default_net.n_iter_, -1).mean(axis=1)
    assert losses[-1] < losses[0]
    assert default_net.score(digits["test"].images, digits["test"].labels) > 0.9


def test_standardized_fit_is_insensitive_to_the_input_scale(digits):
    """X, X / 255 and X * 1000 with one learning rate: the same predictions."""
    train, test = digits["train"], digits["test"]
    X, X_test = train.images.astype(np.float64), test.images.astype(np.float64)
    reference = TwoLayerNet(hidden=32, epochs=3).fit(X, train.labels)
    expected = reference.decision_function(X_test)
    for factor in (1 / 255, 1000):
        net = TwoLayerNet(hidden=32, epochs=3).fit(X * factor, train.labels)
        np.testing.assert_array_equal(net.predict(X_test * factor), reference.predict(X_test))
        # float32 rounding of the standardized inputs differs with the factor; training
        # carries those 1e-7 differences along a little
        np.testing.assert_allclose(
            net.decision_function(X_test * factor), expected, atol=0.01 * np.abs(expected).max()
        )


def test_folded_first_layer_scores_as_the_standardized_network(digits):
    """W1_ / b1_ on raw pixels == the first layer trained on standardized ones."""
    train, test = digits["train"], digits["test"]
    folded = TwoLayerNet(hidden=32, epochs=3).fit(train.images, train.labels)

    def standardized(images):  # the NumPy reference of the training's standardization
        rows = images.reshape(len(images), -1).astype(np.float32)
        return (rows - folded.mean_) / folded.scale_

    X = standardized(train.images)
    plain = TwoLayerNet(hidden=32, epochs=3, standardize=False).fit(X, train.labels)
    np.testing.assert_array_equal(folded.loss_history_, plain.loss_history_)
    np.testing.assert_array_equal(folded.W2_, plain.W2_)
    constant = (X == 0).all(axis=0)  # constant in training: weight 0 once folded
    assert constant.any() and (folded.W1_[constant] == 0).all()
    for images in (train.images, test.images):
        inputs = standardized(images).astype(np.float64)
        inputs[:, constant] = 0
        hidden = np.maximum(inputs @ plain.W1_ + plain.b1_, 0)
        reference = hidden @ plain.W2_ + plain.b2_
        scores = folded.decision_function(images)
        np.testing.assert_allclose(scores, reference, rtol=0, atol=1e-5 * np.abs(reference).max())


def test_saved_and_loaded_default_network_predicts_the_same(tmp_path, digits, default_net):
    path = io.save(default_net, tmp_path / "net.imgclf", model_type="net")
    loaded = io.load(path).model
    test = digits["test"].images
    for name in ("W1_", "b1_", "mean_", "scale_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(default_net, name))
    np.testing.assert_array_equal(loaded.predict(test), default_net.predict(test))
    np.testing.assert_array_equal(loaded.predict_proba(test), default_net.predict_proba(test))
