"""The one-query float scan over row ranges against NumPy, and the IVF path that uses it."""

import numpy as np
import pytest

from imgclf.neighbors.ivf import IVFIndex
from imgclf.neighbors.kernels.ranges import reference_scan, scan_ranges_f32, scan_ranges_u8


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("k", [1, 7, 40])
def test_the_scan_keeps_the_k_nearest_of_the_ranges(squared, k):
    rng = np.random.default_rng(k)
    rows = rng.standard_normal((300, 37)).astype(np.float32)
    norms = np.einsum("ij,ij->i", rows, rows)
    ids = rng.permutation(300).astype(np.int64)
    ranges = np.array([[250, 290], [0, 3], [100, 100], [40, 97]], np.int64)
    query = rng.standard_normal(37).astype(np.float32)
    best, best_index = np.full(k, np.inf, np.float32), np.full(k, -1, np.int64)
    scan_ranges_f32(query, rows, norms, ranges, ids, squared, best, best_index)
    dist, want = reference_scan(query, rows, ranges, ids, squared, k)
    np.testing.assert_array_equal(best_index, want)
    np.testing.assert_allclose(best, dist, rtol=1e-4, atol=1e-4)


def test_equal_distances_go_to_the_lower_id_and_short_ranges_leave_slots_unfilled():
    rows = np.zeros((6, 4), np.float32)  # every row at the same distance
    ids = np.array([5, 3, 9, 1, 7, 0], np.int64)
    best, best_index = np.full(5, np.inf, np.float32), np.full(5, -1, np.int64)
    ranges = np.array([[0, 2], [3, 5]], np.int64)  # ids 5, 3, 1, 7
    scan_ranges_f32(np.ones(4, np.float32), rows, np.zeros(6, np.float32), ranges, ids, True,
                    best, best_index)  # fmt: skip
    np.testing.assert_array_equal(best_index, [1, 3, 5, 7, -1])
    assert best[-1] == np.inf and np.all(best[:4] == 4)


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_a_single_float_query_finds_what_its_batch_finds(metric):
    """One float query scans its lists in one pass; in a batch, list by list with BLAS:
    the same neighbours (random data: no near ties), distances equal to rounding."""
    rng = np.random.default_rng(0)
    database = rng.standard_normal((3000, 40)).astype(np.float32)
    queries = rng.standard_normal((12, 40)).astype(np.float32)
    index = IVFIndex(database, metric, n_lists=30, n_probe=7)
    batch = index.search(queries, 6)
    for i, query in enumerate(queries):
        dist, found = index.search(query[None], 6)
        np.testing.assert_array_equal(found[0], batch[1][i])
        np.testing.assert_allclose(dist[0], batch[0][i], rtol=1e-5)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("k", [1, 9, 60])
@pytest.mark.parametrize("width", [37, 64, 352])  # plain loops; whole SIMD chunks
def test_the_uint8_scan_keeps_the_k_nearest_of_the_ranges(squared, k, width):
    rng = np.random.default_rng(k)
    rows = rng.integers(0, 256, (300, width), dtype=np.uint8)
    ranges = np.array([[250, 290], [0, 3], [100, 100], [40, 97]], np.int64)
    query = rng.integers(0, 256, width, dtype=np.uint8)
    best = np.full(k, np.iinfo(np.int32).max, np.int32)
    best_index = np.full(k, -1, np.int64)
    scan_ranges_u8(query, rows, ranges, squared, best, best_index)
    dist, want = reference_scan(query, rows, ranges, np.arange(300), squared, k)
    np.testing.assert_array_equal(best_index[: len(want)], want)
    np.testing.assert_array_equal(best[: len(want)], dist)  # exact integers
    assert (best_index[len(want) :] == -1).all()
