"""k-NN class rankings (top-k answers) against a brute-force NumPy reference.

The reference works from the full float64 distance matrix: votes of the k
nearest (stable sort: ties to the lower training index), each class's nearest
member (its distance, then its training index), and a Python sort by the rule
of :meth:`KNNClassifier.rank_classes`. It never looks at neighbour lists.
"""

import numpy as np
import pytest

from imgclf import io, metrics
from imgclf.errors import NotFittedError
from imgclf.neighbors import KNNClassifier, classifier, voting
from tests.neighbors.test_search import full_distances

N_CLASSES = 6


# --- the reference --------------------------------------------------------------------


def reference_votes(dist_row, order_row, y, k, weights):
    """Votes of the k nearest, summed in rank order (as scikit-learn and imgclf add them)."""
    nearest = dist_row[order_row[:k]]
    if weights == "uniform":
        w = np.ones(k)
    elif (nearest == 0).any():
        w = (nearest == 0).astype(float)  # exact matches take every vote
    else:
        w = 1.0 / nearest
    tally = np.zeros(N_CLASSES)
    for rank in range(k):
        tally[y[order_row[rank]]] += w[rank]
    return tally


def reference_nearness(dist_row, y):
    """(distance, training index) of each class's nearest member; absent classes last."""
    keys = []
    for c in range(N_CLASSES):
        members = np.flatnonzero(y == c)
        if len(members) == 0:
            keys.append((np.inf, np.inf))
            continue
        best = dist_row[members].min()
        keys.append((best, members[dist_row[members] == best].min()))
    return keys


def reference_ranking(train_X, y, test_X, k, metric, weights, tie_break, top):
    dist = full_distances(test_X, train_X, metric)
    order = np.argsort(dist, axis=1, kind="stable")
    rankings, winners = [], []
    for row in range(len(test_X)):
        tally = reference_votes(dist[row], order[row], y, k, weights)
        near = reference_nearness(dist[row], y)

        def key(c, tally=tally, near=near):
            if tie_break == "smallest" and tally[c] > 0:
                return (-tally[c], (float(c), 0.0), c)
            return (-tally[c], near[c], c)

        ranked = sorted(range(N_CLASSES), key=key)
        rankings.append(ranked[: min(top, N_CLASSES)])
        winners.append(ranked[0])
    return np.array(rankings), np.array(winners)


# --- data with ties ---------------------------------------------------------------------


