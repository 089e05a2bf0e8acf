"""Splits, cross-validation and the fast k-NN sweep against scikit-learn's GridSearchCV."""

import json
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsClassifier

from imgclf.datasets import load_digits
from imgclf.datasets.store import IN_MEMORY_ENV, StoreWriter, open_store
from imgclf.errors import DatasetError
from imgclf.model_selection import (
    cross_validate,
    kfold,
    repeated_train_val_split,
    sweep_knn,
    train_val_split,
    train_val_test_split,
)
from imgclf.model_selection.streamed import fold_neighbors
from imgclf.neighbors import ExactIndex, KNNClassifier
from tests.neighbors.test_search import full_distances

SK_METRIC = {"l1": "manhattan", "l2": "euclidean"}
KS = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]


@pytest.fixture(scope="module")
def digits():
    train = load_digits()["train"]
    return train.X, train.labels


def test_train_val_split_is_seeded_stratified_and_disjoint(digits):
    _, y = digits
    train, val = train_val_split(y, 0.2, seed=3)
    again, _ = train_val_split(y, 0.2, seed=3)
    other, _ = train_val_split(y, 0.2, seed=4)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(y)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    shares = np.bincount(y[val]) / len(val)
    np.testing.assert_allclose(shares, np.bincount(y) / len(y), atol=0.01)


def test_train_val_test_split_covers_everything_once(digits):
    _, y = digits
    parts = train_val_test_split(y, val_size=100, test_size=0.25, seed=0)
    assert [len(p) for p in parts[1:]] == [100, math.ceil(0.25 * len(y))]  # scikit-learn rounds up
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))


def test_repeated_split_starts_with_the_single_split_and_draws_new_ones(digits):
    _, y = digits
    splits = repeated_train_val_split(y, 100, repeats=4, seed=7)
    assert len(splits) == 4
    for i, (train, val) in enumerate(splits):
        expected = train_val_split(y, 100, seed=7 + i)
        np.testing.assert_array_equal(train, expected[0])
        np.testing.assert_array_equal(val, expected[1])
        assert len(val) == 100 and len(np.intersect1d(train, val)) == 0
        assert len(train) + len(val) == len(y)
    distinct = {tuple(val) for _, val in splits}
    assert len(distinct) == 4


def test_kfold_validates_every_sample_once(digits):
    _, y = digits
    folds = kfold(y, 5, seed=0)
    held_out = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(held_out), np.arange(len(y)))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda y: kfold(y[:3], 5), "folds=5 is more than the 3 samples"),
        (lambda y: kfold(np.r_[y[y != 7], 7], 5), "class 7 has only 1 member"),
        (lambda y: kfold(y, 1), "folds must be >= 2"),
        (lambda y: train_val_split(y, 1.5), "val_size must be a fraction"),
        (lambda y: repeated_train_val_split(y, 0.2, repeats=0), "repeats must be >= 1"),
        (lambda y: repeated_train_val_split(y, 0, repeats=2), "val_size must be a fraction"),
    ],
)
def test_split_errors_name_the_value(digits, call, message):
    with pytest.raises(ValueError, match=message):
        call(digits[1])


def sklearn_grid_means(X, y, folds, ks, metrics, weights):
    grid = GridSearchCV(
        KNeighborsClassifier(algorithm="brute"),
        {"n_neighbors": ks, "metric": [SK_METRIC[m] for m in metrics], "weights": weights},
        cv=folds,
    ).fit(X, y)
    res = grid.cv_results_
    back = {v: k for k, v in SK_METRIC.items()}
    return {
        (p["n_neighbors"], back[p["metric"]], p["weights"]): s
        for p, s in zip(res["params"], res["mean_test_score"], strict=True)
    }


def tie_share(X, folds, k, metric):
    """Mean share of validation rows whose k-th and (k+1)-th nearest are equally far.

    Only on those rows can a neighbour set depend on the tie rule (imgclf: lower
    index; scikit-learn: its heap's sift order), so only they may score differently.
    """
    shares = []
    for train, val in folds:
        dist = np.sort(full_distances(X[val], X[train], metric), axis=1)
        shares.append(np.mean(dist[:, k - 1] == dist[:, k]))
    return float(np.mean(shares))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_sweep_equals_grid_search_on_digits(digits, weights):
    X, y = digits
    folds = kfold(y, 5, seed=0)
    result = sweep_knn(X, y, KS, ("l1", "l2"), (weights,), folds=folds)
    expected = sklearn_grid_means(X, y, folds, KS, ("l1", "l2"), [weights])
    exact = 0
    for record in result.to_records():
        key = (record["k"], record["metric"], record["weights"])
        bound = tie_share(X, folds, record["k"], record["metric"])
        assert abs(record["mean"] - expected[key]) <= bound + 1e-12, key
        exact += record["mean"] == pytest.approx(expected[key], abs=1e-12)
    assert exact >= 0.75 * len(result.configs)  # most configurations have no tie at all


