"""LinearClassifier(solver="lbfgs"): the objective's minimum, against NumPy and scikit-learn."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgclf import io
from imgclf._minibatch import Standardization
from imgclf.datasets import load_digits
from imgclf.linear import LinearClassifier
from imgclf.linear.lbfgs import design_matrix, preconditioner, train_lbfgs

REG = 0.01


def problem(n=300, d=20, c=4, seed=0):
    """Overlapping classes: the optimum has margins on both sides of the hinge."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, :c] + 0.8 * rng.standard_normal((n, c))).argmax(1)
    return X, y


def objective(loss, X, y, coef, intercept, reg=REG):
    """The stated objective in float64 NumPy: mean loss + reg * |coef|^2 (bias free)."""
    scores = X.astype(np.float64) @ coef.T.astype(np.float64) + intercept
    if loss == "svm":
        signs = np.where(y[:, None] == np.arange(scores.shape[1]), 1.0, -1.0)
        data = np.mean(np.sum(np.maximum(0, 1 - signs * scores) ** 2, axis=1))
    else:
        shifted = scores - scores.max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        data = -np.mean(log_p[np.arange(len(y)), y])
    return data + reg * np.sum(coef.astype(np.float64) ** 2)


def scikit_learn(loss, X, y, reg=REG):
    """The same objective by scikit-learn: ``C = 1 / (2 n reg)`` turns its sum into our mean.

    LinearSVC penalizes its intercept as a feature of value ``intercept_scaling``;
    at 1000 that penalty is a millionth of ours on a weight, negligible.
    """
    C = 1 / (2 * len(X) * reg)
    if loss == "svm":
        model = LinearSVC(C=C, intercept_scaling=1000, tol=1e-10, max_iter=100_000)
    else:
        model = LogisticRegression(C=C, tol=1e-10, max_iter=10_000)
    return model.fit(X, y)


