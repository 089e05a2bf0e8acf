"""LinearClassifier and MeanImage: scikit-learn's contract, accuracy, determinism, errors."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgclf import io
from imgclf.datasets import load_digits
from imgclf.errors import NotFittedError
from imgclf.linear import (
    DEFAULT_LEARNING_RATES,
    LinearClassifier,
    MeanImage,
    linear_pipeline,
    lr_reg_search,
)


@parametrize_with_checks(
    [
        LinearClassifier(),
        LinearClassifier(loss="svm", optimizer="adam", val_fraction=0.2, early_stopping=True),
        MeanImage(),
        MeanImage(scale="std"),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_fits_digits_above_90_percent(digits, loss):
    train, test = digits["train"], digits["test"]
    lr = {"softmax": 0.3, "svm": 0.03}[loss]
    model = linear_pipeline(loss=loss, scale="std", learning_rate=lr, epochs=30)
    model.fit(train.images, train.labels)
    assert model.score(test.images, test.labels) > 0.9


def blobs(n=150, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    labels = rng.integers(0, 3, n)
    return (centres[labels] + rng.standard_normal((n, 2))).astype(np.float32), labels


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_same_seed_same_model_other_seed_other_model(loss):
    X, y = blobs()
    params = dict(loss=loss, learning_rate=0.01, epochs=3, batch_size=32)
    first = LinearClassifier(seed=7, **params).fit(X, y)
    again = LinearClassifier(seed=7, **params).fit(X, y)
    other = LinearClassifier(seed=8, **params).fit(X, y)
    np.testing.assert_array_equal(first.coef_, again.coef_)
    np.testing.assert_array_equal(first.loss_history_, again.loss_history_)
    assert not np.array_equal(first.coef_, other.coef_)


def test_string_labels():
    X, y = blobs()
    names = np.array(["cat", "dog", "ship"])[y]
    clf = LinearClassifier(learning_rate=0.05).fit(X, names)
    assert list(clf.classes_) == ["cat", "dog", "ship"]
    assert set(clf.predict(X)) <= {"cat", "dog", "ship"}
    assert clf.score(X, names) > 0.95


def test_learned_attributes():
    X, y = blobs()
    clf = LinearClassifier(epochs=4, batch_size=50).fit(X, y)
    assert clf.coef_.shape == (3, 2) and clf.coef_.dtype == np.float32
    assert clf.intercept_.shape == (3,) and clf.intercept_.dtype == np.float32
    assert clf.loss_history_.shape == (4 * 3,)  # 150 samples in batches of 50, 4 epochs
    assert clf.n_iter_ == 4 and clf.val_score_history_.size == 0
    np.testing.assert_allclose(
        clf.decision_function(X), X @ clf.coef_.T + clf.intercept_, rtol=1e-5, atol=1e-5
    )


def test_decision_function_shapes():
    X, y = blobs()
    assert LinearClassifier().fit(X, y).decision_function(X[:7]).shape == (7, 3)
    binary = LinearClassifier().fit(X, y == 1)
    decision = binary.decision_function(X[:7])
    assert decision.shape == (7,)
    np.testing.assert_array_equal(
        binary.classes_[(decision > 0).astype(int)], binary.predict(X[:7])
    )


def test_predict_proba_rows_sum_to_one_and_svm_has_none():
    X, y = blobs()
    proba = LinearClassifier().fit(X, y).predict_proba(X)
    assert proba.shape == (len(X), 3) and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    svm = LinearClassifier(loss="svm").fit(X, y)
    assert not hasattr(svm, "predict_proba")
    with pytest.raises(AttributeError) as error:
        svm.predict_proba(X)
    assert "only available with loss='softmax'" in str(error.value.__cause__)


def test_images_are_flattened():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, 60)
    clf = LinearClassifier(learning_rate=1e-5).fit(images, labels)
    assert clf.coef_.shape == (2, 48)
    np.testing.assert_array_equal(clf.predict(images), clf.predict(images.reshape(60, -1)))


@pytest.mark.parametrize("method", ["predict", "decision_function", "predict_proba", "score"])
def test_not_fitted_error(method):
    X, y = blobs(10)
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError):
        getattr(LinearClassifier(), method)(*args)


@pytest.mark.parametrize(
    "param, value, message",
    [
        ("loss", "hinge", r"loss must be one of 'softmax', 'svm'; got 'hinge'"),
        ("standardize", "std", r"standardize must be one of False, True; got 'std'"),
        (
            "optimizer",
            "rmsprop",
            r"optimizer must be one of 'sgd', 'momentum', 'adam'; got 'rmsprop'",
        ),
        ("reg", -1.0, r"reg must be a non-negative number; got -1.0"),
        ("learning_rate", 0, r"learning_rate must be a positive number; got 0"),
        ("epochs", 0, r"epochs must be >= 1; got 0"),
        ("epochs", 2.5, r"epochs must be an integer; got 2.5"),
        ("batch_size", 0, r"batch_size must be >= 1; got 0"),
        ("lr_decay", 1.5, r"lr_decay must be in \(0, 1\]; got 1.5"),
        ("seed", -3, r"seed must be >= 0; got -3"),
        ("val_fraction", 1.0, r"val_fraction must be in \(0, 1\) or None; got 1.0"),
        ("early_stopping", "yes", r"early_stopping must be one of False, True; got 'yes'"),
        ("patience", 0, r"patience must be >= 1; got 0"),
    ],
)
def test_bad_parameters_name_argument_and_value(param, value, message):
    X, y = blobs(20)
    with pytest.raises(ValueError, match=message):
        LinearClassifier(**{param: value}).fit(X, y)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        LinearClassifier().fit(np.zeros((5, 2)), np.ones(5))


def test_divergence_names_the_learning_rate():
    X, y = blobs()
    with pytest.raises(ValueError, match=r"diverged .*learning_rate=1e\+30;"):
        LinearClassifier(learning_rate=1e30, loss="svm").fit(X * 1e10, y)


def test_early_stopping_keeps_the_best_epoch():
    X, y = blobs(400)
    clf = LinearClassifier(
        learning_rate=0.05, epochs=60, val_fraction=0.25, early_stopping=True, patience=2
    ).fit(X, y)
    assert clf.n_iter_ < 60
    assert clf.val_score_history_.shape == (clf.n_iter_,)
    assert clf.val_score_history_.max() > 0.95


def test_mean_image_learns_from_training_data_only():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    mean = MeanImage().fit(train)
    expected = test.reshape(10, -1) - train.reshape(50, -1).mean(axis=0)
    out = mean.transform(test)
    assert out.dtype == np.float32 and out.shape == (10, 48)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mean.transform(train).mean(axis=0), 0, atol=1e-4)


@pytest.mark.parametrize("scale, divisor", [("std", None), (255.0, 255.0)])
def test_mean_image_scales(scale, divisor):
    X = np.random.default_rng(0).normal(5, 3, (200, 6))
    X[:, 0] = 1.0  # a constant feature: its std 0 is replaced by 1
    out = MeanImage(scale=scale).fit_transform(X)
    if divisor is None:
        np.testing.assert_allclose(out[:, 1:].std(axis=0), 1, rtol=1e-4)
        np.testing.assert_array_equal(out[:, 0], 0)
    else:
        np.testing.assert_allclose(out, (X - X.mean(axis=0)) / divisor, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("scale", ["max", 0, -1.0])
def test_mean_image_bad_scale(scale):
    with pytest.raises(
        ValueError,
        match=rf"scale must be None, 'std' or a positive number; "
        rf"got {scale!r}",
    ):
        MeanImage(scale=scale).fit(np.zeros((3, 2)))


def test_lr_reg_search_scores_every_pair():
    X, y = blobs(200)
    results = lr_reg_search(
        X[:150], y[:150], X[150:], y[150:], [1e-2, 1e30], [0.0, 1e-3], epochs=2, loss="svm"
    )
    assert sorted(results) == [(1e-2, 0.0), (1e-2, 1e-3), (1e30, 0.0), (1e30, 1e-3)]
    assert results[(1e-2, 0.0)][1] > 0.9
    assert all(0 <= v <= 1 or np.isnan(v) for pair in results.values() for v in pair)


# --- standardize and the defaults ---------------------------------------------------------


def epoch_losses(clf) -> np.ndarray:
    """Mean minibatch loss of every epoch, shape (n_iter_,)."""
    return clf.loss_history_.reshape(clf.n_iter_, -1).mean(axis=1)


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_defaults_fit_raw_digits(digits, loss):
    """No hyperparameter but the loss: raw uint8 pixels, loss falls, accuracy > 0.9."""
    train, test = digits["train"], digits["test"]
    assert train.images.dtype == np.uint8
    clf = LinearClassifier(loss=loss).fit(train.images, train.labels)
    losses = epoch_losses(clf)
    assert losses[-1] < losses[0]
    assert clf.score(test.images, test.labels) > 0.9


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_standardized_fit_is_insensitive_to_the_input_scale(digits, loss):
    """X, X / 255 and X * 1000 with one learning rate: the same predictions."""
    train, test = digits["train"], digits["test"]
    X, X_test = train.images.astype(np.float64), test.images.astype(np.float64)
    reference = LinearClassifier(loss=loss, epochs=5).fit(X, train.labels)
    for factor in (1 / 255, 1000):
        clf = LinearClassifier(loss=loss, epochs=5).fit(X * factor, train.labels)
        np.testing.assert_allclose(clf.mean_, reference.mean_ * factor, rtol=1e-5)
        np.testing.assert_array_equal(clf.predict(X_test * factor), reference.predict(X_test))
        # float32 rounding of the standardized inputs differs by the factor; SGD carries
        # those 1e-7 differences along, which leaves the scores equal to 1% of their range
        expected = reference.decision_function(X_test)
        np.testing.assert_allclose(
            clf.decision_function(X_test * factor), expected, atol=0.01 * np.abs(expected).max()
        )


def test_folded_weights_score_as_the_standardized_model(digits):
    """coef_ / intercept_ on raw pixels == the weights trained on standardized ones."""
    train, test = digits["train"], digits["test"]
    folded = LinearClassifier(epochs=3).fit(train.images, train.labels)

    def standardized(images):  # the NumPy reference of the training's standardization
        rows = images.reshape(len(images), -1).astype(np.float32)
        return (rows - folded.mean_) / folded.scale_

    X = standardized(train.images)
    plain = LinearClassifier(epochs=3, standardize=False).fit(X, train.labels)
    np.testing.assert_array_equal(folded.loss_history_, plain.loss_history_)  # the same training
    # features constant in training (always 0 once standardized) get weight 0 when folded
    constant = (X == 0).all(axis=0)
    assert constant.any() and (folded.coef_[:, constant] == 0).all()
    for images in (train.images, test.images):
        inputs = standardized(images).astype(np.float64)
        inputs[:, constant] = 0
        reference = inputs @ plain.coef_.T + plain.intercept_
        scores = folded.decision_function(images)
        np.testing.assert_allclose(scores, reference, rtol=0, atol=1e-5 * np.abs(reference).max())
        np.testing.assert_array_equal(folded.predict(images), plain.classes_[reference.argmax(1)])


def test_standardization_learned_from_the_training_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, (200, 3))
    X[:, 1] = 7.0  # constant: scale 1, not 0
    y = rng.integers(0, 2, 200)
    clf = LinearClassifier(epochs=2).fit(X, y)
    np.testing.assert_allclose(clf.mean_, X.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(clf.scale_, [X[:, 0].std(), 1.0, X[:, 2].std()], rtol=1e-6)
    held_out = LinearClassifier(epochs=2, val_fraction=0.5).fit(X, y)
    assert not np.allclose(held_out.mean_, clf.mean_)  # only the rows trained on count
    off = LinearClassifier(epochs=2, standardize=False).fit(X, y)
    np.testing.assert_array_equal(off.mean_, np.zeros(3, np.float32))
    np.testing.assert_array_equal(off.scale_, np.ones(3, np.float32))


def test_default_learning_rate_depends_on_the_loss():
    X, y = blobs()
    for loss, rate in DEFAULT_LEARNING_RATES.items():
        explicit = LinearClassifier(loss=loss, learning_rate=rate, epochs=2).fit(X, y)
        default = LinearClassifier(loss=loss, epochs=2).fit(X, y)
        np.testing.assert_array_equal(default.coef_, explicit.coef_)
    assert LinearClassifier().get_params()["learning_rate"] is None


def test_mean_image_pipeline_still_fits(digits):
    train, test = digits["train"], digits["test"]
    for model in (
        make_pipeline(MeanImage(), LinearClassifier()),
        linear_pipeline(loss="svm", scale="std"),
    ):
        model.fit(train.images, train.labels)
        assert model.score(test.images, test.labels) > 0.9


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_saved_and_loaded_classifier_predicts_the_same(tmp_path, digits, loss):
    train, test = digits["train"], digits["test"]
    clf = LinearClassifier(loss=loss, epochs=3).fit(train.images, train.labels)
    io.save(clf, tmp_path / "linear.npz", model_type="linear")
    loaded = io.load(tmp_path / "linear.npz").model
    np.testing.assert_array_equal(loaded.mean_, clf.mean_)
    np.testing.assert_array_equal(loaded.predict(test.images), clf.predict(test.images))
    np.testing.assert_array_equal(
        loaded.decision_function(test.images), clf.decision_function(test.images)
    )
