"""The cascade of lower bounds against plain NumPy, on random and adversarial data.

Every search must return exactly what a full distance matrix and a stable sort
give: the same distances, the same rows, ties to the lower index (or id).
"""

import numba
import numpy as np
import pytest

from imgclf.neighbors import ExactIndex
from imgclf.neighbors.kernels import l1, l2
from imgclf.neighbors.kernels.rows import (
    _distance,
    _dots8,
    _dots8_loop,
    _sad_loop,
    _sad_row,
    _sad_rows4,
    _squared_distance,
)
from imgclf.neighbors.kernels.topk import reference_topk
from imgclf.neighbors.pruning import CASCADE_MIN_ROWS, GROUP, LowerBoundPruner
from imgclf.neighbors.pruning.bounds import _second_bound, _summarise, _thresholds
from imgclf.neighbors.pruning.stages import _CHUNK, _at_most, _chunk_minima, _first_pass
from imgclf.neighbors.pruning.summaries import _pair_up, _paired_codes

METRICS = ["l1", "l2"]
N = CASCADE_MIN_ROWS + 76  # big enough for the cascade, small enough to be quick


def distances(query, database, metric):
    """Exact int64 L1 or squared L2 from one query to every row."""
    return (l1 if metric == "l1" else l2).reference(query[None], database)[0]


def reference(query, database, k, metric, ranges=None, ids=None):
    """The k nearest by the full distance row and a stable sort (ties to the lower id)."""
    dist = distances(query, database, metric)
    if ranges is None and ids is None:
        best_dist, best = reference_topk(dist[None], k)
        return best_dist[0], best[0]
    rows = np.arange(len(database))
    if ranges is not None:
        rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    ids = np.arange(len(database)) if ids is None else ids
    order = np.lexsort((ids[rows], dist[rows]))[:k]
    return dist[rows][order], ids[rows][order]


