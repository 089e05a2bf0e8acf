"""Float features scanned as uint8 codes: the codes against their definition, the
re-ranking kernel against NumPy, and a quantized IVF against the float one."""

import pickle

import numpy as np
import pytest

from imgclf.neighbors.ivf import IVFIndex, _CodeLists
from imgclf.neighbors.kernels import l2
from imgclf.neighbors.kernels.candidates import (
    best_candidates,
    reference_best_candidates,
    reference_candidate_distances,
)
from imgclf.neighbors.recall import recall
from imgclf.neighbors.scalar_codes import ScalarCodes
from tests.neighbors.test_search import full_distances, reference_search

METRICS = ["l1", "l2"]


def hog_like(rng, n, d=60, centres=15):
    """Continuous features in [0, 1] around a few centres, columns of different ranges:
    codes round them (unlike multiples of 1/7, which a step can hit exactly)."""
    base = rng.uniform(0, 1, (centres, d))
    rows = base[rng.integers(0, centres, n)] + rng.normal(0, 0.08, (n, d))
    return (np.clip(rows, 0, 1) * np.linspace(0.3, 1, d)).astype(np.float32)


# --- the codes ------------------------------------------------------------------------------


def test_codes_keep_distances_up_to_one_step_a_feature():
    rng = np.random.default_rng(0)
    database, queries = hog_like(rng, 500), hog_like(rng, 20)
    codes = ScalarCodes.fit(database)
    assert codes.step == pytest.approx((database.max(0) - database.min(0)).max() / 255)
    x, q = codes.encode(database).astype(np.float64), codes.encode(queries).astype(np.float64)
    coded = np.abs(q[:, None] - x[None]).sum(-1) * codes.step
    true = full_distances(queries, database, "l1")
    assert np.abs(coded - true).max() <= codes.step * database.shape[1]
    assert np.corrcoef(coded.ravel(), true.ravel())[0, 1] > 0.999


def test_the_compiled_encoding_is_numpys():
    rng = np.random.default_rng(8)
    database = hog_like(rng, 400)
    codes = ScalarCodes.fit(database)
    rows = np.concatenate([hog_like(rng, 300) * 1.5 - 0.2, database[:50]])  # some clipped
    rows[:20, :4] = codes.low[:4] + codes.step * np.float32(2.5)  # halves: to even
    np.testing.assert_array_equal(codes.encode(rows), codes.reference_encode(rows))
    order = rng.permutation(350)[:77]
    padded = codes.encode(rows, order=order, width=64)
    np.testing.assert_array_equal(padded[:, :60], codes.reference_encode(rows[order]))
    assert not padded[:, 60:].any()


def test_encoding_clips_values_outside_the_database_range_and_takes_an_order():
    database = np.array([[0.0, 10.0], [2.0, 12.0]], np.float32)
    codes = ScalarCodes.fit(database)
    np.testing.assert_array_equal(codes.encode(np.array([[-5, 99]], np.float32)), [[0, 255]])
    reordered = codes.encode(database, order=np.array([1, 0]))
    np.testing.assert_array_equal(reordered, [[255, 255], [0, 0]])
    constant = ScalarCodes.fit(np.ones((3, 2), np.float32))
    assert constant.step == 1 and (constant.encode(np.ones((1, 2), np.float32)) == 0).all()


def test_saved_codes_round_trip_and_damaged_ones_are_named():
    codes = ScalarCodes.fit(hog_like(np.random.default_rng(1), 50, d=8))
    again = ScalarCodes.from_arrays(codes.to_arrays(), 8)
    np.testing.assert_array_equal(again.low, codes.low)
    assert again.step == codes.step
    assert ScalarCodes.from_arrays({}, 8) is None
    arrays = codes.to_arrays()
    damaged = {
        "code_low": {**arrays, "code_low": arrays["code_low"][:-1]},
        "code_step": {**arrays, "code_step": np.array([1.0, 2.0], np.float32)},
        "finite": {**arrays, "code_low": np.full(8, np.nan, np.float32)},
        "step > 0": {**arrays, "code_step": np.array(-1.0, np.float32)},
    }
    for name, bad in damaged.items():
        with pytest.raises(ValueError, match=name):
            ScalarCodes.from_arrays(bad, 8)
    with pytest.raises(ValueError, match="code_step"):
        ScalarCodes.from_arrays({"code_low": arrays["code_low"]}, 8)


# --- re-ranking ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_every_candidate_distance_matches_numpy(metric, dtype):
    rng = np.random.default_rng(2)
    database = rng.integers(0, 256, (200, 37)).astype(dtype)
    queries = rng.integers(0, 256, (9, 37)).astype(dtype)
    candidates = rng.integers(-1, 200, (9, 13))
    dist, rows = best_candidates(database, queries, candidates, 13, metric)  # all kept
    want = reference_candidate_distances(database, queries, candidates, metric)
    np.testing.assert_allclose(dist, np.sort(want, axis=1), rtol=1e-12)
    assert (np.isinf(dist) == (rows < 0)).all() and (rows < 0).sum() == (candidates < 0).sum()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("k", [1, 4, 13, 20])
def test_best_candidates_match_numpy(metric, dtype, k):
    rng = np.random.default_rng(k)
    database = rng.integers(0, 4, (50, 3)).astype(dtype)  # few values: many equal distances
    queries = rng.integers(0, 4, (30, 3)).astype(dtype)
    candidates = np.stack([rng.permutation(51)[:13] - 1 for _ in range(30)])  # -1: empty
    got = best_candidates(database, queries, candidates, k, metric, n_jobs=2)
    want = reference_best_candidates(database, queries, candidates, k, metric)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    assert got[0].shape == (30, min(k, 13))