def tied_data(seed, dtype, n_train=40, n_test=25, d=4):
    """Tiny integer features (many equal distances), duplicated rows, and one far class.

    Class 5 lives far from everything, so ranking it needs the whole training set.
    Values are small integers, so float32 distances are exact and comparable.
    """
    rng = np.random.default_rng(seed)
    train_X = rng.integers(0, 4, size=(n_train, d))
    train_X[n_train // 2 :: 3] = train_X[: n_train // 2 : 3][: len(train_X[n_train // 2 :: 3])]
    y = rng.integers(0, N_CLASSES - 1, size=n_train)
    y[-2:] = N_CLASSES - 1
    train_X[-2:] += 200
    test_X = rng.integers(0, 4, size=(n_test, d))
    test_X[:5] = train_X[:5]  # exact matches: distance weights give them every vote
    return train_X.astype(dtype), y, test_X.astype(dtype)


@pytest.fixture(params=["default depth", "shallow first search"])
def first_depth(request, monkeypatch):
    """The default first search (whole tiny set), or one that must go deeper for most rows."""
    if request.param == "shallow first search":
        monkeypatch.setattr(classifier, "RANK_DEPTH_PER_CLASS", 1)
    return request.param


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("k", [1, 3, 40])
@pytest.mark.parametrize("tie_break", ["smallest", "nearest"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_ranking_matches_brute_force(first_depth, metric, weights, tie_break, k, dtype):
    train_X, y, test_X = tied_data(k, dtype)
    clf = KNNClassifier(k=k, metric=metric, weights=weights, tie_break=tie_break)
    clf.fit(train_X, y)
    for top in (1, 3, N_CLASSES, N_CLASSES + 4):
        expected, winners = reference_ranking(
            train_X, y, test_X, k, metric, weights, tie_break, top
        )
        ranking = clf.rank_classes(test_X, top=top)
        assert ranking.dtype == np.int64
        np.testing.assert_array_equal(ranking, expected, err_msg=f"top={top}")
    np.testing.assert_array_equal(ranking[:, 0], winners)
    np.testing.assert_array_equal(clf.classes_[ranking[:, 0]], clf.predict(test_X))


def test_deep_search_in_small_memory_chunks_gives_the_same_ranking(monkeypatch):
    # 3,000 rows and the smallest working memory: the deepest searches go one row at a time.
    monkeypatch.setattr(classifier, "RANK_DEPTH_PER_CLASS", 1)
    train_X, y, test_X = tied_data(7, np.uint8, n_train=3000, n_test=6, d=3)
    clf = KNNClassifier(k=1, working_memory=2**16).fit(train_X, y)
    expected, _ = reference_ranking(train_X, y, test_X, 1, "l2", "uniform", "smallest", 6)
    np.testing.assert_array_equal(clf.rank_classes(test_X, top=6), expected)


def test_top_above_the_class_count_ranks_every_class():
    train_X, y, test_X = tied_data(0, np.uint8)
    ranking = KNNClassifier(k=3).fit(train_X, y).rank_classes(test_X, top=50)
    assert ranking.shape == (len(test_X), N_CLASSES)
    np.testing.assert_array_equal(np.sort(ranking, axis=1), np.tile(np.arange(N_CLASSES), (25, 1)))


def test_classes_without_voters_rank_by_their_nearest_sample():
    X = np.array([[0], [1], [2], [10], [30], [100]], dtype=np.uint8)
    y = ["a", "a", "a", "b", "c", "far"]
    clf = KNNClassifier(k=3).fit(X, y)
    # all three voters are "a"; then "b" (10 away), "c" (30), "far" (100)
    assert clf.classes_[clf.rank_classes([[0]], top=4)].tolist() == [["a", "b", "c", "far"]]
    # voters 100 ("far"), 30 ("c"), 10 ("b"): a three-way tie; "a" has no vote
    assert clf.classes_[clf.rank_classes([[99]], top=4)].tolist() == [["b", "c", "far", "a"]]
    clf.set_params(tie_break="nearest")
    assert clf.classes_[clf.rank_classes([[99]], top=4)].tolist() == [["far", "c", "b", "a"]]


def test_k1_ranking_is_not_filled_with_the_lowest_classes():
    # the artefact of issue 11: vote shares put classes 0, 1, ... after the one voter
    X = np.array([[0], [50], [60], [70], [80], [90]], dtype=np.uint8)
    clf = KNNClassifier(k=1).fit(X, [0, 1, 2, 3, 4, 5])
    assert clf.rank_classes([[95]], top=3).tolist() == [[5, 4, 3]]
    assert np.argsort(-clf.predict_proba([[95]]), kind="stable")[0, :3].tolist() == [5, 0, 1]


def test_smallest_tie_break_puts_the_smallest_tied_class_first():
    X = np.array([[0], [4], [6], [20], [30]], dtype=np.float32)
    y = [0, 0, 1, 1, 2]
    query = [[5.5]]  # voters 6 (class 1), 4 (0), 0 (0), 20 (1): 2-2; class 2 has no vote
    smallest = KNNClassifier(k=4).fit(X, y)
    nearest = KNNClassifier(k=4, tie_break="nearest").fit(X, y)
    assert smallest.rank_classes(query, top=3).tolist() == [[0, 1, 2]]
    assert nearest.rank_classes(query, top=3).tolist() == [[1, 0, 2]]


def test_one_search_serves_ranking_and_shares(monkeypatch):
    train_X, y, test_X = tied_data(3, np.uint8, n_train=400, n_test=50)
    clf = KNNClassifier(k=5, weights="distance").fit(train_X, y)
    calls = []
    search = clf._index.search
    monkeypatch.setattr(clf._index, "search", lambda q, k: calls.append(k) or search(q, k))
    ranking, shares = clf.rank_classes(test_X, top=5, return_shares=True)
    assert calls == [100]  # max(k, 20 * top): enough classes for every row at once
    monkeypatch.undo()
    np.testing.assert_array_equal(shares, clf.predict_proba(test_X))
    np.testing.assert_array_equal(clf.classes_[ranking[:, 0]], clf.predict(test_X))


def test_top_1_searches_only_the_voters(monkeypatch):
    train_X, y, test_X = tied_data(4, np.uint8)
    clf = KNNClassifier(k=3).fit(train_X, y)
    calls = []
    search = clf._index.search
    monkeypatch.setattr(clf._index, "search", lambda q, k: calls.append(k) or search(q, k))
    clf.rank_classes(test_X, top=1)
    assert calls == [3]


@pytest.mark.parametrize("algorithm", ["exact", "ivf"])
def test_single_pruned_queries_search_shallower_and_rank_as_a_batch(monkeypatch, algorithm):
    """One query at a time takes the pruned path, whose cost grows with depth: one
    cascade a query searches the voters only and goes on for the other classes'
    nearest rows (search_classes; an inverted file's in the lists it probes, here
    all), with no second search. The same ranking as a batch."""
    rng = np.random.default_rng(8)
    centres = rng.integers(80, 176, (N_CLASSES, 64))  # overlapping: some rows search deeper
    y = rng.integers(0, N_CLASSES, 5000)
    train_X = np.clip(centres[y] + rng.integers(-90, 91, (5000, 64)), 0, 255).astype(np.uint8)
    test_X = np.clip(centres[rng.integers(0, N_CLASSES, 12)] + rng.integers(-90, 91, (12, 64)),
                     0, 255).astype(np.uint8)  # fmt: skip
    clf = KNNClassifier(k=5, algorithm=algorithm, n_lists=20, n_probe=20).fit(train_X, y)
    batch = clf.rank_classes(test_X, top=5)
    calls, others = [], []
    monkeypatch.setattr(clf._index, "search", lambda *args: others.append("search"))
    search_classes = clf._index.search_classes
    monkeypatch.setattr(clf._index, "search_classes",
                        lambda *args: calls.append(args[1]) or search_classes(*args))  # fmt: skip
    single = np.concatenate([clf.rank_classes(row[None], top=5) for row in test_X])
    np.testing.assert_array_equal(single, batch)
    assert clf._index._pruner is not None
    assert calls == [5] * len(test_X) and not others  # the voters' depth, one cascade a row


def test_an_inverted_file_whose_lists_hold_too_few_classes_searches_deeper(monkeypatch):
    """A single query's probed list holds rows of two classes only: the other classes
    of its top five come from deeper searches, which probe further lists."""
    rng = np.random.default_rng(9)
    centres = rng.integers(0, 256, (40, 64))
    cluster = rng.integers(0, 40, 5000)
    train_X = np.clip(centres[cluster] + rng.integers(-4, 5, (5000, 64)), 0, 255).astype(np.uint8)
    y = cluster % 2 + 2 * (cluster >= 20) * (cluster % 3)  # each cluster one class
    clf = KNNClassifier(k=5, algorithm="ivf", n_lists=40, n_probe=1).fit(train_X, y)
    calls = []
    search = clf._index.search
    monkeypatch.setattr(clf._index, "search", lambda q, k: calls.append(k) or search(q, k))
    ranking = clf.rank_classes(train_X[:1], top=5)
    assert len(set(ranking[0].tolist())) == 5 and ranking[0, 0] == clf.predict(train_X[:1])[0]
    assert max(calls) > 5  # searched deeper than the voters


def test_string_labels_and_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 4, 4, 3), dtype=np.uint8)
    labels = np.array(["cat", "dog", "emu"])[np.arange(30) % 3]
    clf = KNNClassifier(k=1).fit(images, labels)
    ranking = clf.rank_classes(images, top=2)
    np.testing.assert_array_equal(clf.classes_[ranking[:, 0]], labels)
    assert (ranking[:, 1] != ranking[:, 0]).all()


def test_a_loaded_model_ranks_the_same(tmp_path):
    train_X, y, test_X = tied_data(5, np.uint8)
    clf = KNNClassifier(k=3, metric="l1", weights="distance", tie_break="nearest").fit(train_X, y)
    path = io.save(clf, tmp_path / "knn.npz", model_type="knn")
    loaded = io.load(path).model
    np.testing.assert_array_equal(loaded.rank_classes(test_X), clf.rank_classes(test_X))


def test_bad_arguments():
    with pytest.raises(NotFittedError):
        KNNClassifier().rank_classes(np.eye(2))
    clf = KNNClassifier().fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="top must be >= 1; got 0"):
        clf.rank_classes(np.eye(4), top=0)
    with pytest.raises(ValueError, match="top must be an integer"):
        clf.rank_classes(np.eye(4), top=2.5)
    with pytest.raises(ValueError, match="3 features"):
        clf.rank_classes(np.ones((1, 3)))