@pytest.mark.slow
def test_sweep_equals_grid_search_on_cifar10(cifar_splits):
    train = cifar_splits["train"]
    idx = np.random.default_rng(0).choice(len(train), 1000, replace=False)
    X, y = train.X[idx], train.labels[idx]
    folds = kfold(y, 5, seed=0)
    result = sweep_knn(X, y, [1, 3, 5, 10, 20], ("l1", "l2"), ("uniform", "distance"), folds)
    expected = sklearn_grid_means(
        X, y, folds, [1, 3, 5, 10, 20], ("l1", "l2"), ["uniform", "distance"]
    )
    for record in result.to_records():
        key = (record["k"], record["metric"], record["weights"])
        assert record["mean"] == pytest.approx(expected[key], abs=1e-12), key


def test_sweep_equals_classifier_fitted_per_configuration(digits):
    X, y = digits
    folds = kfold(y, 3, seed=1)
    result = sweep_knn(
        X, y, [1, 4, 7], ("l1",), ("uniform", "distance"), folds=folds, tie_break="nearest"
    )
    for config, row in zip(result.configs, result.scores, strict=True):
        for f, (train, val) in enumerate(folds):
            clf = KNNClassifier(**config, tie_break="nearest").fit(X[train], y[train])
            assert row[f] == clf.score(X[val], y[val])


def test_an_ivf_sweep_equals_classifiers_fitted_per_n_probe(digits):
    X, y = digits
    folds = kfold(y, 3, seed=1)
    settings = {"n_lists": 12, "seed": 3}
    result = sweep_knn(
        X, y, [1, 5], ("l2",), folds=folds, algorithm="ivf", n_probes=[1, 3], index_params=settings
    )
    assert [(c["n_probe"], c["k"]) for c in result.configs] == [(1, 1), (1, 5), (3, 1), (3, 5)]
    for config, row in zip(result.configs, result.scores, strict=True):
        for f, (train, val) in enumerate(folds):
            clf = KNNClassifier(**config, algorithm="ivf", **settings).fit(X[train], y[train])
            assert row[f] == clf.score(X[val], y[val])


def test_sweep_with_a_fixed_validation_set(digits):
    X, y = digits
    result = sweep_knn(X[:1000], y[:1000], [1, 5], ("l2",), val=(X[1000:], y[1000:]))
    assert result.scores.shape == (2, 1)
    clf = KNNClassifier(k=5).fit(X[:1000], y[:1000])
    assert result.scores[1, 0] == clf.score(X[1000:], y[1000:])
    assert (result.std == 0).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ks": [1, 2000]}, "k=2000 is larger than the smallest training fold"),
        ({"ks": []}, "ks is empty"),
        ({"ks": [0]}, "k must be >= 1"),
        ({"metrics": ["cosine"]}, "metric must be one of"),
        ({"weights": ()}, "weights is empty"),
        ({"n_probes": [2]}, "n_probe values apply to approximate search"),
        ({"n_probes": [0], "algorithm": "ivf"}, "n_probe must be >= 1"),
        ({"algorithm": "ivf", "index_params": {"nlist": 4}}, "unknown settings"),
    ],
)
def test_sweep_errors_name_the_value(digits, kwargs, message):
    X, y = digits
    args = {"ks": [1], "metrics": ("l1",), "weights": ("uniform",)} | kwargs
    with pytest.raises(ValueError, match=message):
        sweep_knn(X, y, args.pop("ks"), args.pop("metrics"), args.pop("weights"), **args)


def test_cross_validate_any_classifier_and_result_table(digits):
    X, y = digits
    X = X.astype(np.float32) / 255
    splitter = KFold(3, shuffle=True, random_state=0)
    result = cross_validate(
        LogisticRegression(max_iter=200), X, y, {"C": [0.01, 1.0]}, folds=splitter
    )
    assert result.scores.shape == (2, 3)
    assert result.best_params == {"C": 1.0} and result.mean[1] > 0.9
    records = json.loads(result.to_json())["results"]
    assert records[0]["C"] == 0.01 and len(records[0]["folds"]) == 3


