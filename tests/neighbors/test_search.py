"""The search engine against plain NumPy and scikit-learn, on random and adversarial data."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from imgclf.neighbors import ExactIndex, search
from imgclf.neighbors.kernels import l2
from imgclf.neighbors.kernels.topk import (
    merge_block,
    merge_gathered,
    merge_gathered_l2,
    merge_sorted,
    merge_two_by_id,
    reference_topk,
)
from imgclf.neighbors.search import padded

SCIPY_METRIC = {"l1": "cityblock", "l2": "euclidean"}
DTYPES = [np.uint8, np.float32, np.float64]


def full_distances(queries, database, metric):
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    x = np.asarray(database, np.float64).reshape(len(database), -1)
    return cdist(q, x, SCIPY_METRIC[metric])


def reference_search(queries, database, k, metric):
    """Full distance matrix in float64, stable sort: ties to the lower index."""
    return reference_topk(full_distances(queries, database, metric), k)


def unambiguous(queries, database, k, metric):
    """Rows whose k nearest are one well-defined set: no distance tie at the k-th place.

    Where the k-th and (k+1)-th distances are equal, the neighbour *set* depends on the
    tie rule. imgclf takes the lower index; scikit-learn's heap keeps whichever its sift
    order leaves, so only these rows can be compared with it directly.
    """
    dist = np.sort(full_distances(queries, database, metric), axis=1)
    return dist[:, k - 1] != dist[:, k]


def random_data(rng, n, d, dtype, low=0, high=256):
    data = rng.integers(low, high, size=(n, d))
    return data.astype(dtype) if dtype == np.uint8 else (data / 7).astype(dtype)


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 5, 37])
def test_matches_reference_on_random_data(metric, dtype, k):
    rng = np.random.default_rng(k)
    database, queries = random_data(rng, 300, 70, dtype), random_data(rng, 41, 70, dtype)
    dist, index = search(queries, database, k, metric)
    ref_dist, ref_index = reference_search(queries, database, k, metric)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5)
    if dtype == np.uint8:  # integer kernels are exact: same neighbours, same order
        np.testing.assert_array_equal(index, ref_index)
    assert dist.shape == index.shape == (41, k)
    assert (np.diff(dist, axis=1) >= 0).all()


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_ties_go_to_the_lower_index(metric):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(5, 64), dtype=np.uint8)
    database = np.tile(base, (40, 1))  # every row appears 40 times
    dist, index = search(base, database, k=40, metric=metric, working_memory=2**16)
    np.testing.assert_array_equal(dist, 0)
    np.testing.assert_array_equal(index, np.arange(0, 200, 5)[None, :] + np.arange(5)[:, None])


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_k_equal_to_database_size_sorts_everything(metric):
    rng = np.random.default_rng(1)
    database = rng.integers(0, 4, size=(50, 3), dtype=np.uint8)  # many equal distances
    queries = rng.integers(0, 4, size=(7, 3), dtype=np.uint8)
    dist, index = search(queries, database, k=50, metric=metric)
    ref_dist, ref_index = reference_search(queries, database, 50, metric)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_allclose(dist, ref_dist)


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_extremes_and_zeros(metric):
    database = np.array([np.zeros(3072), np.full(3072, 255)], np.uint8)
    dist, index = search(database, database, k=2, metric=metric)
    far = 255 * 3072 if metric == "l1" else 255 * np.sqrt(3072)
    np.testing.assert_allclose(dist, [[0, far], [0, far]])
    np.testing.assert_array_equal(index, [[0, 1], [1, 0]])


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
@pytest.mark.parametrize("n_queries", [1, 2, 600])
def test_blocking_and_threads_do_not_change_results(n_jobs, n_queries):
    rng = np.random.default_rng(n_queries)
    database = rng.integers(0, 256, size=(2_000, 100), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(n_queries, 100), dtype=np.uint8)
    expected = reference_search(queries, database, 10, "l1")[1]
    for memory in (2**16, 2**20, None):
        _, index = search(queries, database, 10, "l1", working_memory=memory, n_jobs=n_jobs)
        np.testing.assert_array_equal(index, expected)


def test_images_are_flattened():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(30, 4, 4, 3), dtype=np.uint8)
    dist, index = search(images[:3], images, k=1)
    np.testing.assert_array_equal(index[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(dist, 0)


def test_index_is_reusable_and_keeps_uint8():
    database = np.arange(12, dtype=np.uint8).reshape(4, 3)
    index = ExactIndex(database, "l1")
    assert index.database.dtype == np.uint8
    assert index.search(database[:1], 1)[1][0, 0] == 0
    assert index.search(database[3:], 2)[1].tolist() == [[3, 2]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda q, d: search(q, d, k=0), "k must be >= 1"),
        (lambda q, d: search(q, d, k=11), "k must be <= 10"),
        (lambda q, d: search(q, d, k=1.5), "k must be an integer"),
        (lambda q, d: search(q, d, k=1, metric="cosine"), "metric must be one of 'l1', 'l2'"),
        (lambda q, d: search(q[:, :2], d, k=1), "queries have 2 features but the database has 3"),
        (lambda q, d: search(q[0], d, k=1), "queries must be 2D"),
        (lambda q, d: search(q[:0], d, k=1), "queries is empty"),
        (lambda q, d: search(q, np.where(d == 0, np.nan, d), k=1), "database contains NaN"),
        (lambda q, d: search(np.full((1, 3), np.inf), d, k=1), "queries contains NaN or infinity"),
        # a float32 block ready for the kernels is checked too, and the place named plainly
        (
            lambda q, d: search(np.where(q == 7, np.nan, q), d, k=1),
            r"queries contains NaN or infinity \(first at index \(2, 1\)\)",
        ),
        (lambda q, d: search(q, d.astype(str), k=1), "database must be numeric"),
    ],
)
def test_bad_input_names_argument_and_value(call, message):
    database = np.arange(30, dtype=np.float32).reshape(10, 3)
    with pytest.raises(ValueError, match=message):
        call(database[:4].copy(), database)


def test_merge_block_matches_full_sort_on_ties():
    rng = np.random.default_rng(3)
    full = rng.integers(0, 5, size=(20, 90)).astype(np.int32)
    best = np.full((20, 7), np.iinfo(np.int32).max, np.int32)
    best_index = np.full((20, 7), -1, np.int64)
    for lo in range(0, 90, 13):
        block = full[:, lo : lo + 13]
        merge_block(np.ascontiguousarray(block), 20, block.shape[1], lo, best, best_index)
    ref_dist, ref_index = reference_topk(full, 7)
    np.testing.assert_array_equal(best, ref_dist)
    np.testing.assert_array_equal(best_index, ref_index)


def test_merge_gathered_l2_is_the_float_kernel_then_merge_gathered():
    """Distances made while merging: the same float32 numbers and top-k as the kernel's
    block folded by merge_gathered, for scattered queries, ids in any order, exact
    duplicates (ties by id) and a row equal to a query; each query meets each row once."""
    rng = np.random.default_rng(5)
    rows = rng.normal(0, 3, (40, 19)).astype(np.float32)
    rows[20:30] = rows[:10]  # duplicates under other ids
    queries = rng.normal(0, 3, (12, 19)).astype(np.float32)
    queries[3] = rows[7]
    prepared, ids = l2.prepare_f32(rows), rng.permutation(1000)[:40]
    norms = np.einsum("ij,ij->i", queries, queries)
    results = []
    for fused in (False, True):
        best = np.full((12, 6), np.inf, np.float32)
        best_index = np.full((12, 6), -1, np.int64)
        some = np.array([0, 3, 5])
        others = np.setdiff1d(np.arange(12), some)
        for who, lo, hi in [(some, 0, 25), (np.arange(12), 25, 40), (others, 0, 25)]:
            out = np.empty((len(who), hi - lo), np.float32)
            if fused:
                np.dot(queries[who], rows[lo:hi].T, out=out)
                merge_gathered_l2(
                    out, norms, who, prepared.norms[lo:hi], ids[lo:hi], best, best_index
                )
            else:
                l2.block_f32(queries[who], prepared, lo, hi, out)
                merge_gathered(out, who, ids[lo:hi], best, best_index)
        results.append((best, best_index))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    # query 3 is row 7 and its duplicate 27: (almost) zero, equal, the lower id first
    assert results[1][0][3, 0] == results[1][0][3, 1] < 1e-3
    assert results[1][1][3, :2].tolist() == sorted([ids[7], ids[27]])


def test_merge_sorted_prefers_lower_index_across_parts():
    left = (np.array([[1.0, 2.0]]), np.array([[4, 5]]))
    right = (np.array([[1.0, 1.5]]), np.array([[2, 9]]))
    dist, index = merge_sorted([left, right], 3)
    assert index.tolist() == [[2, 4, 9]] and dist.tolist() == [[1.0, 1.0, 1.5]]


@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_merge_two_by_id_is_a_sort_by_distance_then_id(k):
    """Two threads' top lists (ids disjoint, many equal distances, a list shorter than k,
    the unfilled tail of _BIG that the cascade leaves): the first k by (distance, id)."""
    rng = np.random.default_rng(k)
    big = np.iinfo(np.int64).max
    for _ in range(50):
        ids = rng.permutation(100)
        n_a = int(rng.integers(0, 11))
        lists = []
        for part in (ids[:n_a], ids[n_a : n_a + 10]):
            dist = rng.integers(0, 4, len(part))
            order = np.lexsort((part, dist))
            lists.append((dist[order].astype(np.int64), part[order].astype(np.int64)))
        if k > 10 and rng.random() < 0.5:  # a part that found fewer rows than k
            lists[1] = tuple(np.append(x, [big] * (k - 10)) for x in lists[1])
        if sum(len(d) for d, _ in lists) < k:
            continue
        dist = np.concatenate([d for d, _ in lists])
        found = np.concatenate([i for _, i in lists])
        best = np.lexsort((found, dist))[:k]
        merged = merge_two_by_id(*lists[0], *lists[1], k)
        np.testing.assert_array_equal(merged[0], dist[best])
        np.testing.assert_array_equal(merged[1], found[best])


def test_agrees_with_scikit_learn_neighbours():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(4)
    database = rng.integers(0, 256, size=(500, 48), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(60, 48), dtype=np.uint8)
    for metric, sk_metric in (("l1", "manhattan"), ("l2", "euclidean")):
        sk = NearestNeighbors(n_neighbors=5, algorithm="brute", metric=sk_metric).fit(database)
        sk_dist, sk_index = sk.kneighbors(queries)
        dist, index = search(queries, database, 5, metric)
        np.testing.assert_allclose(dist, sk_dist, rtol=1e-9)
        # scikit-learn may order equal distances either way: compare as (distance, index) sets
        order = np.lexsort((sk_index, sk_dist), axis=-1)
        clear = unambiguous(queries, database, 5, metric)
        np.testing.assert_array_equal(index[clear], np.take_along_axis(sk_index, order, 1)[clear])


def smooth_images(rng, n):
    """Correlated pixels, like photos: where the group-sum bounds prune most rows."""
    base = rng.integers(0, 256, size=(n, 4, 4, 3)).astype(np.float32)
    return np.repeat(np.repeat(base, 8, axis=1), 8, axis=2).astype(np.uint8).reshape(n, -1)


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 10, 64])
@pytest.mark.parametrize("n_jobs", [1, 3])
def test_pruned_single_queries_are_exact(metric, k, n_jobs):
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE, prunes

    rng = np.random.default_rng(k)
    database = smooth_images(rng, PRUNE_MIN_DATABASE + 1000)
    database[100:110] = database[5]  # exact duplicates: ties to break by index
    queries = np.vstack(
        [database[5], smooth_images(rng, 2), rng.integers(0, 256, size=(1, 3072), dtype=np.uint8)]
    )
    index = ExactIndex(database, metric, n_jobs=n_jobs)
    index.single_query_threads(n_jobs)  # (the default; set, as a server sets it)
    for query in queries:
        assert prunes(index.database, 1, k) and index.prunes(1, k)
        dist, idx = index.search(query[None], k)
        ref_dist, ref_idx = reference_search(query[None], database, k, metric)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)
    assert index._pruner is not None and index._pruner.n_jobs == n_jobs  # the pruned path ran


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_single_query_threads(metric):
    """Single queries run on n_jobs threads by default; a server asks for one. Changing
    it rebuilds the cascade with that many threads; the answers stay."""
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE

    rng = np.random.default_rng(45)
    database = smooth_images(rng, PRUNE_MIN_DATABASE + 100)
    index = ExactIndex(database, metric, n_jobs=2)
    first = index.search(database[:1], 5)
    assert index._pruner.n_jobs == 2
    index.single_query_threads(1)
    assert index.search(database[:1], 5)[1].tolist() == first[1].tolist()
    assert index._pruner.n_jobs == 1
    index.single_query_threads(None)  # back to the rule
    assert index.search(database[:1], 5)[1].tolist() == first[1].tolist()
    assert index._pruner.n_jobs == 2
    with pytest.raises(ValueError, match="n_jobs"):
        index.single_query_threads(0)


def test_pruning_bounds_never_exceed_true_distances():
    from imgclf.neighbors.pruning import GROUP, LowerBoundPruner

    rng = np.random.default_rng(9)
    database = rng.integers(0, 256, size=(300, 128), dtype=np.uint8)
    query = rng.integers(0, 256, size=128, dtype=np.uint8)
    for metric, scale in (("l1", 1), ("l2", GROUP)):
        pruner = LowerBoundPruner(database, metric)
        sums = query.reshape(-1, GROUP).sum(axis=1, dtype=np.int64)
        from imgclf.neighbors.pruning.bounds import _lower_bounds

        bounds = _lower_bounds(pruner.summary, sums, metric == "l2")
        exact = full_distances(query[None], database, metric)[0]
        exact = exact if metric == "l1" else np.rint(exact**2)
        assert (bounds <= scale * exact + 1e-6).all()


def test_read_only_queries_are_copied_before_the_kernels():
    """Pillow decodes into read-only buffers; numba would compile every kernel again for them."""
    from imgclf.neighbors.search import match_queries

    rng = np.random.default_rng(41)
    database = rng.integers(0, 256, size=(300, 64), dtype=np.uint8)
    queries = database[:4].copy()
    frozen = queries.copy()
    frozen.setflags(write=False)
    assert match_queries(frozen, database).flags.writeable
    assert match_queries(queries, database) is queries  # writable: no copy
    index = ExactIndex(database, "l2")
    for got, want in zip(index.search(frozen, 3), index.search(queries, 3), strict=True):
        np.testing.assert_array_equal(got, want)


def _query_forms(rng, database):
    """Queries as users pass them: ready rows, read-only, strided, images, floats, lists."""
    rows = rng.integers(0, 256, size=(3, database.shape[1]), dtype=np.uint8)
    frozen = rows.copy()
    frozen.setflags(write=False)
    return {
        "ready": rows,
        "read-only": frozen,
        "strided": np.repeat(rows, 2, axis=1)[:, ::2],
        "images": rows.reshape(3, 4, 4, 3),
        "float": rows.astype(np.float64),
        "list": rows.tolist(),
    }


@pytest.mark.parametrize("db_dtype", [np.uint8, np.float32])
def test_as_queries_is_as_features_then_match_queries(db_dtype):
    """The fast path for ready uint8 rows gives what the general checks give, and only it
    skips them (no copy); errors are the general path's."""
    from imgclf.neighbors.search import as_features, as_queries, match_queries

    rng = np.random.default_rng(47)
    database = rng.integers(0, 256, size=(50, 48)).astype(db_dtype)
    for name, queries in _query_forms(rng, database).items():
        got = as_queries(queries, database)
        want = match_queries(as_features(queries, "queries"), database)
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.dtype == want.dtype and got.flags.c_contiguous and got.flags.writeable, name
        assert (got is queries) == (name == "ready" and db_dtype == np.uint8), name
    for bad, message in [(np.zeros((0, 48), np.uint8), "empty"), (np.zeros((2, 47), np.uint8),
                         "47 features"), (np.zeros(48, np.uint8), "must be 2D")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            as_queries(bad, database)


def test_single_queries_never_prepare_the_blocked_copy():
    """The kernel's copy of the database (L2: packed) is made on the first batch only."""
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE

    rng = np.random.default_rng(43)
    database = rng.integers(0, 256, size=(PRUNE_MIN_DATABASE + 100, 64), dtype=np.uint8)
    index = ExactIndex(database, "l2")
    single = index.search(database[:1], 3)
    assert index._blocks is None and index._pruner is not None
    batch = index.search(database[:40], 3)
    assert index._blocks is not None
    np.testing.assert_array_equal(single[1], batch[1][:1])
    index.release_batch_copy()  # (a server that found batches no faster)
    assert index._blocks is None
    assert index.make_batch_copy()._blocks is not None
    index.release_batch_copy()
    for got, want in zip(index.search(database[:40], 3), batch, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_nearest_classes_are_those_of_a_full_sort(metric, n_jobs):
    """Each wanted class's nearest row, as a full sort by (distance, row) finds it, for the
    m nearest wanted classes; ties (duplicated rows) to the lower row. The same for the
    classes past the k nearest (search_classes: in one cascade on one thread; after the
    search on two)."""
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE

    rng = np.random.default_rng(47)
    database = smooth_images(rng, PRUNE_MIN_DATABASE + 300)
    database[200:230] = database[7]  # equal distances across classes
    labels = rng.integers(0, 6, len(database))
    index = ExactIndex(database, metric, n_jobs=n_jobs)
    queries = [database[7], *smooth_images(rng, 3), rng.integers(0, 256, 3072, dtype=np.uint8)]
    for query in queries:
        assert_nearest_classes(index, query, database, np.arange(len(database)), labels, metric)


def pruner_nearest_classes(index, query, labels, wanted, m):
    """``LowerBoundPruner.nearest_classes`` through ``index``'s pruner (what a search on
    two threads falls back to), distances as the index gives them."""
    ranges = None
    if hasattr(index, "coarse"):
        ranges = index.coarse.probed_ranges(query, index.n_probe, 1, index.offsets)
    pruner = index._single_query_pruner()
    row = padded(query[None])[0]
    classes, dist, rows = pruner.nearest_classes(row, labels, wanted, m, ranges)
    dist = dist.astype(np.float64)
    return classes, np.sqrt(dist) if index.metric == "l2" else dist, rows


def assert_nearest_classes(index, query, database, rows, labels, metric) -> None:
    """The pruner's ``nearest_classes`` of ``query`` (over the lists an inverted file
    probes) are the classes of a full sort of the database's ``rows`` by (distance,
    row), for two sets of wanted classes of six and three ``m``; labels in 0..5. And
    ``index.search_classes`` finds those past the k nearest."""
    dist, order = reference_search(query[None], database[rows], len(rows), metric)
    first_of = {}
    for d, row in zip(dist[0], rows[order[0]], strict=True):
        first_of.setdefault(int(labels[row]), (d, int(row)))
    for wanted in ([True] * 6, [False, True, True, False, True, True]):
        for m in (1, 3, 6):
            classes, got_dist, got_rows = pruner_nearest_classes(index, query, labels, wanted, m)
            expected = [c for c in first_of if wanted[c]][:m]
            assert classes.tolist() == expected
            assert got_rows.tolist() == [first_of[c][1] for c in expected]
            np.testing.assert_allclose(got_dist, [first_of[c][0] for c in expected])
    for k, n_top in ((1, 3), (5, 2), (10, 6), (40, 6)):
        got = index.search_classes(query, k, labels, n_top)
        np.testing.assert_array_equal(got[1], rows[order[0, :k]])
        np.testing.assert_allclose(got[0], dist[0, :k])
        voted = set(labels[got[1]].tolist())
        expected = [c for c in first_of if c not in voted][: max(0, n_top - len(voted))]
        assert got[2].tolist() == expected
        assert got[4].tolist() == [first_of[c][1] for c in expected]
        np.testing.assert_allclose(got[3], [first_of[c][0] for c in expected])
