"""The one-query coarse step against NumPy and against the batch path it stands in for."""

import numpy as np
import pytest

from imgclf._kmeans import kmeans
from imgclf.neighbors.coarse import L1_MEDIANS_MAX_D, CoarseQuantizer
from imgclf.neighbors.kernels import probe
from imgclf.neighbors.kernels.probe import (
    nearest_lists,
    reference_l1_scores,
    reference_nearest_lists,
)

# the ways a quantizer ranks lists: by centroids (L2), by medians of uint8 or float rows (L1)
RANKINGS = [("l2", np.uint8), ("l1", np.uint8), ("l1", np.float32)]


def quantizer(rng, n_lists=40, d=96, components=16, metric="l2", dtype=np.uint8):
    """Integer-valued rows: float32 L1 sums are then exact, as uint8's are."""
    sample = rng.integers(0, 256, (2000, d)).astype(dtype)
    coarse = CoarseQuantizer.fit(sample, n_lists, components, seed=0, cluster=kmeans,
                                 metric=metric)  # fmt: skip
    return sample, coarse


def offsets_for(rng, n_lists):
    return np.concatenate([[0], np.cumsum(rng.integers(1, 30, n_lists))]).astype(np.int64)


def ranges_of(coarse, query, n_probe, k, offsets):
    return nearest_lists(
        query, coarse.components, coarse._projected_mean, coarse.centroids,
        coarse._centroid_norms, coarse.medians, n_probe, offsets, k,
    )  # fmt: skip


@pytest.mark.parametrize("components", [16, None])
@pytest.mark.parametrize("n_probe", [1, 5, 40])
def test_nearest_lists_are_the_nearest_centroids(components, n_probe):
    rng = np.random.default_rng(n_probe)
    sample, coarse = quantizer(rng, components=components)
    offsets = offsets_for(rng, coarse.n_lists)
    for query in rng.integers(0, 256, (30, sample.shape[1]), dtype=np.uint8):
        ranges = ranges_of(coarse, query, n_probe, 1, offsets)
        lists = np.searchsorted(offsets, ranges[:, 0])
        expected = reference_nearest_lists(
            query, coarse.components, coarse.mean, coarse.centroids, n_probe
        )
        np.testing.assert_array_equal(lists, expected)
        np.testing.assert_array_equal(ranges[:, 1], offsets[expected + 1])


@pytest.mark.parametrize("n_probe", [1, 19, 20, 21, 32, 128, 894])
def test_selection_keeps_the_lists_insertion_keeps(n_probe):
    """The two ways of keeping the least scores, on 894 lists: distinct scores, scores
    with many ties (equal scores: the lower list first), and signed zeros (equal) beside
    infinities, against a stable NumPy sort."""
    rng = np.random.default_rng(n_probe)
    zeros = rng.choice(np.array([-0.0, 0.0, -1.5, 2.0, np.inf, -np.inf, 1e-30]), 894)
    for scores in (rng.standard_normal(894), np.round(rng.standard_normal(894) * 3), zeros):
        scores = scores.astype(np.float32)
        expected = np.argsort(scores, kind="stable")[:n_probe]
        np.testing.assert_array_equal(probe._least_by_insertion(scores, n_probe), expected)
        np.testing.assert_array_equal(probe._least_by_selection(scores, n_probe), expected)
        np.testing.assert_array_equal(probe._least(scores, n_probe), expected)


