"""ShardedIndex on an in-process cluster: every answer equals the single-process engine's,
element for element (ties to the lower row), for exact and IVF search."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.distributed import ShardedIndex
from imgclf.distributed.cluster import worker_records
from imgclf.distributed.shards import shard_bounds
from imgclf.neighbors import ExactIndex, IVFIndex
from imgclf.neighbors.search import PRUNE_MIN_DATABASE
from tests.distributed.conftest import require_distributed, tied_pixels

require_distributed()

METRICS = ["l1", "l2"]


def assert_same(got, expected):
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[0].dtype == np.float64 and got[1].dtype == np.int64


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n_shards", [1, 2, 5])
def test_exact_search_equals_the_local_engine_with_ties(client, metric, n_shards):
    rng = np.random.default_rng(n_shards)
    database, queries = tied_pixels(rng, 1500), tied_pixels(rng, 70)
    with ShardedIndex(client, database, metric, n_shards=n_shards) as index:
        local = ExactIndex(database, metric)
        for k in (1, 10, 400):  # 400 > a shard of 300 rows: the shards' lists are merged
            assert_same(index.search(queries, k), local.search(queries, k))
        assert_same(index.search(queries, 1500), local.search(queries, 1500))  # k = n


@pytest.mark.parametrize("metric", ["l2"])  # one metric: the pruner compiles on first use
def test_single_queries_on_a_large_database_equal_the_pruned_local_search(client, metric):
    rng = np.random.default_rng(3)
    database = rng.integers(0, 256, (PRUNE_MIN_DATABASE * 2, 96), dtype=np.uint8)
    with ShardedIndex(client, database, metric) as index:
        local = ExactIndex(database, metric)  # a few queries: the lower-bound cascade
        for m in (1, 4):
            assert_same(index.search(database[:m], 5), local.search(database[:m], 5))


@pytest.mark.parametrize("metric", METRICS)
def test_float_features_and_images_are_searched_as_locally(client, metric):
    rng = np.random.default_rng(4)
    # integer-valued floats: float32 sums are exact, so even BLAS's L2 agrees to the bit
    features = rng.integers(0, 5, (900, 30)).astype(np.float32)
    with ShardedIndex(client, features, metric, n_shards=3) as index:
        assert_same(index.search(features[:50], 8), ExactIndex(features, metric).search(
            features[:50], 8))  # fmt: skip
    images = tied_pixels(rng, 600, 4 * 4 * 3).reshape(600, 4, 4, 3)
    with ShardedIndex(client, images, metric) as index:
        assert_same(index.search(images[:9], 3), ExactIndex(images, metric).search(images[:9], 3))


def test_float_l2_agrees_to_float32_rounding(client):
    """BLAS rounds float32 dot products by block shape, as the local engine does between
    thread counts: distances agree to float32 precision, neighbours on clear data exactly."""
    rng = np.random.default_rng(5)
    features = rng.standard_normal((2000, 64)).astype(np.float32)
    queries = rng.standard_normal((300, 64)).astype(np.float32)
    with ShardedIndex(client, features, "l2", n_shards=3) as index:
        dist, found = index.search(queries, 5)
    ref_dist, ref_found = ExactIndex(features, "l2").search(queries, 5)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5)
    assert (found == ref_found).mean() > 0.99


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_equals_the_local_ivf_index(client, metric):
    rng = np.random.default_rng(6)
    database, queries = tied_pixels(rng, 2400, 32), tied_pixels(rng, 60, 32)
    local = IVFIndex(database, metric, n_lists=24, n_probe=3, seed=2)
    with ShardedIndex(
        client, database, metric, "ivf", n_lists=24, n_probe=3, seed=2, n_shards=3
    ) as index:
        assert_same(index.search(queries, 10), local.search(queries, 10))
        # the probed lists hold < k rows: both probe further lists, by the whole index's sizes
        assert_same(index.search(queries[:5], 900), local.search(queries[:5], 900))
        index.n_probe = local.n_probe = 7
        assert_same(index.search(queries, 4), local.search(queries, 4))
        saved, expected = index.to_arrays(), local.to_arrays()
        assert saved.keys() == expected.keys()
        for name in saved:
            np.testing.assert_array_equal(saved[name], expected[name])


def test_ivf_defaults_follow_the_local_index(client):
    rng = np.random.default_rng(7)
    database = tied_pixels(rng, 1200, 16)
    with ShardedIndex(client, database, "l2", "ivf") as index:
        local = IVFIndex(database, "l2")
        assert (index.n_lists, index.n_probe) == (local.n_lists, local.n_probe)
        assert_same(index.search(database[:20], 5), local.search(database[:20], 5))
        with pytest.warns(UserWarning, match="more than the index's"):
            index.n_probe = 10**6
        assert index.n_probe == index.n_lists


@pytest.mark.parametrize("algorithm", ["exact", "ivf"])
def test_an_index_over_some_placed_rows_equals_a_local_index_over_them(client, algorithm):
    """A fold's training rows, in any order, with its queries read on the cluster."""
    rng = np.random.default_rng(8)
    database = tied_pixels(rng, 1800, 24)
    settings = {"n_lists": 12, "n_probe": 2} if algorithm == "ivf" else {}
    local_cls = IVFIndex if algorithm == "ivf" else ExactIndex
    with ShardedIndex(client, database, "l1", n_shards=4) as whole:
        for rows in (np.sort(rng.choice(1800, 1200, replace=False)), rng.permutation(1800)[:900]):
            held_out = np.setdiff1d(np.arange(1800), rows)[::-1]  # unsorted queries
            fold = ShardedIndex.over_rows(whole.placement, rows, "l1", algorithm, **settings)
            local = local_cls(database[rows], "l1", **settings)
            assert_same(fold.search_rows(held_out, 9), local.search(database[held_out], 9))
            assert_same(fold.search(database[:7], 3), local.search(database[:7], 3))
            fold.close()
        assert whole.placement.shards[0].data.status == "finished"  # the fold left them