def smooth(rng, n, d):
    """Correlated pixels, like photos (where the bounds prune most rows)."""
    coarse = rng.integers(0, 256, size=(n, max(1, d // 16))).astype(np.float64)
    noise = rng.normal(0, 8, size=(n, d))
    return np.clip(np.repeat(coarse, 16, axis=1)[:, :d] + noise, 0, 255).astype(np.uint8)


def make(kind, rng, n, d):
    if kind == "smooth":
        return smooth(rng, n, d)
    if kind == "random":
        return rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    if kind == "ties":  # few values: many equal distances
        return rng.integers(0, 3, size=(n, d), dtype=np.uint8)
    if kind == "duplicates":  # every row 7 times, shuffled
        base = smooth(rng, -(-n // 7), d)
        return base[rng.permutation(np.arange(n) % len(base))]
    if kind == "constant":
        return np.full((n, d), 77, np.uint8)
    if kind == "extremes":
        return (rng.integers(0, 2, size=(n, d)) * 255).astype(np.uint8)
    raise ValueError(kind)


def queries(rng, database):
    """A database row (distance 0, ties among duplicates), a near one, a far one, extremes."""
    near = np.clip(database[3].astype(int) + rng.integers(-3, 4, database.shape[1]), 0, 255)
    d = database.shape[1]
    return [
        database[3],
        near.astype(np.uint8),
        rng.integers(0, 256, d, dtype=np.uint8),
        np.zeros(d, np.uint8),
        np.full(d, 255, np.uint8),
    ]


def assert_exact(pruner, query, database, k, metric, **restrict):
    dist, found = pruner.search(query, k, **restrict)
    ref_dist, ref_found = reference(query, database, k, metric, **restrict)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(dist, ref_dist)
    assert dist.dtype == found.dtype == np.int64


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["smooth", "random", "ties", "duplicates", "constant", "extremes"])
def test_matches_reference(metric, kind):
    rng = np.random.default_rng(len(kind))
    database = make(kind, rng, N, 64)
    pruner = LowerBoundPruner(database, metric)
    assert pruner.cascade
    for query in queries(rng, database):
        for k in (1, 10, 37):
            assert_exact(pruner, query, database, k, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_k_equal_to_the_number_of_rows(metric):
    rng = np.random.default_rng(1)
    database = make("ties", rng, N, 32)
    pruner = LowerBoundPruner(database, metric)
    for query in queries(rng, database)[:2]:
        assert_exact(pruner, query, database, N, metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", [16, 3072])
def test_narrow_and_wide_rows(metric, d):
    rng = np.random.default_rng(d)
    database = smooth(rng, N, d)
    database[100:104] = database[3]
    pruner = LowerBoundPruner(database, metric)
    assert pruner.cascade == (metric == "l2" or d >= 2 * GROUP)  # L1 needs 2 groups to merge
    for query in queries(rng, database):
        for k in (1, 10):
            assert_exact(pruner, query, database, k, metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["smooth", "ties"])
def test_ranges_and_ids(metric, kind):
    rng = np.random.default_rng(5)
    database = make(kind, rng, N, 64)
    ids = rng.permutation(N) * 3 + 1000  # ties now go to the lower id, not the lower row
    pruner = LowerBoundPruner(database, metric)
    ranges = np.array([[700, 950], [10, 200], [200, 260], [1000, N]], np.int64)
    for query in queries(rng, database):
        for k in (1, 10, 50):
            assert_exact(pruner, query, database, k, metric, ranges=ranges)
            assert_exact(pruner, query, database, k, metric, ids=ids)
            assert_exact(pruner, query, database, k, metric, ranges=ranges, ids=ids)
    assert_exact(pruner, database[3], database, 1, metric, ranges=[[3, 4]])
    assert_exact(pruner, database[3], database, 5, metric, ranges=[[0, 5], [9, 9]])
    rows = np.sort(rng.choice(N, 300, replace=False))  # scattered rows, as an inverted file
    scattered = np.stack([rows, rows + 1], axis=1)  # probes them: no first stage
    for query in queries(rng, database):
        assert_exact(pruner, query, database, 10, metric, ranges=scattered, ids=ids)
    wide = ids.astype(np.int64) + 2**40  # ids past int32 stay int64 (row positions are int32)
    for query in queries(rng, database)[:3]:
        assert_exact(pruner, query, database, 10, metric, ranges=ranges, ids=wide)


def test_row_positions_are_int32_and_an_order_is_checked_before_the_cast():
    database = smooth(np.random.default_rng(6), 300, 64)
    order = np.random.default_rng(7).permutation(300).astype(np.int32)
    pruner = LowerBoundPruner(database, "l2", order=order)
    assert (
        pruner.rowmap is order
        and pruner.nbytes == LowerBoundPruner(database, "l2").nbytes - order.nbytes
    )
    assert LowerBoundPruner(database, "l1").rowmap.dtype == np.int32
    wraps = order.astype(np.int64)
    wraps[0] += 2**32  # as int32 it would be a valid row again
    with pytest.raises(ValueError, match="order must hold 300 database rows"):
        LowerBoundPruner(database, "l2", order=wraps)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["smooth", "ties", "extremes"])
def test_the_second_stage_alone_is_exact(metric, kind):
    """Without the first stage (an inverted file's pruner): every candidate gets the second
    bound; the answers are the reference's, over runs of rows (lists), scattered rows, all
    rows, with ids, and through search_ranges; and it holds less than both stages."""
    rng = np.random.default_rng(len(kind) + 40)
    database = make(kind, rng, N, 64)
    ids = rng.permutation(N) * 3 + 1000
    pruner = LowerBoundPruner(database, metric, first_stage=False, second_dims=8)
    assert pruner.cascade and pruner.coded and not pruner.first_stage
    assert pruner.nbytes < LowerBoundPruner(database, metric, second_dims=8).nbytes
    lists = np.array([[700, 756], [10, 60], [200, 260], [1000, 1040], [1060, N]], np.int64)
    rows = np.sort(rng.choice(N, 300, replace=False))
    scattered = np.stack([rows, rows + 1], axis=1)
    for query in queries(rng, database):
        for k in (1, 10, 37):
            assert_exact(pruner, query, database, k, metric)
            assert_exact(pruner, query, database, k, metric, ranges=lists, ids=ids)
        assert_exact(pruner, query, database, 10, metric, ranges=scattered)
        dist, found = pruner.search_ranges(query, 10, lists)
        ref_dist, ref_found = reference(query, database, 10, metric, ranges=lists)
        np.testing.assert_array_equal(found, ref_found)
        np.testing.assert_array_equal(dist, ref_dist)


@pytest.mark.parametrize("metric", METRICS)
def test_threads_share_the_work(metric):
    rng = np.random.default_rng(7)
    database = make("duplicates", rng, 9000, 32)
    ids = rng.permutation(9000)
    for n_jobs in (2, 3):
        pruner = LowerBoundPruner(database, metric, n_jobs)
        for query in queries(rng, database)[:3]:
            assert_exact(pruner, query, database, 10, metric)
            assert_exact(pruner, query, database, 25, metric, ids=ids)
            assert_exact(pruner, query, database, 9, metric, ranges=[[8000, 9000], [0, 4000]])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["smooth", "ties"])
def test_single_stage_and_small_databases(metric, kind):
    rng = np.random.default_rng(11)
    database = make(kind, rng, N, 64)
    single = LowerBoundPruner(database, metric, cascade=False)
    small = LowerBoundPruner(database[:300], metric)
    assert not single.cascade and not small.cascade
    for query in queries(rng, database):
        for k in (1, 10):
            assert_exact(single, query, database, k, metric)
            assert_exact(small, query, database[:300], k, metric)


@numba.njit
def _both_sads(q, x):
    """Every row's ``_sad_row`` (vpsadbw where the CPU has AVX2), ``_sad_loop`` and
    ``_sad_rows4`` (rows in fours, the last repeated)."""
    out = np.empty((3, x.shape[0]), np.int64)
    last = x.shape[0] - 1
    for row in range(x.shape[0]):
        out[0, row] = _sad_row(q, 0, x, row)
        out[1, row] = _sad_loop(q, 0, x, row)
        out[2, row] = _sad_rows4(q, 0, x, min(row + 3, last), row, last, 0)[1]
    return out


@pytest.mark.parametrize("d", [32, 64, 96, 40])  # 40: not whole 32-byte chunks, plain loop
def test_l1_by_psadbw_and_by_plain_loops_agree(d):
    rng = np.random.default_rng(13)
    x = make("extremes", rng, 50, d)
    q = rng.integers(0, 256, size=(1, d), dtype=np.uint8)
    simd, plain, fours = _both_sads(q, x)
    np.testing.assert_array_equal(simd, plain)
    np.testing.assert_array_equal(fours, plain)
    np.testing.assert_array_equal(plain, distances(q[0], x, "l1"))


@numba.njit
def _both_squared(q, x):
    """Every row's ``_squared_distance`` (vpmaddwd where the CPU has AVX2) and ``_distance``."""
    out = np.empty((2, x.shape[0]), np.int64)
    for row in range(x.shape[0]):
        out[0, row] = _squared_distance(x, row, q)
        out[1, row] = _distance(x, row, q)
    return out


@pytest.mark.parametrize("d", [16, 48, 3072, 1 << 16])  # 2^16: the cascade's widest (int32 lanes)
@pytest.mark.parametrize("kind", ["random", "extremes"])
def test_l2_by_vpmaddwd_and_by_plain_loops_agree(d, kind):
    rng = np.random.default_rng(19)
    x = make(kind, rng, 20, d)
    x[0], x[1] = 255, 0  # against an all-0 / all-255 query: the largest distance there is
    q = rng.integers(0, 256, size=(1, d), dtype=np.uint8)
    for query in (q, np.zeros_like(q), np.full_like(q, 255)):
        simd, plain = _both_squared(query, x)
        np.testing.assert_array_equal(simd, plain)
        np.testing.assert_array_equal(plain, distances(query[0], x, "l2"))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["smooth", "random", "ties", "extremes"])
@pytest.mark.parametrize("second_stage", [True, False])
def test_no_stage_prunes_a_row_that_ties_the_threshold(metric, kind, second_stage):
    """Each row's bounds pass the thresholds set by its own true distance (what pruning needs)."""
    rng = np.random.default_rng(17)
    database = make(kind, rng, N, 96)
    pruner = LowerBoundPruner(database, metric, second_stage=second_stage)
    (_, _, sums, residual, first, norms1, groups, axes, mean, labels, consts, codes,
     codes2) = pruner._arrays  # fmt: skip
    squared, coded = metric == "l2", pruner.coded
    assert coded == second_stage
    for query in queries(rng, database):
        q = query[None]
        qsums, qres, qfirst, qcodes, slack, step, q2, slack2, step2 = _summarise(
            q, groups, axes, mean, labels, consts, codes, codes2, squared, True, coded
        )
        bounds = np.empty(N, np.float32)
        scales = codes[1].astype(np.float32)
        _first_pass(first, norms1, qfirst, qcodes, scales, consts, pruner._all, squared, bounds,
                    np.empty(9, np.int64))  # fmt: skip
        setting = (squared, True, coded, GROUP, slack, (qres + consts[2]) ** 2, step, slack2, step2)
        for row, dist in enumerate(distances(query, database, metric)):
            first_limit, second_limit = _thresholds(dist, setting)
            assert bounds[row] <= first_limit
            if second_stage:
                bound = _second_bound(sums, residual, row, qsums, qres, q2, qcodes, squared, coded)
                assert bound <= second_limit


@pytest.mark.parametrize("room", [0, 3, 100])
def test_chunk_minima_are_the_first_least_of_each_chunk(room):
    """Every chunk of _CHUNK rows (a range's last chunk shorter) gives the row of its least
    bound, the first of equal ones, in range order, as many as ``minima`` holds."""
    rng = np.random.default_rng(29)
    ranges = np.array([[5000, 5600], [0, 256], [300, 301], [700, 1300], [2000, 2010]])
    n = int((ranges[:, 1] - ranges[:, 0]).sum())
    bounds = rng.integers(-5, 20, n).astype(np.float32)  # many ties, some below 0
    bounds[-13:] = np.inf  # the last range all infinite, and the end of the one before
    want, p = [], 0
    for lo, hi in ranges:
        for start in range(lo, hi, _CHUNK):
            size = min(_CHUNK, hi - start)
            want.append(start + int(np.argmin(bounds[p : p + size])))
            p += size
    minima = np.full(room, -1, np.int64)
    count = _chunk_minima(bounds, ranges, minima)
    assert count == min(room, len(want))
    np.testing.assert_array_equal(minima[:count], want[:count])


def test_learned_groups_partition_the_features():
    rng = np.random.default_rng(19)
    sample = smooth(rng, 256, 96)
    labels = _pair_up(sample, 6)
    assert sorted(np.bincount(labels)) == [16] * 6  # full rounds: equal groups
    coarse = _pair_up(rng.random((50, 12)), 5)  # 12 -> 6 (a full round) -> 5 (one merge)
    assert sorted(np.bincount(coarse)) == [2, 2, 2, 2, 4]


@pytest.mark.parametrize("metric", METRICS)
def test_exact_index_routes_single_queries_here(metric):
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE, prunes

    rng = np.random.default_rng(23)
    database = smooth(rng, PRUNE_MIN_DATABASE + 500, 48)  # padded to 64 by the engine
    database[50:60] = database[7]
    index = ExactIndex(database, metric)
    for query in [database[7], *queries(rng, database)[1:3]]:
        assert prunes(index.database, 1, 10)
        dist, found = index.search(query[None], 10)
        ref_dist, ref_found = reference(query, database, 10, metric)
        np.testing.assert_array_equal(found[0], ref_found)
        np.testing.assert_array_equal(dist[0], np.sqrt(ref_dist) if metric == "l2" else ref_dist)
    assert index._pruner is not None and index._pruner.cascade


def test_bad_arguments_are_refused():
    database = make("random", np.random.default_rng(0), 40, 32)
    pruner = LowerBoundPruner(database, "l1")
    query = database[0]
    with pytest.raises(ValueError, match="k must be"):
        pruner.search(query, 41)
    with pytest.raises(ValueError, match="k must be"):
        pruner.search(query, 6, ranges=[[0, 5]])
    with pytest.raises(ValueError, match="features"):
        pruner.search(query[:16], 1)
    with pytest.raises(ValueError, match="ids"):
        pruner.search(query, 1, ids=np.arange(39))
    for ranges in ([[5, 3]], [[-1, 3]], [[0, 41]], [[0, 10], [5, 20]]):
        with pytest.raises(ValueError, match="ranges"):
            pruner.search(query, 1, ranges=ranges)


def test_stage_counts_add_up():
    rng = np.random.default_rng(29)
    database = smooth(rng, 5000, 64)
    for metric in METRICS:
        counts = LowerBoundPruner(database, metric).stage_counts(database[9], 10)
        assert counts["rows"] == 5000
        assert counts["rows"] >= counts["first"] >= counts["second"] >= 10
        # measured: the 16 seeds, then the rows past both stages that could still beat the k-th
        assert 16 <= counts["exact"] <= counts["second"] + 16
        assert counts["exact"] < counts["rows"] // 20  # smooth data: most rows pruned


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("first_stage", [True, False])
def test_no_row_is_measured_twice(metric, first_stage):
    """Equal rows pass every bound, so every row is measured: the seeds, which are
    candidates again, only once (before, 16 of them twice)."""
    database = np.full((5000, 64), 7, np.uint8)
    pruner = LowerBoundPruner(database, metric, first_stage=first_stage)
    counts = pruner.stage_counts(database[0], 10)
    assert counts["second"] == counts["exact"] == counts["rows"] == 5000


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(("second_stage", "second_dims"), [(True, 24), (True, 4), (False, 24)])
def test_summaries_kept_in_another_order(metric, second_stage, second_dims):
    """``order`` (an inverted file's list order): ranges are positions, results database rows."""
    rng = np.random.default_rng(31)
    database = make("smooth", rng, N, 64)
    database[500:505] = database[3]  # ties, to the lower database row
    order = rng.permutation(N)
    pruner = LowerBoundPruner(
        database, metric, second_stage=second_stage, second_dims=second_dims, order=order
    )
    assert pruner.coded == second_stage
    if second_stage:  # L1: 4 groups of 16 features or 8 of 8; L2: 3 or 4 axes (d / 16) + rho
        expected = {"l1": min(second_dims, 8), "l2": min(second_dims - 1, 4) + 1}[metric]
        assert pruner.summary.shape[1] == expected
    ranges = np.array([[0, 300], [500, 900], [1000, N]], np.int64)
    for query in queries(rng, database):
        dist, found = pruner.search(query, 10, ranges=ranges)
        ref_dist, ref_found = reference(query, database[order], 10, metric, ranges, ids=order)
        np.testing.assert_array_equal(found, ref_found)
        np.testing.assert_array_equal(dist, ref_dist)
        assert_exact(pruner, query, database, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_memory_of_the_stages(metric):
    database = smooth(np.random.default_rng(37), 4000, 256)
    full = LowerBoundPruner(database, metric)
    first_only = LowerBoundPruner(database, metric, second_stage=False, order=np.arange(4000))
    assert 0 < first_only.nbytes < full.nbytes < 0.3 * database.nbytes
    # codes (L2: and norms, and c_x), not the order (it is not its own)
    assert first_only.nbytes < 0.13 * database.nbytes
    with pytest.raises(ValueError, match="order"):
        LowerBoundPruner(database, metric, order=np.arange(3999))


def test_the_search_kernel_is_cached_on_disk():
    """A fresh process loads the compiled cascade from numba's cache instead of compiling it
    (a closure over another jitted function once made every single-image predict compile)."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from imgclf.neighbors.pruning import LowerBoundPruner\n"
        "from imgclf.neighbors.pruning.cascade import _search_part\n"
        "x = np.random.default_rng(0).integers(0, 256, (2000, 64), dtype=np.uint8)\n"
        "for metric in ('l1', 'l2'):\n"
        "    LowerBoundPruner(x, metric).search(x[0], 5)\n"
        "print(sum(_search_part.stats.cache_misses.values()))\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    assert runs[1].stdout.strip() == "0"  # the second process compiled nothing


@numba.njit
def _both_dots(pairs, lo, n8, weights):
    """``_dots8`` (vpmaddwd where the CPU has AVX2) and ``_dots8_loop``, ``8 n8`` rows."""
    fast = np.zeros(8 * n8 + 16, np.int32)
    plain = np.zeros(8 * n8, np.int32)
    _dots8(pairs, lo, n8, weights, fast)
    _dots8_loop(pairs, lo, n8, weights, plain)
    return fast[: 8 * n8], plain


@pytest.mark.parametrize(("m", "lo", "n8"), [(32, 0, 4), (31, 5, 3), (3, 17, 1), (32, 0, 0)])
def test_l2_first_stage_dots_by_vpmaddwd_and_by_plain_loops_agree(m, lo, n8):
    rng = np.random.default_rng(m + lo)
    first = rng.integers(-126, 127, size=(m, 60), dtype=np.int8)
    scales = rng.random(m).astype(np.float32)
    pairs, norms1 = _paired_codes(first, scales)
    w = rng.integers(-32000, 32001, size=2 * len(pairs))
    w[m:] = 0  # (a missing last axis)
    weights = ((w[1::2] << 16) | (w[0::2] & 0xFFFF)).astype(np.int64).astype(np.int32)
    fast, plain = _both_dots(pairs, lo, n8, weights)
    rows = first[:, lo : lo + 8 * n8].astype(np.int64)
    np.testing.assert_array_equal(plain, w[:m] @ rows)
    np.testing.assert_array_equal(fast, plain)
    expected = ((first.astype(np.float64) * scales.astype(np.float64)[:, None]) ** 2).sum(0)
    np.testing.assert_allclose(norms1, expected, rtol=1e-6)


def test_l2_first_stage_row_norms_summed_in_blocks_equal_the_whole(monkeypatch):
    from imgclf.neighbors.pruning import summaries

    rng = np.random.default_rng(9)
    first = rng.integers(-126, 127, size=(31, 50), dtype=np.int8)
    scales = rng.random(31).astype(np.float32)
    pairs, whole = _paired_codes(first, scales)
    monkeypatch.setattr(summaries, "_C_X_BLOCK", 7)  # blocks that do not divide the rows
    blocked_pairs, blocked = _paired_codes(first, scales)
    np.testing.assert_array_equal(blocked, whole)
    np.testing.assert_array_equal(blocked_pairs, pairs)
    expected = ((first.astype(np.float64) * scales.astype(np.float64)[:, None]) ** 2).sum(0)
    np.testing.assert_allclose(blocked, expected, rtol=1e-6)


@pytest.mark.parametrize("share", [0.0, 0.03, 0.5, 1.0, np.inf])
@pytest.mark.parametrize(
    "lengths", [[50_000], [7, 16, 33, 0, 1, 2048, 2049, 95], [4100, 5000]], ids=str
)
def test_rows_at_most_a_limit_equal_a_numpy_mask(share, lengths):
    """Blocks of sixteen, ranges of any length (segments, tails, empty), runs of passing
    rows and scattered ones, results that outgrow their first room, bounds equal to
    the limit, infinite bounds (the class cascade's rows of classes not wanted) and an
    infinite limit: the rows and bounds a mask gives, in range order."""
    rng = np.random.default_rng(len(lengths))
    starts = np.cumsum([0, *(length + 3 for length in lengths)])[:-1]  # gaps between ranges
    ranges = np.stack([starts, starts + lengths], axis=1).astype(np.int64)
    rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    bounds = rng.random(len(rows)).astype(np.float32)
    bounds[rng.random(len(rows)) < 0.05] = np.inf  # rows of classes not wanted
    bounds[rng.random(len(rows)) < 0.1] = np.float32(share)  # ties with the limit
    bounds[len(rows) // 3 : len(rows) // 3 + 300] = 0.0  # a run that passes
    passing, kept, passed = _at_most(bounds, ranges, np.float32(share))
    mask = bounds <= np.float32(share)
    np.testing.assert_array_equal(passing[:passed], rows[mask])
    np.testing.assert_array_equal(kept[:passed], bounds[mask].astype(np.float64))