def test_equal_scores_go_to_the_lower_list():
    centroids = np.array([[1.0, 0], [0, 1], [1, 0], [0, 1]], np.float32)  # two pairs of twins
    none = np.zeros((0, 2), np.float32)
    coarse = CoarseQuantizer(np.zeros(2, np.float32), none, centroids, none)
    offsets = np.arange(5, dtype=np.int64) * 10
    ranges = ranges_of(coarse, np.array([3, 1], np.uint8), 3, 1, offsets)
    np.testing.assert_array_equal(ranges[:, 0] // 10, [0, 2, 1])


@pytest.mark.parametrize(("n_probe", "k"), [(6, 1), (2, 60)])
@pytest.mark.parametrize(("metric", "dtype"), RANKINGS)
def test_the_batch_path_probes_the_same_lists(n_probe, k, metric, dtype):
    """Alone as in a batch; with k = 60 every query's 2 nearest lists hold too few rows
    (1-29 each), and it probes on, nearest first, until they hold k."""
    rng = np.random.default_rng(n_probe)
    sample, coarse = quantizer(rng, metric=metric, dtype=dtype)
    offsets = offsets_for(rng, coarse.n_lists)
    queries = sample[:40]
    pair_query, pair_list = coarse.probes(queries, n_probe, k, offsets)
    sizes = np.diff(offsets)
    for i, query in enumerate(queries):
        lists = pair_list[pair_query == i]
        assert sizes[lists].sum() >= k and (len(lists) == n_probe or sizes[lists[:-1]].sum() < k)
        ranges = coarse.probed_ranges(query, n_probe, k, offsets)
        np.testing.assert_array_equal(ranges[:, 0], offsets[lists])


@pytest.mark.parametrize(("metric", "dtype"), RANKINGS)
def test_lists_too_short_for_k_probe_further(metric, dtype):
    rng = np.random.default_rng(2)
    sample, coarse = quantizer(rng, metric=metric, dtype=dtype)
    offsets = np.arange(coarse.n_lists + 1, dtype=np.int64) * 3  # three rows a list
    assert len(ranges_of(coarse, sample[0], 2, 7, offsets)) == 0  # 6 rows < k: not enough
    ranges = coarse.probed_ranges(sample[0], 2, 7, offsets)
    assert (ranges[:, 1] - ranges[:, 0]).sum() >= 7 and len(ranges) == 3


@pytest.mark.parametrize(("metric", "dtype"), RANKINGS)
def test_threads_probe_the_lists_one_thread_does(metric, dtype):
    rng = np.random.default_rng(3)
    sample, coarse = quantizer(rng, metric=metric, dtype=dtype)
    offsets = offsets_for(rng, coarse.n_lists)
    queries = rng.integers(0, 256, (1100, 96)).astype(dtype)  # 4 shares of 256 or more
    alone = coarse.probes(queries, 5, 30, offsets)
    for n_jobs in (2, 4, 16):
        shared = coarse.probes(queries, 5, 30, offsets, n_jobs=n_jobs)
        np.testing.assert_array_equal(shared[0], alone[0])
        np.testing.assert_array_equal(shared[1], alone[1])


@pytest.mark.parametrize(("metric", "dtype"), RANKINGS)
def test_a_query_probes_the_same_lists_in_any_batch(metric, dtype):
    """Query by query, by one compiled code: not a BLAS product, whose sums over many rows
    take another order than over one (a query near two lists could then switch)."""
    rng = np.random.default_rng(2)
    sample, coarse = quantizer(rng, metric=metric, dtype=dtype)
    offsets = offsets_for(rng, coarse.n_lists)
    queries = np.concatenate([sample[:40], rng.integers(0, 256, (40, 96)).astype(dtype)])
    whole = coarse.probes(queries, 4, 1, offsets)
    for lo, hi in [(0, 1), (3, 17), (17, 80)]:
        part = coarse.probes(queries[lo:hi], 4, 1, offsets)
        np.testing.assert_array_equal(part[1], whole[1][(whole[0] >= lo) & (whole[0] < hi)])
        np.testing.assert_array_equal(part[0] + lo, whole[0][(whole[0] >= lo) & (whole[0] < hi)])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("n_probe", [1, 5, 40])
def test_l1_lists_are_those_of_the_nearest_medians(dtype, n_probe):
    """L1: every list scored by the query's L1 distance to its medians (exact sums here),
    least first, equal scores to the lower list, as a stable NumPy sort gives them."""
    rng = np.random.default_rng(n_probe)
    sample, coarse = quantizer(rng, metric="l1", dtype=dtype)
    offsets = offsets_for(rng, coarse.n_lists)
    for query in rng.integers(0, 256, (30, sample.shape[1])).astype(dtype):
        lists = np.searchsorted(offsets, ranges_of(coarse, query, n_probe, 1, offsets)[:, 0])
        scores = reference_l1_scores(query, coarse.medians)
        np.testing.assert_array_equal(lists, np.argsort(scores, kind="stable")[:n_probe])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_medians_are_each_cells_median_of_the_sample(dtype):
    """Each list's medians: per feature, a value of the sample rows in the list with at most
    half of them below and at most half above it (an L1 centre), in the rows' dtype."""
    rng = np.random.default_rng(4)
    sample, coarse = quantizer(rng, metric="l1", dtype=dtype)
    labels = coarse.assign(sample)
    assert coarse.medians.shape == (coarse.n_lists, sample.shape[1])
    assert coarse.medians.dtype == dtype
    for c in range(coarse.n_lists):
        rows, median = sample[labels == c], coarse.medians[c]
        assert len(rows) > 0
        assert ((rows < median).sum(0) <= len(rows) / 2).all()
        assert ((rows > median).sum(0) <= len(rows) / 2).all()
        assert ((rows == median).any(0)).all()


def test_only_l1_of_modest_width_keeps_medians():
    rng = np.random.default_rng(5)
    assert len(quantizer(rng, metric="l2")[1].medians) == 0
    assert len(quantizer(rng, metric="l1")[1].medians) == 40
    wide = quantizer(rng, n_lists=4, d=L1_MEDIANS_MAX_D + 16, metric="l1")[1]
    assert len(wide.medians) == 0  # a pass over every median would cost what it saves


def test_medians_survive_the_model_file_form_and_are_checked():
    rng = np.random.default_rng(6)
    sample, coarse = quantizer(rng, metric="l1")
    arrays = coarse.to_arrays()
    again = CoarseQuantizer.from_arrays(arrays, sample.shape[1])
    np.testing.assert_array_equal(again.medians, coarse.medians)
    assert again.medians.dtype == np.uint8
    offsets = offsets_for(rng, coarse.n_lists)
    for query in sample[:10]:
        np.testing.assert_array_equal(again.probed_ranges(query, 5, 1, offsets),
                                      coarse.probed_ranges(query, 5, 1, offsets))  # fmt: skip
    older = {name: a for name, a in arrays.items() if name != "medians"}  # centroid-ranked
    assert len(CoarseQuantizer.from_arrays(older, sample.shape[1]).medians) == 0
    for bad in (coarse.medians[:-1], coarse.medians.astype(np.int64), np.full((40, 96), np.nan)):
        with pytest.raises(ValueError, match="'medians'"):
            CoarseQuantizer.from_arrays({**arrays, "medians": bad}, sample.shape[1])
