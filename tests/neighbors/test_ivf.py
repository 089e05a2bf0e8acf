"""The IVF index against the exact engine and NumPy: exact when every list is probed,
true distances always, ties to the lower index, recall that grows with n_probe."""

import numpy as np
import pytest

from imgclf._kmeans import assign, kmeans
from imgclf.neighbors import ExactIndex, StreamedIndex
from imgclf.neighbors.ivf import IVFIndex, default_n_lists, default_n_probe
from imgclf.neighbors.recall import recall
from imgclf.neighbors.search import PRUNE_MIN_DATABASE
from tests.neighbors.test_search import (
    assert_nearest_classes,
    full_distances,
    random_data,
    reference_search,
)

METRICS = ["l1", "l2"]
DTYPES = [np.uint8, np.float32]


def clustered(rng, n, d, centres=12, spread=12, dtype=np.uint8):
    """Rows scattered around a few centres: data on which an IVF index can do well."""
    base = rng.integers(40, 216, size=(centres, d))
    rows = base[rng.integers(0, centres, n)] + rng.integers(-spread, spread + 1, (n, d))
    rows = np.clip(rows, 0, 255)
    return rows.astype(np.uint8) if dtype == np.uint8 else (rows / 7).astype(dtype)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 7])
def test_probing_every_list_is_exact(metric, dtype, k):
    rng = np.random.default_rng(k)
    database, queries = random_data(rng, 400, 70, dtype), random_data(rng, 23, 70, dtype)
    index = IVFIndex(database, metric, n_lists=9, n_probe=9, pca_components=8)
    dist, found = index.search(queries, k)
    ref_dist, ref_index = reference_search(queries, database, k, metric)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5)
    if dtype == np.uint8:
        np.testing.assert_array_equal(found, ref_index)
    assert dist.dtype == np.float64 and found.dtype == np.int64


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_distances_are_true_distances_of_the_rows_returned(metric, dtype):
    rng = np.random.default_rng(1)
    database = clustered(rng, 2000, 64, dtype=dtype)
    queries = clustered(rng, 50, 64, dtype=dtype)
    dist, found = IVFIndex(database, metric, n_lists=30, n_probe=2).search(queries, 10)
    true = np.take_along_axis(full_distances(queries, database, metric), found, 1)
    np.testing.assert_allclose(dist, true, rtol=1e-5)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert all(len(set(row)) == 10 for row in found.tolist())


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_the_lower_index(metric, dtype):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(6, 64)).astype(dtype)
    database = np.tile(base, (50, 1))  # every row 50 times, in different lists' order
    index = IVFIndex(database, metric, n_lists=6, n_probe=6)
    _, found = index.search(base, 20)
    expected = np.arange(6)[:, None] + 6 * np.arange(20)[None, :]
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("metric", METRICS)
def test_recall_grows_with_n_probe(metric):
    rng = np.random.default_rng(2)
    database, queries = clustered(rng, 3000, 96), clustered(rng, 200, 96)
    _, exact = ExactIndex(database, metric).search(queries, 10)
    index = IVFIndex(database, metric, n_lists=40, n_probe=1)
    recalls = []
    for n_probe in (1, 4, 40):
        index.n_probe = n_probe
        recalls.append(recall(index.search(queries, 10)[1], exact))
    assert recalls[0] <= recalls[1] <= recalls[2] == 1.0
    assert recalls[1] > 0.5


@pytest.mark.parametrize("metric", METRICS)
def test_single_queries_and_batches_agree(metric):
    """Single uint8 queries in a large database take the pruned path; batches scan lists."""
    rng = np.random.default_rng(3)
    database = clustered(rng, PRUNE_MIN_DATABASE + 1000, 128)
    queries = np.concatenate([clustered(rng, 30, 128), database[:5]])  # and exact duplicates
    index = IVFIndex(database, metric, n_lists=25, n_probe=3)
    batch = index.search(queries, 5)
    single = [index.search(q[None], 5) for q in queries]
    assert index._pruner is not None  # the single queries were pruned
    np.testing.assert_array_equal(np.concatenate([i for _, i in single]), batch[1])
    np.testing.assert_array_equal(np.concatenate([d for d, _ in single]), batch[0])