# --- the pure helpers against plain loops -------------------------------------------------


def loop_first_ranks(labels, n_classes):
    ranks = np.full((len(labels), n_classes), labels.shape[1])
    for row, neighbours in enumerate(labels):
        for column in reversed(range(len(neighbours))):
            ranks[row, neighbours[column]] = column
    return ranks


def loop_ranking(tally, ranks, top, tie_break):
    def key(row, c):
        if tie_break == "smallest" and tally[row, c] > 0:
            return (-tally[row, c], c, c)
        return (-tally[row, c], ranks[row, c], c)

    n_classes = tally.shape[1]
    return np.array(
        [sorted(range(n_classes), key=lambda c: key(row, c))[:top] for row in range(len(tally))]
    )


@pytest.mark.parametrize("depth", [1, 2, 7, 30])
def test_first_ranks_match_a_loop(depth):
    labels = np.random.default_rng(depth).integers(0, 5, size=(50, depth))
    np.testing.assert_array_equal(voting.first_ranks(labels, 5), loop_first_ranks(labels, 5))


@pytest.mark.parametrize("tie_break", ["smallest", "nearest"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_class_ranking_matches_a_loop_and_the_winner(tie_break, weights):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, size=(300, 12))
    dist = np.sort(rng.integers(0, 4, size=(300, 12)), axis=1).astype(float)  # ties, zeros
    w = voting.neighbor_weights(dist[:, :4], weights)
    tally = voting.votes(labels[:, :4], 7, w)
    ranks = voting.first_ranks(labels, 7)
    for top in (1, 4, 7):
        ranking = voting.class_ranking(tally, ranks, top, tie_break)
        np.testing.assert_array_equal(ranking, loop_ranking(tally, ranks, top, tie_break))
    np.testing.assert_array_equal(ranking[:, 0], voting.winners(tally, labels[:, :4], tie_break))


@pytest.mark.parametrize("tie_break", ["smallest", "nearest"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_rank_one_is_the_numpy_functions_on_one_row(tie_break, weights):
    """rank_one's votes and ranking equal votes / first_ranks / class_ranking of the row
    to the last bit, with the ``after`` classes ranked past the voters in their order."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        k = int(rng.integers(1, 8))
        labels = rng.integers(0, 7, (1, k))
        dist = np.sort(rng.choice([0.0, 0.3, 1.0, 2.7, np.pi], (1, k)), axis=1)  # ties, zeros
        others = [c for c in rng.permutation(7).tolist() if c not in labels]
        after = others[: int(rng.integers(0, len(others) + 1))]
        ranks = voting.first_ranks(labels, 7)
        ranks[0, ranks[0] == k] = k + 7
        ranks[0, after] = k + np.arange(len(after))
        tally = voting.votes(labels, 7, voting.neighbor_weights(dist, weights))
        for top in (1, 3, 7):
            ranking, got_tally = voting.rank_one(
                labels[0].tolist(), dist[0].tolist(), 7, top, weights, tie_break, after
            )
            assert ranking == voting.class_ranking(tally, ranks, top, tie_break)[0].tolist()
            np.testing.assert_array_equal(got_tally, tally[0])  # (bit for bit)


# --- CIFAR-10: 1-NN top-5 is a real measure now -------------------------------------------


@pytest.mark.slow
def test_cifar10_top5_of_1nn_equals_brute_force(cifar_splits):
    rng = np.random.default_rng(0)
    train = cifar_splits["train"].subset(rng.choice(50_000, 2_000, replace=False))
    test = cifar_splits["test"].subset(rng.choice(10_000, 200, replace=False))
    train_X, test_X = train.X.reshape(2_000, -1), test.X.reshape(200, -1)
    clf = KNNClassifier(k=1, metric="l1").fit(train_X, train.labels)
    ranking = clf.rank_classes(test_X, top=5)

    dist = full_distances(test_X, train_X, "l1")
    expected = np.empty((200, 5), dtype=np.int64)
    for row in range(200):
        order = np.argsort(dist[row], kind="stable")  # ties to the lower training index
        _, first = np.unique(train.labels[order], return_index=True)
        expected[row] = np.argsort(first)[:5]  # classes by their nearest member
    np.testing.assert_array_equal(ranking, expected)

    labels = clf.classes_[ranking]
    top1 = metrics.accuracy(test.labels, clf.predict(test_X))
    top5 = metrics.top_k_accuracy_from_ranking(test.labels, labels, k=5)
    assert top5 == metrics.top_k_accuracy_from_ranking(test.labels, clf.classes_[expected], k=5)
    assert top1 == metrics.top_k_accuracy_from_ranking(test.labels, labels, k=1)
    assert top5 > top1 + 0.2  # 1-NN's top-5 is well above its top-1 (about 0.26 here)


@pytest.mark.parametrize("algorithm", ["exact", "ivf"])
def test_the_voters_come_from_the_same_search(monkeypatch, algorithm):
    train_X, y, test_X = tied_data(5, np.uint8, n_train=400, n_test=50)
    clf = KNNClassifier(k=5, algorithm=algorithm).fit(train_X, y)
    calls = []
    search = clf._index.search
    monkeypatch.setattr(clf._index, "search", lambda q, k: calls.append(k) or search(q, k))
    ranking, shares, (dist, index) = clf.rank_classes(
        test_X, top=3, return_shares=True, return_neighbors=True
    )
    assert calls == [60]  # one search: no second one for the neighbours
    monkeypatch.undo()
    # exact: what kneighbors gives; an inverted file probes by depth: the first k of the 60
    expected_dist, expected_index = (
        clf.kneighbors(test_X) if algorithm == "exact" else clf._index.search(test_X, 60)
    )
    expected_dist, expected_index = expected_dist[:, :5], expected_index[:, :5]
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_array_equal(dist, expected_dist)
    np.testing.assert_array_equal(ranking, clf.rank_classes(test_X, top=3))
    only_voters = clf.rank_classes(test_X, top=3, return_neighbors=True)
    assert len(only_voters) == 2 and only_voters[1][1].shape == (50, 5)