def test_best_candidates_break_ties_by_row_and_put_empty_slots_last():
    database = np.zeros((6, 4), np.float32)
    database[4] = 1  # farther than the rest
    candidates = np.array([[-1, 5, 4, 3, -1, 0]])
    dist, rows = best_candidates(database, database[:1], candidates, 5, "l2")
    np.testing.assert_array_equal(rows, [[0, 3, 5, 4, -1]])
    np.testing.assert_allclose(dist, [[0, 0, 0, 2, np.inf]])


# --- a quantized IVF --------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_a_quantized_index_finds_what_the_float_index_finds(metric):
    rng = np.random.default_rng(3)
    database, queries = hog_like(rng, 3000), hog_like(rng, 200)
    truth = reference_search(queries, database, 10, metric)[1]
    floats = IVFIndex(database, metric, n_lists=30, n_probe=4, quantize=False)
    codes = IVFIndex(database, metric, n_lists=30, n_probe=4)
    assert codes._scan is not None and floats._scan is None
    assert (
        recall(codes.search(queries, 10)[1], truth, 10)
        >= recall(floats.search(queries, 10)[1], truth, 10) - 0.01
    )
    codes.n_probe = 30  # every list: only the rounding can lose a neighbour
    assert recall(codes.search(queries, 10)[1], truth, 10) >= 0.99


@pytest.mark.parametrize("metric", METRICS)
def test_a_quantized_index_returns_true_distances_single_or_batched(metric):
    rng = np.random.default_rng(4)
    database, queries = hog_like(rng, 2000), hog_like(rng, 30)
    index = IVFIndex(database, metric, n_lists=20, n_probe=3)
    dist, found = index.search(queries, 7)
    true = np.take_along_axis(full_distances(queries, database, metric), found, 1)
    np.testing.assert_allclose(dist, true, rtol=1e-9)
    assert (np.diff(dist, axis=1) >= 0).all() and dist.dtype == np.float64
    for i in range(5):  # one query: the codes of its lists in one pass, the same answer
        one = index.search(queries[i : i + 1], 7)
        np.testing.assert_array_equal(one[1][0], found[i])
        np.testing.assert_allclose(one[0][0], dist[i], rtol=1e-12)


def test_the_code_lists_start_on_kernel_panels():
    rng = np.random.default_rng(5)
    index = IVFIndex(hog_like(rng, 1500), "l2", n_lists=17)
    scan = index._scan
    assert isinstance(scan, _CodeLists) and scan.database.dtype == np.uint8
    # 60 features in whole 32-byte chunks for the SIMD row kernels: zeros add nothing
    assert scan.database.shape == (1500, 64) and not scan.database[:, 60:].any()
    np.testing.assert_array_equal(
        scan.database[:, :60], index._codes.encode(index.database, order=index.ids)
    )
    assert (scan._starts % l2.panel_rows() == 0).all()
    placed = scan._batch_ids[scan._batch_ids >= 0]
    np.testing.assert_array_equal(np.sort(placed), np.arange(1500))  # every row once
    counts = np.diff(index.offsets)
    for lst in range(index.n_lists):  # each list's rows at its start, in list order
        start = scan._starts[lst]
        np.testing.assert_array_equal(
            scan._batch_ids[start : start + counts[lst]],
            np.arange(index.offsets[lst], index.offsets[lst + 1]),
        )


@pytest.mark.parametrize("metric", METRICS)
def test_a_quantized_index_survives_its_arrays_and_pickle(metric):
    rng = np.random.default_rng(6)
    database, queries = hog_like(rng, 1500), hog_like(rng, 40)
    index = IVFIndex(database, metric, n_lists=15, n_probe=3)
    arrays = index.to_arrays()
    assert {"code_low", "code_step"} <= set(arrays)
    want = index.search(queries, 5)
    for again in (
        IVFIndex.from_arrays(database, arrays, metric, n_probe=3),
        pickle.loads(pickle.dumps(index)),
    ):
        assert again._scan is not None
        for got, expected in zip(again.search(queries, 5), want, strict=True):
            np.testing.assert_array_equal(got, expected)
    unquantized = IVFIndex(database, metric, n_lists=15, quantize=False).to_arrays()
    assert "code_low" not in unquantized
    # arrays saved before the codes (or without them) scan the floats, as then
    older = IVFIndex.from_arrays(database, unquantized, metric, n_probe=3)
    assert older._scan is None and older.search(queries, 5)[1].shape == (40, 5)


def test_quantize_is_checked_and_uint8_features_are_never_coded():
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    assert IVFIndex(pixels, n_lists=5, quantize=True)._scan is None
    with pytest.raises(TypeError, match="quantize must be True, False or None"):
        IVFIndex(hog_like(rng, 300), n_lists=5, quantize="yes")
    arrays = IVFIndex(hog_like(rng, 300), n_lists=5).to_arrays()
    with pytest.raises(ValueError, match="code_low"):
        IVFIndex.from_arrays(pixels, {**IVFIndex(pixels, n_lists=5).to_arrays(),
                                      "code_low": arrays["code_low"][:16],
                                      "code_step": arrays["code_step"]})  # fmt: skip


def test_a_quantized_index_holds_less_than_its_floats():
    index = IVFIndex(hog_like(np.random.default_rng(8), 4000, d=128), n_lists=30)
    database = index.database
    # codes in list order (single queries) and the kernel's copy of them (batches)
    assert index.make_batch_copy().nbytes < 0.75 * database.nbytes
    index.release_batch_copy()
    assert index.nbytes < 0.4 * database.nbytes