@parametrize_with_checks([LinearClassifier(solver="lbfgs", loss="svm", max_iter=50)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_reaches_the_minimum_scikit_learn_finds(loss):
    X, y = problem()
    ours = LinearClassifier(loss=loss, solver="lbfgs", standardize=False, reg=REG).fit(X, y)
    theirs = scikit_learn(loss, X, y)
    ours_value = objective(loss, X, y, ours.coef_, ours.intercept_)
    theirs_value = objective(loss, X, y, theirs.coef_, theirs.intercept_)
    assert ours_value == pytest.approx(theirs_value, rel=1e-6)
    assert ours.loss_history_[-1] == pytest.approx(ours_value, rel=1e-5)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=2e-3)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_the_objective_falls_every_iteration(loss):
    X, y = problem(seed=1)
    clf = LinearClassifier(loss=loss, solver="lbfgs", max_iter=200).fit(X, y)
    assert len(clf.loss_history_) == clf.n_iter_ + 1
    assert np.all(np.diff(clf.loss_history_) <= 1e-6 * clf.loss_history_[0])
    assert clf.loss_history_[0] == pytest.approx(4.0 if loss == "svm" else np.log(4), rel=1e-6)


def test_standardized_weights_score_the_raw_inputs():
    """Trained on standardized columns, folded back: the same scores as training on them."""
    X, y = problem(seed=2)
    X = X * np.geomspace(0.01, 100, X.shape[1]).astype(np.float32) + 50
    folded = LinearClassifier(loss="svm", solver="lbfgs").fit(X, y)
    standardized = (X - X.mean(0)) / X.std(0)
    plain = LinearClassifier(loss="svm", solver="lbfgs", standardize=False).fit(standardized, y)
    np.testing.assert_allclose(
        folded.decision_function(X), plain.decision_function(standardized), atol=1e-3
    )


def test_design_matrix_is_the_standardized_rows_and_a_column_of_ones():
    X, _ = problem(n=10_000, d=6)
    rows = np.arange(1, 10_000, 2)
    standardization = Standardization.learn(X, rows)
    X1 = design_matrix(X, rows, standardization)
    expected = (X[rows] - X[rows].mean(0)) / X[rows].std(0)
    np.testing.assert_allclose(X1[:, :-1], expected, atol=1e-5)
    assert X1.dtype == np.float32 and np.all(X1[:, -1] == 1)


def test_max_iter_bounds_the_iterations_and_validation_is_scored_once():
    X, y = problem()
    clf = LinearClassifier(loss="softmax", solver="lbfgs", max_iter=3, val_fraction=0.2).fit(X, y)
    assert clf.n_iter_ == 3
    assert clf.val_score_history_.shape == (1,) and 0.3 < clf.val_score_history_[0] <= 1


def test_train_lbfgs_starts_from_zero_weights():
    X, y = problem(n=50)
    X1 = np.hstack([X, np.ones((len(X), 1), np.float32)])
    W, losses, n_iter = train_lbfgs(X1, y, 4, "svm", REG, max_iter=1)
    assert W.shape == (X.shape[1] + 1, 4) and W.dtype == np.float32 and n_iter == 1
    assert losses[0] == pytest.approx(4.0)  # zero weights: four margins of 1


def test_a_warm_start_reaches_the_same_minimum_in_fewer_iterations():
    """From the optimum for another reg, or for fewer rows: the same optimum, sooner."""
    X, y = problem(n=400, seed=3)
    X1 = np.hstack([X, np.ones((len(X), 1), np.float32)])
    cold, cold_losses, cold_iter = train_lbfgs(X1, y, 4, "svm", REG, max_iter=300)
    nearby, _, _ = train_lbfgs(X1[:350], y[:350], 4, "svm", 2 * REG, max_iter=300)
    warm, warm_losses, warm_iter = train_lbfgs(X1, y, 4, "svm", REG, 300, start=nearby)
    assert warm_losses[0] < cold_losses[0] and warm_iter < cold_iter
    assert warm_losses[-1] == pytest.approx(cold_losses[-1], rel=1e-5)
    np.testing.assert_allclose(warm, cold, atol=2e-3)
    # started at the optimum itself, nothing is left to do
    _, again, n_iter = train_lbfgs(X1, y, 4, "svm", REG, 300, start=cold)
    assert again[0] == pytest.approx(cold_losses[-1], rel=1e-6) and n_iter <= 2


def test_preconditioner_factors_the_hessian_with_all_margins_active():
    """``L L^T = 2 X1^T X1 / n + 2 reg I`` (no reg on the bias), up to the tiny jitter."""
    X, _ = problem(n=200, d=8, seed=4)
    X1 = np.hstack([X, np.ones((len(X), 1), np.float32)])
    L = preconditioner(X1, None, len(X1), "svm", REG)
    expected = 2 * X1.T.astype(np.float64) @ X1 / len(X1) + np.diag([2 * REG] * 8 + [0])
    assert L.dtype == np.float32 and np.allclose(np.triu(L, 1), 0)
    np.testing.assert_allclose(L.astype(np.float64) @ L.T, expected, atol=1e-4)


def test_a_shared_factor_changes_the_path_not_the_optimum():
    """One factor, built for another reg and from more rows, serves every fit of a grid."""
    X, y = problem(n=400, seed=5)
    X1 = np.hstack([X, np.ones((len(X), 1), np.float32)])
    shared = preconditioner(X1, None, len(X1), "svm", 2 * REG)
    for reg in (4 * REG, REG):
        own, own_losses, _ = train_lbfgs(X1[:350], y[:350], 4, "svm", reg, max_iter=300)
        W, losses, _ = train_lbfgs(X1[:350], y[:350], 4, "svm", reg, 300, factor=shared)
        assert losses[-1] == pytest.approx(own_losses[-1], rel=1e-6)
        np.testing.assert_allclose(W, own, atol=2e-3)
        np.testing.assert_array_equal(np.argmax(X1 @ W, 1), np.argmax(X1 @ own, 1))
        coef, intercept = W[:-1].T, W[-1]
        assert objective("svm", X[:350], y[:350], coef, intercept, reg) == pytest.approx(
            losses[-1], rel=1e-5
        )


def test_beats_sgd_on_digits():
    """Converged, the SVM fits digits better than 20 epochs of SGD (0.969 against 0.919)."""
    digits = load_digits()
    train, test = digits["train"], digits["test"]
    sgd = LinearClassifier(loss="svm").fit(train.images, train.labels)
    lbfgs = LinearClassifier(loss="svm", solver="lbfgs").fit(train.images, train.labels)
    assert lbfgs.score(test.images, test.labels) > sgd.score(test.images, test.labels)
    assert lbfgs.score(train.images, train.labels) > sgd.score(train.images, train.labels)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"solver": "newton"}, r"solver must be one of 'sgd', 'lbfgs'; got 'newton'"),
        ({"solver": "lbfgs", "max_iter": 0}, r"max_iter must be >= 1; got 0"),
        (
            {"solver": "lbfgs", "early_stopping": True},
            r"early_stopping=True needs solver='sgd'.*got solver='lbfgs'",
        ),
    ],
)
def test_bad_parameters_name_argument_and_value(params, message):
    X, y = problem(n=20)
    with pytest.raises(ValueError, match=message):
        LinearClassifier(**params).fit(X, y)


