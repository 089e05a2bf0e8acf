"""Codes of principal components (an L2 IVF over float features): the codes against their
definition, the choice of how many directions, and the index that scans them."""

import pickle

import numpy as np
import pytest

from imgclf.neighbors.ivf import IVFIndex
from imgclf.neighbors.projected_codes import ProjectedCodes
from imgclf.neighbors.recall import recall
from imgclf.neighbors.scalar_codes import ScalarCodes
from tests.neighbors.test_scalar_codes import hog_like
from tests.neighbors.test_search import full_distances, reference_search


def low_rank(rng, n, d=200, rank=40, noise=0.01):
    """Rows near a ``rank``-dimensional subspace of ``d``: their neighbours are its."""
    basis = rng.standard_normal((rank, d)).astype(np.float32)
    latent = rng.standard_normal((n, rank)).astype(np.float32)
    return latent @ basis + noise * rng.standard_normal((n, d)).astype(np.float32)


# --- the codes ------------------------------------------------------------------------------


def test_the_codes_are_the_scalar_codes_of_the_projection():
    rng = np.random.default_rng(0)
    database = low_rank(rng, 600)
    codes = ProjectedCodes.fit(database, 48, seed=1)
    np.testing.assert_allclose(codes.components @ codes.components.T, np.eye(48), atol=1e-5)
    rows = np.concatenate([low_rank(rng, 40) * 2, database[:30]])  # some clipped
    np.testing.assert_array_equal(codes.encode(rows), codes.reference_encode(rows))
    order = rng.permutation(70)[:25]
    padded = codes.encode(rows, order=order, width=64)
    np.testing.assert_array_equal(padded[:, :48], codes.reference_encode(rows[order]))
    assert not padded[:, 48:].any() and codes.n_dims == 48


def test_projected_distances_never_exceed_the_true_ones_and_keep_nearly_all_here():
    rng = np.random.default_rng(1)
    database = low_rank(rng, 800)
    codes = ProjectedCodes.fit(database, 64, seed=0)
    projected = full_distances(codes.project(database[:50]), codes.project(database), "l2")
    true = full_distances(database[:50], database, "l2")
    assert (projected <= true + 1e-3).all()  # an orthonormal projection only shortens
    np.testing.assert_allclose(projected, true, atol=0.05 * true.max())  # rank 40 of 64


def test_saved_projections_round_trip_and_damaged_ones_are_named():
    codes = ProjectedCodes.fit(low_rank(np.random.default_rng(2), 300, d=40, rank=8), 8)
    arrays = codes.to_arrays()
    again = ProjectedCodes.from_arrays(arrays, 40)
    np.testing.assert_array_equal(again.components, codes.components)
    np.testing.assert_array_equal(again.scalar.low, codes.scalar.low)
    assert ProjectedCodes.from_arrays(codes.scalar.to_arrays(), 40) is None  # plain codes
    damaged = {
        "code_mean": {**arrays, "code_mean": arrays["code_mean"][:-1]},
        "code_components": {**arrays, "code_components": arrays["code_components"][:, :-1]},
        "c < 40": {**arrays, "code_components": np.ones((40, 40), np.float32)},
        "finite": {**arrays, "code_components": np.full((8, 40), np.nan, np.float32)},
        "code_low": {**arrays, "code_low": arrays["code_low"][:-1]},
        "must come with": {k: v for k, v in arrays.items() if k not in ("code_low", "code_step")},
    }
    for name, bad in damaged.items():
        with pytest.raises(ValueError, match=name):
            ProjectedCodes.from_arrays(bad, 40)


# --- how many directions ---------------------------------------------------------------------


def test_auto_keeps_the_directions_the_neighbours_differ_in():
    rng = np.random.default_rng(3)
    chosen = ProjectedCodes.fit_auto(low_rank(rng, 3000), seed=0)
    assert chosen is not None and chosen.n_dims == 64  # rank 40: the first whole chunk above
    # clustered rows keep most of their variance in a few directions, but their nearest
    # neighbours differ in the noise of all of them: no projection
    assert ProjectedCodes.fit_auto(hog_like(rng, 3000), seed=0) is None
    assert ProjectedCodes.fit_auto(low_rank(rng, 500), seed=0) is None  # too few to tell
    assert ProjectedCodes.fit_auto(low_rank(rng, 3000, d=30, rank=4), seed=0) is None  # narrow
    assert ProjectedCodes.fit_auto(low_rank(rng, 3000, d=60, rank=8), seed=0).n_dims == 32


