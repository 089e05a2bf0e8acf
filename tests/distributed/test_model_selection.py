"""The k-NN sweep, cross-validation and KNNClassifier on a cluster: every score, neighbour
and prediction equals the one the same call gives in this process."""

from __future__ import annotations

import numpy as np
import pytest

import imgclf.distributed.sweep as cluster_sweep
from imgclf import io
from imgclf.datasets import load_digits
from imgclf.distributed import ShardedIndex, cross_validate, sweep_knn, use_cluster
from imgclf.linear import LinearClassifier
from imgclf.model_selection import cross_validate as local_cross_validate
from imgclf.model_selection import repeated_train_val_split
from imgclf.model_selection import sweep_knn as local_sweep_knn
from imgclf.neighbors import KNNClassifier
from tests.distributed.conftest import require_distributed, tied_pixels

require_distributed()


@pytest.fixture(scope="module")
def digits():
    train = load_digits()["train"]
    return train.X, train.labels


def assert_same_result(got, expected):
    assert got.configs == expected.configs
    np.testing.assert_array_equal(got.scores, expected.scores)
    assert got.best_params == expected.best_params


@pytest.mark.parametrize("tie_break", ["smallest", "nearest"])
def test_the_sweep_on_a_cluster_equals_the_local_sweep(client, digits, tie_break):
    X, y = digits
    grid = {"ks": [1, 2, 3, 5, 10, 40], "metrics": ("l1", "l2"), "weights": ("uniform", "distance")}
    expected = local_sweep_knn(X, y, **grid, tie_break=tie_break)
    assert_same_result(sweep_knn(client, X, y, **grid, tie_break=tie_break), expected)


def test_ties_unsorted_folds_and_a_fixed_validation_set_sweep_as_locally(client):
    rng = np.random.default_rng(0)
    X, y = tied_pixels(rng, 900, 12), rng.integers(0, 4, 900)  # many equal distances
    folds = [(rng.permutation(900)[:600], rng.permutation(900)[600:])]  # unsorted indices
    folds = [(np.setdiff1d(np.arange(900), v)[::-1], v) for _, v in folds]
    grid = {"ks": [1, 4, 9], "metrics": ("l1", "l2")}
    assert_same_result(
        sweep_knn(client, X, y, **grid, folds=folds), local_sweep_knn(X, y, **grid, folds=folds)
    )
    val = (X[:100], y[:100])
    assert_same_result(
        sweep_knn(client, X[100:], y[100:], **grid, val=val),
        local_sweep_knn(X[100:], y[100:], **grid, val=val),
    )
    splits = repeated_train_val_split(y, 200, repeats=3)
    assert_same_result(
        sweep_knn(client, X, y, **grid, folds=splits), local_sweep_knn(X, y, **grid, folds=splits)
    )


def test_the_ivf_sweep_on_a_cluster_equals_the_local_sweep(client, digits):
    X, y = digits
    grid = {"ks": [1, 5], "metrics": ("l2",), "algorithm": "ivf", "n_probes": [1, 4]}
    grid |= {"index_params": {"n_lists": 20, "seed": 3}, "folds": 3}
    assert_same_result(sweep_knn(client, X, y, **grid), local_sweep_knn(X, y, **grid))


def test_sweep_knn_sends_itself_to_the_cluster_given_a_client_or_a_context(
    client, digits, monkeypatch
):
    X, y = digits
    calls = []
    on_cluster = cluster_sweep.sweep_knn
    monkeypatch.setattr(cluster_sweep, "sweep_knn", lambda *a, **kw: calls.append(a[0]) or
                        on_cluster(*a, **kw))  # fmt: skip
    expected = local_sweep_knn(X[:600], y[:600], [1, 3], folds=3)
    assert not calls
    assert_same_result(local_sweep_knn(X[:600], y[:600], [1, 3], folds=3, client=client), expected)
    with use_cluster(client):
        assert_same_result(local_sweep_knn(X[:600], y[:600], [1, 3], folds=3), expected)
        with use_cluster(None):  # and back to this process
            local_sweep_knn(X[:600], y[:600], [1, 3], folds=3)
    assert calls == [client, client]


def test_the_cluster_sweep_refuses_what_it_cannot_run(client, digits):
    X, y = digits
    with pytest.raises(ValueError, match="'hnsw' does not run on a Dask cluster"):
        sweep_knn(client, X, y, [1], algorithm="hnsw")
    with pytest.raises(ValueError, match="larger than the smallest training fold"):
        sweep_knn(client, X[:200], y[:200], [150], folds=2)


def test_cross_validation_on_a_cluster_equals_the_local_one(client, digits):
    X, y = digits
    X = X[:800].astype(np.float32)
    grid = {"learning_rate": [0.01, 0.1], "reg": [1e-4, 1e-2]}
    estimator = LinearClassifier(epochs=3, seed=1)
    expected = local_cross_validate(estimator, X, y[:800], grid, folds=3)
    got = cross_validate(client, estimator, X, y[:800], grid, folds=3)
    assert_same_result(got, expected)
    assert "cross_validate_s" in got.timings
    with use_cluster(client):  # a k-NN estimator fits locally inside each task
        got = local_cross_validate(KNNClassifier(), X, y[:800], {"k": [1, 3]}, folds=3)
    assert_same_result(got, local_cross_validate(KNNClassifier(), X, y[:800], {"k": [1, 3]}, 3))


@pytest.mark.parametrize("algorithm", ["exact", "ivf"])
def test_a_knn_classifier_fitted_in_a_cluster_context_answers_as_locally(
    client, digits, algorithm, tmp_path
):
    X, y = digits
    train, test = slice(0, 1400), slice(1400, None)
    params = {"k": 5, "metric": "l1", "algorithm": algorithm}
    params |= {"n_lists": 16, "n_probe": 3} if algorithm == "ivf" else {}
    local = KNNClassifier(**params).fit(X[train], y[train])
    with use_cluster(client):
        clf = KNNClassifier(**params).fit(X[train], y[train])
    assert isinstance(clf._index, ShardedIndex)
    for a, b in zip(clf.kneighbors(X[test]), local.kneighbors(X[test]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(clf.predict(X[test]), local.predict(X[test]))
    np.testing.assert_array_equal(
        clf.rank_classes(X[test], top=10), local.rank_classes(X[test], top=10)
    )
    io.save(clf, tmp_path / "m.imgclf", model_type="knn")  # a plain model file
    loaded = io.load(tmp_path / "m.imgclf").model
    np.testing.assert_array_equal(loaded.predict(X[test]), local.predict(X[test]))
    with use_cluster(client):  # loaded on the cluster: the saved cells, not new ones
        on_cluster = io.load(tmp_path / "m.imgclf").model
    assert isinstance(on_cluster._index, ShardedIndex)
    np.testing.assert_array_equal(on_cluster.predict(X[test]), local.predict(X[test]))


def test_a_classifier_whose_index_cannot_be_sharded_says_so(client, digits):
    X, y = digits
    with use_cluster(client), pytest.raises(ValueError, match="does not run on a Dask cluster"):
        KNNClassifier(algorithm="hnsw").fit(X, y)