def test_model_file_keeps_the_solver(tmp_path):
    X, y = problem()
    clf = LinearClassifier(loss="svm", solver="lbfgs", max_iter=40).fit(X, y)
    io.save(clf, tmp_path / "m.npz", model_type="linear")
    loaded = io.load(tmp_path / "m.npz").model
    assert loaded.get_params()["solver"] == "lbfgs" and loaded.max_iter == 40
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_no_regularization_with_repeated_and_constant_columns():
    """The preconditioner stays positive definite: reg 0, a column twice, a constant column."""
    X, y = problem(n=100, d=4)
    X = np.hstack([X, X[:, :1], np.full((100, 1), 3, np.float32)])
    clf = LinearClassifier(loss="svm", solver="lbfgs", reg=0.0).fit(X, y)
    assert np.isfinite(clf.coef_).all() and clf.coef_[:, -1].tolist() == [0.0] * 4
    assert clf.score(X, y) >= LinearClassifier(solver="lbfgs").fit(X, y).score(X, y) - 0.02


def test_each_solver_reports_only_its_own_settings():
    from imgclf.experiments import hyperparameters

    X, y = problem()
    lbfgs = hyperparameters(LinearClassifier(solver="lbfgs").fit(X, y))
    sgd = hyperparameters(LinearClassifier(epochs=2).fit(X, y))
    sgd_only = {"learning_rate", "epochs", "batch_size", "optimizer", "lr_decay"}
    assert not sgd_only & lbfgs.keys() and lbfgs["max_iter"] == 1000
    assert sgd_only <= sgd.keys() and "max_iter" not in sgd


def test_a_search_with_lbfgs_varies_the_regularization_only():
    import typer

    from imgclf.cli import _options as opt

    fixed = opt.model_settings("linear", "svm", None, 0, "kmeans")
    assert fixed["solver"] == "lbfgs"
    assert list(opt.search_grid("linear", "svm", fixed=fixed)) == ["reg"]
    assert opt.search_grid("linear", "svm", reg="0.1,1", fixed=fixed) == {"reg": [0.1, 1.0]}
    assert "learning_rate" in opt.search_grid("linear", "svm", fixed={"solver": "sgd"})
    with pytest.raises(typer.BadParameter, match="--lr: L-BFGS has no learning rate"):
        opt.search_grid("linear", "svm", lr="0.1", fixed=fixed | {"solver": "lbfgs"})
    # learning rates given without a solver mean SGD, k-means features or not
    assert "solver" not in opt.model_settings("linear", "svm", None, 0, "kmeans", lr="0.1")
    explicit = opt.model_settings("linear", "svm", None, 0, "kmeans", solver="lbfgs", lr="0.1")
    assert explicit["solver"] == "lbfgs"