@pytest.mark.parametrize("metric", METRICS)
def test_nearest_classes_are_those_of_the_probed_lists(metric):
    """Each wanted class's nearest row among the rows of the probed lists (a full sort of
    those rows by distance, then row), for the m nearest wanted classes; fewer when the
    lists hold fewer wanted classes."""
    rng = np.random.default_rng(11)
    database = clustered(rng, PRUNE_MIN_DATABASE + 1000, 128)
    database[300:320] = database[5]  # equal distances across classes
    labels = rng.integers(0, 6, len(database))
    index = IVFIndex(database, metric, n_lists=25, n_probe=3)
    for query in [database[5], *clustered(rng, 3, 128)]:
        ranges = index.coarse.probed_ranges(query, index.n_probe, 1, index.offsets)
        rows = np.sort(np.concatenate([index.ids[lo:hi] for lo, hi in ranges]))
        assert_nearest_classes(index, query, database, rows, labels, metric)


def test_threads_do_not_change_results():
    rng = np.random.default_rng(4)
    database, queries = clustered(rng, 3000, 64), clustered(rng, 300, 64)
    results = [
        IVFIndex(database, "l1", n_lists=20, n_probe=3, n_jobs=jobs).search(queries, 8)
        for jobs in (1, 2, 3)
    ]
    for dist, found in results[1:]:
        np.testing.assert_array_equal(found, results[0][1])
        np.testing.assert_array_equal(dist, results[0][0])


def test_a_fixed_seed_builds_the_same_index():
    rng = np.random.default_rng(5)
    database = clustered(rng, 2000, 64)
    a, b = (IVFIndex(database, n_lists=16, seed=7, n_jobs=1) for _ in range(2))
    for name, array in a.to_arrays().items():
        np.testing.assert_array_equal(array, b.to_arrays()[name], err_msg=name)


def test_queries_whose_lists_hold_fewer_than_k_rows_probe_further():
    rng = np.random.default_rng(6)
    database = clustered(rng, 500, 64, centres=25, spread=2)
    index = IVFIndex(database, "l2", n_lists=25, n_probe=1)
    k = int(np.diff(index.offsets).max()) + 5  # more than any single list holds
    dist, found = index.search(database[:10], k)
    assert (found >= 0).all() and all(len(set(row)) == k for row in found.tolist())
    assert np.isfinite(dist).all()


def test_k_equal_to_the_database_size_returns_every_row():
    rng = np.random.default_rng(7)
    database = random_data(rng, 60, 32, np.uint8)
    _, found = IVFIndex(database, n_lists=5, n_probe=1).search(database[:3], 60)
    assert all(sorted(row) == list(range(60)) for row in found.tolist())


@pytest.mark.parametrize("metric", METRICS)
def test_saved_arrays_rebuild_the_same_index(metric):
    rng = np.random.default_rng(8)
    database, queries = clustered(rng, 2000, 64), clustered(rng, 40, 64)
    index = IVFIndex(database, metric, n_lists=20, n_probe=2)
    again = IVFIndex.from_arrays(database, index.to_arrays(), metric, n_probe=2, seed=0)
    assert again.seed == index.seed == 0
    for got, want in zip(again.search(queries, 6), index.search(queries, 6), strict=True):
        np.testing.assert_array_equal(got, want)
    for query in queries[:3]:  # one at a time: the cascade over the probed lists
        for got, want in zip(
            again.search(query[None], 6), index.search(query[None], 6), strict=True
        ):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError):
        IVFIndex.from_arrays(database, index.to_arrays(), metric, n_lists=20)  # not a setting


