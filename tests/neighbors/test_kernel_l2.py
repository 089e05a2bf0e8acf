"""Squared-L2 kernels: every uint8 variant this CPU runs exactly equals NumPy; float32 ~ scipy."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from imgclf.neighbors.kernels import l2

VARIANTS = l2.supported_variants(np.uint8)
SENTINEL = -7


def run(name: str, queries, database, lo=0, hi=None, out=None) -> np.ndarray:
    """One uint8 block call of variant ``name``; returns the whole ``out`` buffer."""
    hi = len(database) if hi is None else hi
    if out is None:
        out = np.full((len(queries), hi - lo), SENTINEL, np.int32)
    l2.VARIANTS[name](queries, l2.prepare_u8(database, name), lo, hi, out)
    return out


def random_u8(seed, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_variants_listed():
    assert VARIANTS[-1] == "portable"
    assert l2.variant(np.uint8) == VARIANTS[0]
    assert l2.variant(np.float32) == "blas"
    assert set(VARIANTS) <= set(l2.VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize(
    ("m", "n", "d", "lo", "hi"),
    [
        (1, 1, 64, 0, 1),  # a single pair
        (1, 37, 128, 0, 37),  # one query
        (29, 1, 192, 0, 1),  # one database row
        (12, 128, 64, 0, 128),  # whole tiles only
        (13, 150, 320, 5, 131),  # ragged edges, lo > 0 inside a panel
        (7, 200, 64, 64, 129),  # lo on a panel boundary, hi one past it
        (67, 130, 3072, 61, 130),  # CIFAR width, hi at the end
        (263, 4166, 64, 33, 4166),  # more than QUERY_BLOCK x DATABASE_BLOCK, ragged
    ],
)
def test_random_matches_reference(name, m, n, d, lo, hi):
    queries, database = random_u8([m, n, d, 1], (m, d)), random_u8([m, n, d, 2], (n, d))
    got = run(name, queries, database, lo, hi)
    np.testing.assert_array_equal(got, l2.reference(queries, database)[:, lo:hi])


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("d", [64, 3072])
def test_zeros_and_maximum_distance(name, d):
    zeros, full = np.zeros((5, d), np.uint8), np.full((7, d), 255, np.uint8)
    assert (run(name, zeros, zeros) == 0).all()
    assert (run(name, zeros, full) == 255**2 * d).all()
    assert (run(name, full, zeros) == 255**2 * d).all()
    assert (run(name, full, full) == 0).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_largest_width_does_not_overflow(name):
    # 255² x 33,024 = 2,147,385,600: just below 2³¹, while the int32 partial
    # sums inside the kernels wrap around on the way.
    zeros, full = np.zeros((2, l2.MAX_D), np.uint8), np.full((3, l2.MAX_D), 255, np.uint8)
    assert (run(name, full, zeros) == 255**2 * l2.MAX_D).all()
    assert (run(name, zeros, full) == 255**2 * l2.MAX_D).all()
    mixed = random_u8(5, (4, l2.MAX_D))
    np.testing.assert_array_equal(run(name, mixed, full), l2.reference(mixed, full))


@pytest.mark.parametrize("name", VARIANTS)
def test_duplicates_are_at_distance_zero(name):
    queries = random_u8(3, (7, 256))
    database = np.concatenate([queries[::-1], queries, random_u8(4, (3, 256)), queries[:2]])
    got = run(name, queries, database)
    assert (got[np.arange(7), 6 - np.arange(7)] == 0).all()
    assert (got[np.arange(7), 7 + np.arange(7)] == 0).all()
    assert (got[:2, -2:][np.eye(2, dtype=bool)] == 0).all()
    np.testing.assert_array_equal(got, l2.reference(queries, database))


@pytest.mark.parametrize("name", VARIANTS)
def test_oversized_out_untouched_outside(name):
    queries, database = random_u8(6, (9, 128)), random_u8(7, (100, 128))
    out = np.full((20, 300), SENTINEL, np.int32)
    run(name, queries, database, 30, 97, out)
    np.testing.assert_array_equal(out[:9, :67], l2.reference(queries, database)[:, 30:97])
    outside = np.ones(out.shape, bool)
    outside[:9, :67] = False
    assert (out[outside] == SENTINEL).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_strided_inputs(name):
    # a non-contiguous query view and an out view with a row stride
    queries, database = random_u8(8, (20, 2 * 192)), random_u8(9, (50, 192))
    view = queries[::2, 192:]
    out = np.full((10, 80), SENTINEL, np.int32)
    run(name, view, database, 0, 50, out[:, 10:60])
    np.testing.assert_array_equal(out[:, 10:60], l2.reference(view, database))
    assert (out[:, :10] == SENTINEL).all() and (out[:, 60:] == SENTINEL).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_two_threads_at_once(name):
    queries, database = random_u8(10, (300, 3072)), random_u8(11, (500, 3072))
    prepared = l2.prepare_u8(database, name)
    outs = [np.empty((150, 500), np.int32) for _ in range(2)]

    def task(i: int) -> None:
        for _ in range(3):
            l2.VARIANTS[name](queries[150 * i : 150 * (i + 1)], prepared, 0, 500, outs[i])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(task, range(2)))
    np.testing.assert_array_equal(np.concatenate(outs), l2.reference(queries, database))


def test_block_u8_runs_the_prepared_variant():
    queries, database = random_u8(12, (5, 64)), random_u8(13, (9, 64))
    for name in VARIANTS:
        prepared = l2.prepare_u8(database, name)
        assert prepared.variant == name
        out = np.empty((5, 9), np.int32)
        l2.block_u8(queries, prepared, 0, 9, out)
        np.testing.assert_array_equal(out, l2.reference(queries, database))
    assert l2.prepare_u8(database).variant == l2.variant()


def test_bad_input_is_rejected():
    database = random_u8(14, (10, 64))
    with pytest.raises(ValueError, match="multiple of 64"):
        l2.prepare_u8(random_u8(0, (10, 100)))
    with pytest.raises(ValueError, match="overflow"):
        l2.prepare_u8(np.zeros((1, l2.MAX_D + 64), np.uint8))
    with pytest.raises(TypeError):
        l2.prepare_u8(database.astype(np.int16))
    prepared = l2.prepare_u8(database, "portable")
    out = np.empty((3, 10), np.int32)
    with pytest.raises(ValueError, match="packed for"):
        l2.VARIANTS["avx512vnni"](database[:3], prepared, 0, 10, out)  # portable layout
    with pytest.raises(ValueError, match="range"):
        l2.block_u8(database[:3], prepared, 5, 11, out)
    with pytest.raises(ValueError, match="out"):
        l2.block_u8(database[:3], prepared, 0, 10, np.empty((3, 9), np.int32))
    with pytest.raises(ValueError, match="queries"):
        l2.block_u8(random_u8(0, (3, 128)), prepared, 0, 10, out)


# --------------------------------------------------------------------------- float32


def random_f32(seed, shape) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 50).astype(np.float32)


@pytest.mark.parametrize(
    ("m", "n", "d", "lo", "hi"),
    [(1, 1, 3, 0, 1), (13, 150, 320, 5, 131), (67, 130, 3072, 61, 130)],
)
def test_float32_matches_cdist(m, n, d, lo, hi):
    queries, database = random_f32([m, d], (m, d)), random_f32([n, d], (n, d))
    out = np.full((m + 2, hi - lo + 3), SENTINEL, np.float32)
    l2.block_f32(queries, l2.prepare_f32(database), lo, hi, out)
    want = cdist(queries.astype(np.float64), database[lo:hi].astype(np.float64), "sqeuclidean")
    # ||q||² + ||x||² - 2 q.x loses digits to cancellation: error ~ eps (||q||² + ||x||²)
    scale = (
        np.einsum("ij,ij->i", queries, queries).max()
        + np.einsum("ij,ij->i", database, database).max()
    )
    np.testing.assert_allclose(out[:m, : hi - lo], want, rtol=1e-4, atol=1e-5 * scale)
    assert (out[m:] == SENTINEL).all() and (out[:, hi - lo :] == SENTINEL).all()
    np.testing.assert_allclose(l2.reference(queries, database)[:, lo:hi], want, rtol=1e-9)


def test_float32_identical_rows_clamped_at_zero():
    database = random_f32(1, (40, 3072))
    out = np.full((40, 40), SENTINEL, np.float32)
    l2.block_f32(database, l2.prepare_f32(database), 0, 40, out)
    # unclamped, about half of the diagonal comes out slightly negative (cancellation)
    assert (out >= 0).all()
    assert (np.diag(out) <= 1e-5 * np.einsum("ij,ij->i", database, database)).all()


def test_float32_bad_input_is_rejected():
    prepared = l2.prepare_f32(random_f32(2, (10, 8)))
    queries = random_f32(3, (4, 8))
    with pytest.raises(ValueError, match="range"):
        l2.block_f32(queries, prepared, 3, 11, np.empty((4, 8), np.float32))
    with pytest.raises(ValueError, match="out"):
        l2.block_f32(queries, prepared, 0, 10, np.empty((4, 10), np.float64))
    with pytest.raises(ValueError, match="out"):
        l2.block_f32(queries, prepared, 0, 10, np.empty((3, 10), np.float32))


def test_reference_types():
    zeros, full = np.zeros((1, 3072), np.uint8), np.full((2, 3072), 255, np.uint8)
    exact = l2.reference(zeros, full)
    assert exact.dtype == np.int64 and (exact == 255**2 * 3072).all()
    assert l2.reference(zeros.astype(np.float32), full.astype(np.float32)).dtype == np.float64


# --------------------------------------------------------------------------- dispatch


def variant_with(disabled: str) -> str:
    """``variant()`` in a fresh interpreter with ``IMGCLF_DISABLE_SIMD=disabled``."""
    code = (
        "import numpy as np\n"
        "from imgclf.neighbors.kernels import l2\n"
        "q = np.arange(64, dtype=np.uint8)[None]\n"
        "out = np.empty((1, 1), np.int32)\n"
        "l2.block_u8(q, l2.prepare_u8(q), 0, 1, out)\n"  # the chosen variant runs
        "assert out[0, 0] == 0\n"
        "print(l2.variant())\n"
    )
    env = {**os.environ, "IMGCLF_DISABLE_SIMD": disabled}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_disable_simd_all_gives_portable():
    assert variant_with("all") == "portable"


@pytest.mark.skipif("avx2" not in VARIANTS, reason="no AVX2 here")
def test_disable_vnni_falls_back_to_avx2():
    assert variant_with("avx512vnni") == "avx2"


def test_unsupported_variant_refuses_to_compile():
    code = (
        "import numpy as np, pytest\n"
        "from imgclf.neighbors.kernels import l2\n"
        "q = np.zeros((1, 64), np.uint8)\n"
        "p = l2.PreparedU8(q, q, np.zeros(64, np.int32), 'avx512vnni')\n"
        "with pytest.raises(RuntimeError):\n"
        "    l2.VARIANTS['avx512vnni'](q, p, 0, 1, np.empty((1, 1), np.int32))\n"
        "with pytest.raises(RuntimeError):\n"
        "    l2.prepare_u8(q, 'avx2')\n"
    )
    env = {**os.environ, "IMGCLF_DISABLE_SIMD": "all"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