def test_search_checks_its_arguments_as_the_local_engine(client):
    database = np.zeros((50, 12), np.uint8)
    with ShardedIndex(client, database, "l2") as index:
        with pytest.raises(ValueError, match="k must be <= 50"):
            index.search(database[:1], 51)
        with pytest.raises(ValueError, match="queries have 11 features but the database has 12"):
            index.search(np.zeros((1, 11), np.uint8), 1)
        with pytest.raises(ValueError, match="non-integer"):
            index.search(np.full((1, 12), 0.5), 1)
        assert len(index) == 50 and index.n_features == 12
        with pytest.raises(TypeError, match="cannot be pickled"):
            import pickle

            pickle.dumps(index)
    with pytest.raises(ValueError, match="algorithm must be one of 'exact', 'ivf'"):
        ShardedIndex(client, database, "l2", "hnsw")
    with pytest.raises(ValueError, match="metric must be one of"):
        ShardedIndex(client, database, "cosine")
    with pytest.raises(ValueError, match="pca_components must be an integer >= 1, 'auto'"):
        ShardedIndex(client, database, "l2", "ivf", pca_components="all")  # before any shard


def test_each_shard_is_placed_once_on_one_worker(client):
    database = np.arange(100 * 8, dtype=np.uint8).reshape(100, 8)
    with ShardedIndex(client, database, "l1", n_shards=4) as index:
        workers = {s.worker for s in index.placement.shards}
        assert workers == set(worker_records(client))
        held = client.who_has([s.data for s in index.placement.shards])
        assert all(len(where) == 1 for where in held.values())
        assert [(s.lo, s.hi) for s in index.placement.shards] == shard_bounds(100, 4)


def test_shard_bounds_are_balanced_and_cover_every_row():
    for n, parts in ((10, 3), (7, 7), (1000, 6)):
        bounds = shard_bounds(n, parts)
        sizes = [hi - lo for lo, hi in bounds]
        assert bounds[0][0] == 0 and bounds[-1][1] == n and max(sizes) - min(sizes) <= 1
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


@pytest.fixture
def stored_pixels(tmp_path):
    """Pixels in a Zarr store: the lazy images of a set larger than memory."""
    from imgclf.datasets.store import StoreWriter, open_store

    images = tied_pixels(np.random.default_rng(9), 1300, 4 * 4 * 3).reshape(1300, 4, 4, 3)
    with StoreWriter(tmp_path / "s.zarr") as store:
        store.array("images", (4, 4, 3), np.uint8, chunk_rows=100).append(images)
        store.publish({})
    return images, open_store(tmp_path / "s.zarr")[1]["images"]


def test_a_store_backed_database_is_read_by_the_workers(client, stored_pixels):
    from imgclf.distributed.shards import ReaderSource

    images, lazy = stored_pixels
    for algorithm, settings, local_cls in (
        ("exact", {}, ExactIndex),
        ("ivf", {"n_lists": 13, "n_probe": 3}, IVFIndex),
    ):
        with ShardedIndex(client, lazy, "l1", algorithm, n_shards=3, **settings) as index:
            assert isinstance(index.placement.source, ReaderSource)
            local = local_cls(images, "l1", **settings)
            assert_same(index.search(images[::40], 6), local.search(images[::40], 6))


def test_a_subset_of_a_store_is_read_by_the_workers(client, stored_pixels):
    """A lazy subset (Dataset.subset of a set on disk: RowSubset) is read by the workers too."""
    from imgclf.datasets.row_subset import RowSubset
    from imgclf.distributed.shards import ReaderSource

    images, lazy = stored_pixels
    rows = np.random.default_rng(3).permutation(1300)[:700]
    with ShardedIndex(client, RowSubset(lazy, rows), "l1", n_shards=3) as index:
        assert isinstance(index.placement.source, ReaderSource)
        local = ExactIndex(images[rows], "l1")
        assert_same(index.search(images[::40], 6), local.search(images[::40], 6))


def test_the_sweep_of_a_store_backed_set_equals_the_in_memory_sweep(client, stored_pixels):
    from imgclf.distributed import sweep_knn
    from imgclf.model_selection import sweep_knn as local_sweep_knn

    images, lazy = stored_pixels
    y = np.arange(1300) % 4
    got = sweep_knn(client, lazy.reshape_rows(), y, [1, 5], folds=3)
    expected = local_sweep_knn(images.reshape(1300, -1), y, [1, 5], folds=3)
    np.testing.assert_array_equal(got.scores, expected.scores)
