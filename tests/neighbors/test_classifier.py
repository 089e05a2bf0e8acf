"""KNNClassifier: scikit-learn's contract, and the same predictions as its brute force."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgclf.datasets import load_digits
from imgclf.errors import NotFittedError
from imgclf.neighbors import KNNClassifier
from imgclf.neighbors.faiss_backend import faiss_available
from tests.neighbors.test_search import reference_search, unambiguous

SK_METRIC = {"l1": "manhattan", "l2": "euclidean"}
CASES = [
    (k, metric, weights)
    for k in (1, 3, 5, 10)
    for metric in ("l1", "l2")
    for weights in ("uniform", "distance")
]


@parametrize_with_checks([KNNClassifier(), KNNClassifier(k=3, metric="l1", weights="distance")])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def sklearn_predictions(train_X, train_y, test_X, k, metric, weights):
    sk = KNeighborsClassifier(
        n_neighbors=k, algorithm="brute", metric=SK_METRIC[metric], weights=weights
    )
    return sk.fit(train_X, train_y).predict(test_X), sk.predict_proba(test_X)


def assert_same_as_sklearn(train_X, train_y, test_X, k, metric, weights):
    ours = KNNClassifier(k=k, metric=metric, weights=weights).fit(train_X, train_y)
    expected, expected_proba = sklearn_predictions(train_X, train_y, test_X, k, metric, weights)
    clear = unambiguous(test_X, train_X, k, metric)
    assert clear.mean() > 0.8  # the comparison covers most of the test set
    np.testing.assert_array_equal(ours.predict(test_X)[clear], expected[clear])
    np.testing.assert_allclose(ours.predict_proba(test_X)[clear], expected_proba[clear], rtol=1e-12)
    # tied rows: the neighbours of a stable sort of all distances (lower index wins)
    if not clear.all():
        _, ref_index = reference_search(test_X[~clear], train_X, k, metric)
        np.testing.assert_array_equal(ours.kneighbors(test_X[~clear])[1], ref_index)


@pytest.fixture(scope="module")
def digits():
    splits = load_digits()
    return splits["train"].X, splits["train"].labels, splits["test"].X


@pytest.mark.parametrize("k, metric, weights", CASES)
def test_same_predictions_as_scikit_learn_on_digits(digits, k, metric, weights):
    assert_same_as_sklearn(*digits, k, metric, weights)


@pytest.fixture(scope="module")
def cifar_subset(cifar_splits):
    rng = np.random.default_rng(0)
    train = cifar_splits["train"].subset(rng.choice(50_000, 3_000, replace=False))
    test = cifar_splits["test"].subset(rng.choice(10_000, 300, replace=False))
    return train.X, train.labels, test.X


@pytest.mark.slow
@pytest.mark.parametrize("k, metric, weights", CASES)
def test_same_predictions_as_scikit_learn_on_cifar10(cifar_subset, k, metric, weights):
    assert_same_as_sklearn(*cifar_subset, k, metric, weights)


def test_fit_keeps_uint8_and_accepts_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    clf = KNNClassifier().fit(images, np.arange(20) % 2)
    assert clf._index.database.dtype == np.uint8
    assert clf.n_features_in_ == 48
    np.testing.assert_array_equal(clf.predict(images), np.arange(20) % 2)


def test_string_labels_and_vote_shares_show_ties():
    X = np.array([[0], [1], [10], [11]], dtype=np.float32)
    clf = KNNClassifier(k=4).fit(X, ["b", "b", "a", "a"])
    assert clf.classes_.tolist() == ["a", "b"]
    np.testing.assert_allclose(clf.predict_proba([[5]]), [[0.5, 0.5]])
    assert clf.predict([[5]]).tolist() == ["a"]  # smallest label wins a tie


def test_nearest_tie_break_prefers_the_class_with_the_closest_member():
    X = np.array([[0], [4], [6], [20]], dtype=np.float32)
    y = [0, 0, 1, 1]
    query = [[5.5]]  # neighbours: 6 (class 1), 4 (class 0), 0 (class 0), 20 (class 1): 2-2 tie
    assert KNNClassifier(k=4).fit(X, y).predict(query).tolist() == [0]
    assert KNNClassifier(k=4, tie_break="nearest").fit(X, y).predict(query).tolist() == [1]


def test_distance_weights_let_an_exact_match_win():
    X = np.array([[0], [1], [1], [1]], dtype=np.float32)
    clf = KNNClassifier(k=4, weights="distance").fit(X, [7, 8, 8, 8])
    assert clf.predict([[0]]).tolist() == [7]
    np.testing.assert_allclose(clf.predict_proba([[0]]), [[1.0, 0.0]])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"k": 0}, "k must be >= 1"),
        ({"k": 5}, "k must be <= the number of training samples \\(4 samples\\); got 5"),
        ({"metric": "cosine"}, "metric must be one of"),
        ({"weights": "gaussian"}, "weights must be one of 'uniform', 'distance'"),
        ({"tie_break": "random"}, "tie_break must be one of"),
        ({"backend": "annoy"}, "backend must be one of"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        KNNClassifier(**params).fit(np.eye(4, dtype=np.float32), [0, 1, 0, 1])


def test_feature_mismatch_and_not_fitted():
    with pytest.raises(NotFittedError):
        KNNClassifier().predict(np.eye(2))
    clf = KNNClassifier().fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="3 features"):
        clf.predict(np.ones((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((1, 4), np.nan))


@pytest.mark.skipif(not faiss_available(), reason="faiss extra not installed")
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_faiss_backend_gives_the_same_neighbours(digits, metric):
    train_X, train_y, test_X = digits
    ours = KNNClassifier(k=3, metric=metric).fit(train_X, train_y)
    theirs = KNNClassifier(k=3, metric=metric, backend="faiss").fit(train_X, train_y)
    our_dist, _ = ours.kneighbors(test_X)
    their_dist, _ = theirs.kneighbors(test_X)
    np.testing.assert_allclose(their_dist, our_dist, rtol=1e-5, atol=1e-3)
    agree = (ours.predict(test_X) == theirs.predict(test_X)).mean()
    assert agree > 0.99  # only distance ties may be ordered differently by faiss


@pytest.mark.parametrize("algorithm", ["exact", "ivf"])
def test_single_query_threads_and_releasing_the_batch_copy(algorithm):
    """What a server asks of a loaded model: one thread per single query, and the batch
    copy freed; neither changes an answer."""
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE

    rng = np.random.default_rng(5)
    X = np.repeat(rng.integers(0, 256, (PRUNE_MIN_DATABASE + 200, 48)), 4, axis=1).astype(np.uint8)
    y = rng.integers(0, 4, len(X))
    clf = KNNClassifier(k=3, algorithm=algorithm, n_jobs=2).fit(X, y)
    batch = clf.kneighbors(X[:20])
    assert clf.single_query_threads(1) is clf
    for i in (0, 7):
        single = clf.kneighbors(X[i : i + 1])
        np.testing.assert_array_equal(single[1], batch[1][i : i + 1])
    assert clf._index.prunes(1, 3) and not clf._index.prunes(100, 3)
    clf.release_batch_copy()
    assert clf._index._blocks is None
    np.testing.assert_array_equal(clf.kneighbors(X[:20])[1], batch[1])
    with pytest.raises(ValueError, match="n_jobs"):
        clf.single_query_threads(0)


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("tie_break", ["smallest", "nearest"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_top_classes_past_the_voters_as_a_deeper_search_ranks_them(metric, tie_break, weights):
    """A single query ranks the classes without a voter by the index's nearest row of
    each class (one cascade, ranked in plain Python); the answer and the vote shares
    are the batch path's (deeper searches, NumPy), to the last bit."""
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE

    rng = np.random.default_rng(11)
    n = PRUNE_MIN_DATABASE + 300
    X = np.repeat(rng.integers(0, 256, (n, 48)), 64, axis=1).astype(np.uint8)
    X[100:130] = X[5]  # ties
    y = rng.integers(0, 7, n)
    clf = KNNClassifier(k=5, metric=metric, tie_break=tie_break, weights=weights).fit(X, y)
    assert clf._ranks_alone(1)
    queries = [X[5], *X[:40:8], rng.integers(0, 256, X.shape[1], dtype=np.uint8)]
    for query in queries:
        for top in (1, 2, 5, 7):
            one_pass = clf.rank_classes(query[None], top=top, return_shares=True)
            clf._ranks_alone = lambda n_rows: False  # the batch path instead
            deeper = clf.rank_classes(query[None], top=top, return_shares=True)
            del clf._ranks_alone
            for got, want in zip(one_pass, deeper, strict=True):
                np.testing.assert_array_equal(got, want)