def test_cross_validate_knn_matches_the_sweep(digits):
    X, y = digits
    folds = kfold(y, 3, seed=2)
    grid = {"k": [1, 3], "metric": ["l1", "l2"]}
    slow = cross_validate(KNNClassifier(), X, y, grid, folds=folds)
    fast = sweep_knn(X, y, [1, 3], ("l1", "l2"), folds=folds)
    by_config = {(c["k"], c["metric"]): m for c, m in zip(fast.configs, fast.mean, strict=True)}
    for config, mean in zip(slow.configs, slow.mean, strict=True):
        assert mean == by_config[config["k"], config["metric"]]


@pytest.mark.parametrize("grid", [{}, {"k": []}, []])
def test_empty_grid_is_refused(digits, grid):
    with pytest.raises(ValueError, match="empty"):
        cross_validate(KNNClassifier(), *digits, grid)


def test_a_diverged_configuration_is_never_the_best():
    from imgclf.model_selection import SearchResult

    result = SearchResult(
        configs=[{"learning_rate": 10.0}, {"learning_rate": 0.1}],
        scores=np.array([[np.nan, np.nan], [0.5, 0.7]]),
    )
    assert result.best_params == {"learning_rate": 0.1} and result.best_score == pytest.approx(0.6)
    result.scores[1] = np.nan
    with pytest.raises(ValueError, match="every configuration diverged"):
        _ = result.best_index


def test_sweeping_a_single_class_warns():
    from imgclf.model_selection import sweep_knn

    X = np.random.default_rng(0).integers(0, 255, (40, 8), dtype=np.uint8)
    with pytest.warns(UserWarning, match="single class"):
        sweep_knn(X, np.zeros(40, int), ks=[1], metrics=("l2",), folds=2)


# --- the sweep on a lazy array above the in-memory limit: every fold searched from disk in
# windows of chunks, with the in-memory sweep's neighbours and scores, ties included


@pytest.fixture(params=[7])
def lazy(tmp_path, monkeypatch, request):
    """(StoredArray of 150 flat rows in chunks of ``param`` rows, the same in memory, labels).

    Values 0..3 in 6 dimensions: many rows at equal distances, so ties decide neighbours.
    """
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (150, 6), dtype=np.uint8)
    y = rng.integers(0, 3, 150)
    with StoreWriter(tmp_path / "s.zarr") as store:
        store.array("x", (6,), np.uint8, chunk_rows=request.param).append(X)
        store.publish({})
    monkeypatch.setenv(IN_MEMORY_ENV, "200")  # 900 bytes on disk: lazy; windows of 1 chunk
    return open_store(tmp_path / "s.zarr")[1]["x"], X, y


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_fold_neighbors_equal_the_in_memory_search_in_any_train_order(lazy, metric):
    stored, X, _ = lazy
    rng = np.random.default_rng(1)
    order = rng.permutation(150)
    train, held_out = order[:110], order[110:]  # shuffled, as a held-out split gives them
    dist, positions = fold_neighbors(stored, train, held_out, metric, 9)
    want_dist, want_positions = ExactIndex(X[train], metric).search(X[held_out], 9)
    np.testing.assert_array_equal(positions, want_positions)
    np.testing.assert_array_equal(dist, want_dist)
    ties = np.diff(dist, axis=1) == 0
    assert ties.mean() > 0.3  # the tie rule is exercised, not avoided


@pytest.mark.parametrize("lazy", [40], indirect=True)  # 4 chunks: 16 searches a fold
def test_the_sweep_from_disk_equals_the_in_memory_sweep(lazy):
    stored, X, y = lazy
    grid = {"ks": [1, 4, 9], "metrics": ("l1", "l2"), "weights": ("uniform", "distance")}
    for folds in (5, [train_val_split(y, 0.3, seed=3)]):
        on_disk = sweep_knn(stored, y, **grid, folds=folds, seed=2)
        in_memory = sweep_knn(X, y, **grid, folds=folds, seed=2)
        assert on_disk.configs == in_memory.configs
        np.testing.assert_array_equal(on_disk.scores, in_memory.scores)


def test_only_exact_search_sweeps_a_set_larger_than_memory(lazy):
    stored, _, y = lazy
    with pytest.raises(DatasetError, match="algorithm='ivf' cannot sweep a dataset larger"):
        sweep_knn(stored, y, [1], algorithm="ivf")