def test_code_dims_picks_the_codes_and_is_checked():
    rng = np.random.default_rng(4)
    database = low_rank(rng, 2000)
    assert isinstance(IVFIndex(database, "l2", n_lists=20)._codes, ProjectedCodes)
    assert isinstance(IVFIndex(database, "l1", n_lists=20)._codes, ScalarCodes)
    assert isinstance(IVFIndex(database, "l2", n_lists=20, code_dims=None)._codes, ScalarCodes)
    assert IVFIndex(database, "l2", n_lists=20, code_dims=96)._codes.n_dims == 96
    assert isinstance(IVFIndex(database, "l2", n_lists=20, code_dims=200)._codes, ScalarCodes)
    with pytest.raises(ValueError, match="code_dims must be an integer >= 1, 'auto' or None"):
        IVFIndex(database, "l2", code_dims="all")
    with pytest.raises(ValueError, match="code_dims"):
        IVFIndex(database, "l2", code_dims=0)
    with pytest.raises(ValueError, match="metric='l2' only"):
        IVFIndex(database, "l1", n_lists=20, code_dims=64)


# --- the index that scans them ----------------------------------------------------------------


def test_an_index_of_projected_codes_finds_what_the_float_index_finds():
    rng = np.random.default_rng(5)
    database, queries = low_rank(rng, 4000), low_rank(rng, 150)
    truth = reference_search(queries, database, 10, "l2")[1]
    floats = IVFIndex(database, "l2", n_lists=40, n_probe=6, quantize=False)
    codes = IVFIndex(database, "l2", n_lists=40, n_probe=6, code_dims=64)
    assert codes._scan.database.shape == (4000, 64)  # 64 code bytes a row, not 224
    want = recall(floats.search(queries, 10)[1], truth, 10)
    assert recall(codes.search(queries, 10)[1], truth, 10) >= want - 0.01
    codes.n_probe = 40  # every list: only the projection and rounding can lose one
    assert recall(codes.search(queries, 10)[1], truth, 10) >= 0.99


def test_an_index_of_projected_codes_returns_true_distances_single_or_batched():
    rng = np.random.default_rng(6)
    database, queries = low_rank(rng, 2000), low_rank(rng, 20)
    index = IVFIndex(database, "l2", n_lists=20, n_probe=4, code_dims=64)
    dist, found = index.search(queries, 7)
    true = np.take_along_axis(full_distances(queries, database, "l2"), found, 1)
    np.testing.assert_allclose(dist, true, rtol=1e-6)
    for i in range(5):
        one = index.search(queries[i : i + 1], 7)
        np.testing.assert_array_equal(one[1][0], found[i])
        np.testing.assert_allclose(one[0][0], dist[i], rtol=1e-6)


def test_an_index_of_projected_codes_survives_its_arrays_and_pickle():
    rng = np.random.default_rng(7)
    database, queries = low_rank(rng, 1500), low_rank(rng, 30)
    index = IVFIndex(database, "l2", n_lists=15, n_probe=3, code_dims=64)
    arrays = index.to_arrays()
    assert {"code_mean", "code_components", "code_low", "code_step"} <= set(arrays)
    want = index.search(queries, 5)
    for again in (
        IVFIndex.from_arrays(database, arrays, "l2", n_probe=3),
        pickle.loads(pickle.dumps(index)),
    ):
        assert isinstance(again._codes, ProjectedCodes)
        for got, expected in zip(again.search(queries, 5), want, strict=True):
            np.testing.assert_array_equal(got, expected)
    pixels = rng.integers(0, 256, database.shape, dtype=np.uint8)
    with pytest.raises(ValueError, match="are for float features"):
        IVFIndex.from_arrays(pixels, arrays, "l2")