def test_damaged_saved_arrays_are_refused_by_name():
    rng = np.random.default_rng(9)
    database = clustered(rng, 500, 64)
    arrays = IVFIndex(database, n_lists=10).to_arrays()
    cases = {
        "ids": {**arrays, "ids": np.zeros_like(arrays["ids"])},
        "offsets": {**arrays, "offsets": arrays["offsets"][::-1].copy()},
        "centroids": {**arrays, "centroids": np.full_like(arrays["centroids"], np.nan)},
        "components": {**arrays, "components": arrays["components"][:, :10]},
    }
    for name, damaged in cases.items():
        with pytest.raises(ValueError, match=name):
            IVFIndex.from_arrays(database, damaged)


def test_pca_is_skipped_when_it_would_not_reduce():
    rng = np.random.default_rng(10)
    database = clustered(rng, 500, 32)
    assert IVFIndex(database, n_lists=8, pca_components=64).coarse.components.shape == (0, 32)
    assert IVFIndex(database, n_lists=8, pca_components=None).coarse.components.shape == (0, 32)
    assert IVFIndex(database, n_lists=8, pca_components=4).coarse.components.shape == (4, 32)
    assert IVFIndex(database, n_lists=8).coarse.components.shape == (0, 32)  # auto: 96 >= 32


@pytest.mark.parametrize("d, kept", [(200, 96), (1100, 64)])
def test_auto_pca_keeps_more_directions_of_narrower_rows(d, kept):
    database = clustered(np.random.default_rng(12), 300, d)
    assert IVFIndex(database, n_lists=4).coarse.components.shape == (kept, d)


@pytest.mark.parametrize("bad", ["all", 0, 2.5])
def test_bad_pca_components_are_named(bad):
    database = clustered(np.random.default_rng(13), 300, 40)
    with pytest.raises(ValueError, match="pca_components must be"):
        IVFIndex(database, n_lists=4, pca_components=bad)
    with pytest.raises(ValueError, match="pca_components must be"):
        StreamedIndex(database, algorithm="ivf", n_lists=4, pca_components=bad)


def test_index_memory_is_about_the_data():
    rng = np.random.default_rng(11)
    database = clustered(rng, 8000, 512)  # enough rows that the PCA and medians stay small
    for metric in METRICS:
        index = IVFIndex(database, metric, n_lists=60)
        assert index.nbytes < 0.1 * database.nbytes  # the lists' copy: not before a batch
        assert index.make_batch_copy().nbytes >= 0.9 * database.nbytes
        index.release_batch_copy()
        before = index.search(database[:50], 3)  # a batch: the lists' copy is made
        assert 0.9 * database.nbytes <= index.nbytes <= 1.1 * database.nbytes
        index.release_batch_copy()
        assert index.nbytes < 0.1 * database.nbytes
        for got, expected in zip(index.search(database[:50], 3), before, strict=True):
            np.testing.assert_array_equal(got, expected)  # made again by the next batch


def test_defaults_follow_the_database_size():
    assert default_n_lists(50_000) == 894
    assert default_n_probe(894) == 32
    assert default_n_lists(1) == default_n_probe(1) == 1
    index = IVFIndex(np.arange(400 * 8, dtype=np.uint8).reshape(400, 8) % 251)
    assert (index.n_lists, index.n_probe) == (default_n_lists(400), default_n_probe(80))


def test_bad_settings_are_named():
    database = np.arange(100 * 8, dtype=np.uint8).reshape(100, 8)
    with pytest.raises(ValueError, match="fewer than n_lists=200"):
        IVFIndex(database, n_lists=200)
    index = IVFIndex(database, n_lists=10, n_probe=2)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="n_probe must be >= 1"):
            index.n_probe = bad
    with pytest.warns(UserWarning, match="n_probe=50 is more than the index's 10 lists"):
        index.n_probe = 50
    assert index.n_probe == 10
    with pytest.raises(ValueError, match="queries have 9 features but the database has 8"):
        index.search(np.zeros((1, 9), np.uint8), 1)
    with pytest.raises(ValueError, match="non-integer"):
        index.search(np.full((1, 8), 0.5), 1)
    with pytest.raises(ValueError, match="metric must be one of"):
        IVFIndex(database, "cosine")
    with pytest.raises(ValueError, match="k must be <= 100"):
        index.search(database[:1], 101)


def test_kmeans_finds_separated_clusters_and_assigns_to_the_nearest():
    rng = np.random.default_rng(12)
    centres = rng.normal(0, 100, (5, 16)).astype(np.float32)
    points = centres[np.repeat(np.arange(5), 40)] + rng.normal(0, 1, (200, 16)).astype(np.float32)
    found = kmeans(points, 5, seed=0)
    labels, dist = assign(points, found)
    assert len(set(labels.tolist())) == 5
    for cluster in range(5):  # every true cluster lands whole in one found cluster
        assert len(set(labels[cluster * 40 : (cluster + 1) * 40].tolist())) == 1
    brute = ((points[:, None, :] - found[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(labels, brute.argmin(axis=1))
    # |x|^2 - 2 x.c + |c|^2 in float32 cancels: points are ~400 from the origin
    np.testing.assert_allclose(dist, brute.min(axis=1), rtol=1e-3, atol=0.5)


def test_recall_counts_found_neighbours():
    assert recall([[1, 2, 3]], [[3, 2, 1]]) == 1.0
    assert recall([[1, 2], [7, 8]], [[1, 9], [9, 9]]) == 0.25
    assert recall([[1, 2, 3]], [[1, 5]], k=1) == 1.0
    with pytest.raises(ValueError, match="k must be in 1..2"):
        recall([[1, 2]], [[1, 2, 3]])
    with pytest.raises(ValueError, match="same rows"):
        recall([[1]], [[1], [2]])


def test_a_pickled_index_searches_the_same():
    import pickle

    rng = np.random.default_rng(13)
    database, queries = clustered(rng, 1000, 64), clustered(rng, 20, 64)
    index = IVFIndex(database, n_lists=10, n_probe=2)
    again = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(again.search(queries, 5)[1], index.search(queries, 5)[1])
    assert len(pickle.dumps(index)) < 2.5 * database.nbytes  # the database, not its copies


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_search_lists_scans_the_given_lists_only(metric):
    rng = np.random.default_rng(7)
    db = rng.integers(0, 256, (600, 48), dtype=np.uint8)
    queries = rng.integers(0, 256, (5, 48), dtype=np.uint8)
    index = IVFIndex(db, metric, n_lists=12, n_probe=3)
    probes = index.coarse.probes(queries, index.n_probe, 4, index.offsets)
    np.testing.assert_array_equal(
        index.search_lists(queries, 4, probes)[1], index.search(queries, 4)[1]
    )
    one_list = (np.array([0]), np.array([5]))  # query 0, list 5 only
    dist, found = index.search_lists(queries[:1], 4, one_list)
    members = index.ids[index.offsets[5] : index.offsets[6]]
    assert set(found[found >= 0].tolist()) <= set(members.tolist())
    exact = np.sort(
        np.abs(db[members].astype(int) - queries[0].astype(int)).sum(1)
        if metric == "l1"
        else np.sqrt(((db[members].astype(int) - queries[0].astype(int)) ** 2).sum(1))
    )
    filled = min(4, len(members))
    np.testing.assert_allclose(dist[0, :filled], exact[:filled])
    assert np.isinf(dist[0, filled:]).all() and (found[0, filled:] == -1).all()


def test_the_list_order_is_int32_and_the_single_query_pruner_shares_it():
    """Row positions are int32 (half the bytes of int64); the cascade of single queries
    keeps its summaries in the same list order, the same array, not a copy."""
    database = clustered(np.random.default_rng(12), 3000, 64)
    index = IVFIndex(database, "l2", n_lists=20)
    assert index.ids.dtype == np.int32
    assert index._single_query_pruner().rowmap is index.ids
    restored = IVFIndex.from_arrays(
        database, {**index.to_arrays(), "ids": index.ids.astype(np.int64)}
    )
    np.testing.assert_array_equal(restored.ids, index.ids)  # older files: int64 ids
    assert restored.ids.dtype == np.int32
