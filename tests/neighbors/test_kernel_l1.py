"""L1 kernels: every variant this CPU runs, for uint8 and float32, against NumPy."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from imgclf.neighbors.kernels import l1

CASES = [("uint8", name) for name in l1.supported_variants()] + [("float32", "portable")]
IDS = [f"{dtype}-{name}" for dtype, name in CASES]
SENTINEL = -7


def make(dtype: str, rng, shape) -> np.ndarray:
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return (rng.standard_normal(shape) * 50).astype(np.float32)


def run(dtype: str, name: str, queries, database, lo=0, hi=None, out=None) -> np.ndarray:
    """One block call of variant ``name``; returns the whole ``out`` buffer."""
    hi = len(database) if hi is None else hi
    out_dtype = np.int32 if dtype == "uint8" else np.float32
    if out is None:
        out = np.full((len(queries), hi - lo), SENTINEL, out_dtype)
    if dtype == "uint8":
        l1.VARIANTS[name](queries, l1.prepare_u8(database), lo, hi, out)
    else:
        l1.block_f32(queries, l1.prepare_f32(database), lo, hi, out)
    return out


def expected(queries, database, lo=0, hi=None) -> np.ndarray:
    return l1.reference(queries, database)[:, lo:hi]


def check(dtype: str, got, want) -> None:
    if dtype == "uint8":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
@pytest.mark.parametrize(
    ("m", "n", "d", "lo", "hi"),
    [
        (1, 1, 64, 0, 1),  # a single pair
        (1, 37, 128, 0, 37),  # one query
        (29, 1, 192, 0, 1),  # one database row
        (8, 16, 256, 0, 16),  # whole tiles only
        (13, 23, 320, 5, 22),  # ragged edges, lo > 0
        (67, 130, 3072, 61, 130),  # CIFAR width, hi at the end
    ],
)
def test_random_matches_reference(dtype, name, m, n, d, lo, hi):
    rng = np.random.default_rng([m, n, d])
    queries, database = make(dtype, rng, (m, d)), make(dtype, rng, (n, d))
    check(dtype, run(dtype, name, queries, database, lo, hi), expected(queries, database, lo, hi))


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
def test_zeros_and_maximum_distance(dtype, name):
    d = 3072
    zeros, full = np.zeros((5, d), dtype), np.full((6, d), 255, dtype)
    assert (run(dtype, name, zeros, zeros) == 0).all()
    # every byte differs by 255: the largest distance, 783,360 for CIFAR
    assert (run(dtype, name, zeros, full) == 255 * d).all()
    assert (run(dtype, name, full, zeros) == 255 * d).all()


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
def test_duplicates_are_at_distance_zero(dtype, name):
    rng = np.random.default_rng(3)
    queries = make(dtype, rng, (7, 256))
    database = np.concatenate([queries[::-1], queries, make(dtype, rng, (3, 256)), queries[:2]])
    got = run(dtype, name, queries, database)
    check(dtype, got, expected(queries, database))
    assert (got[np.arange(7), 6 - np.arange(7)] == 0).all()
    assert (got[np.arange(7), 7 + np.arange(7)] == 0).all()


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
def test_oversized_out_keeps_its_other_cells(dtype, name):
    rng = np.random.default_rng(4)
    queries, database = make(dtype, rng, (10, 128)), make(dtype, rng, (40, 128))
    out = np.full((16, 32), SENTINEL, np.int32 if dtype == "uint8" else np.float32)
    run(dtype, name, queries, database, 11, 29, out)
    check(dtype, out[:10, :18], expected(queries, database, 11, 29))
    assert (out[10:] == SENTINEL).all()
    assert (out[:, 18:] == SENTINEL).all()


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
def test_strided_out_view(dtype, name):
    """``out`` may be a view whose row stride is not its width."""
    rng = np.random.default_rng(5)
    queries, database = make(dtype, rng, (9, 64)), make(dtype, rng, (14, 64))
    big = np.full((12, 40), SENTINEL, np.int32 if dtype == "uint8" else np.float32)
    run(dtype, name, queries, database, 0, 14, big[2:, 3:20])
    check(dtype, big[2:11, 3:17], expected(queries, database))
    untouched = np.ones(big.shape, bool)
    untouched[2:11, 3:17] = False
    assert (big[untouched] == SENTINEL).all()


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
def test_read_only_inputs(dtype, name):
    """Databases may be read-only (memory-mapped caches): no kernel writes to its inputs."""
    rng = np.random.default_rng(11)
    queries, database = make(dtype, rng, (6, 128)), make(dtype, rng, (9, 128))
    want = expected(queries, database)
    queries.setflags(write=False)
    database.setflags(write=False)
    check(dtype, run(dtype, name, queries, database), want)


@pytest.mark.parametrize(("dtype", "name"), CASES, ids=IDS)
def test_two_threads_at_once(dtype, name):
    """Blocks released from the GIL on two threads give the single-thread answer."""
    rng = np.random.default_rng(6)
    queries, database = make(dtype, rng, (64, 512)), make(dtype, rng, (300, 512))
    want = expected(queries, database)
    outs = [None, None]

    def work(i):
        outs[i] = run(dtype, name, queries[32 * i : 32 * (i + 1)], database)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(dtype, np.concatenate(outs), want)


def test_float32_matches_scipy():
    cdist = pytest.importorskip("scipy.spatial.distance").cdist
    rng = np.random.default_rng(7)
    queries, database = make("float32", rng, (21, 384)), make("float32", rng, (45, 384))
    want = cdist(queries.astype(np.float64), database.astype(np.float64), "cityblock")
    np.testing.assert_allclose(run("float32", "portable", queries, database), want, rtol=1e-5)


def test_float32_pixels_are_exact():
    """Integer-valued float32 pixels: every partial sum is an exact integer below 2**24."""
    rng = np.random.default_rng(8)
    queries, database = make("uint8", rng, (11, 3072)), make("uint8", rng, (17, 3072))
    got = run("float32", "portable", queries.astype(np.float32), database.astype(np.float32))
    np.testing.assert_array_equal(got, l1.reference(queries, database))


def test_reference_dtypes_and_chunks(monkeypatch):
    rng = np.random.default_rng(9)
    queries, database = make("uint8", rng, (9, 64)), make("uint8", rng, (11, 64))
    naive = np.abs(queries[:, None].astype(np.int64) - database[None]).sum(-1)
    assert l1.reference(queries, database).dtype == np.int64
    assert l1.reference(queries.astype(np.float32), database).dtype == np.float64
    monkeypatch.setattr(l1, "_REFERENCE_CELLS", 200)  # chunks of 1 x 1 rows
    np.testing.assert_array_equal(l1.reference(queries, database), naive)


def test_block_and_prepare_dispatch_on_dtype():
    rng = np.random.default_rng(10)
    queries, database = make("uint8", rng, (3, 64)), make("uint8", rng, (5, 64))
    for dtype, out_dtype in ((np.uint8, np.int32), (np.float32, np.float32)):
        prepared = l1.prepare(database.astype(dtype))
        out = np.empty((3, 5), out_dtype)
        l1.block(queries.astype(dtype), prepared, 0, 5, out)
        np.testing.assert_array_equal(out, l1.reference(queries, database))
    with pytest.raises(TypeError):
        l1.prepare(database.astype(np.int16))


def test_bad_calls_raise():
    x = np.zeros((8, 64), np.uint8)
    prepared = l1.prepare_u8(x)
    out = np.zeros((8, 8), np.int32)
    with pytest.raises(ValueError, match="multiple of 64"):
        l1.prepare_u8(np.zeros((8, 65), np.uint8))
    with pytest.raises(TypeError):
        l1.prepare_u8(x.astype(np.float32))
    with pytest.raises(TypeError):
        l1.block_u8(x.astype(np.int8), prepared, 0, 8, out)
    with pytest.raises(ValueError, match="features"):
        l1.block_u8(np.zeros((8, 128), np.uint8), prepared, 0, 8, out)
    with pytest.raises(ValueError, match="outside"):
        l1.block_u8(x, prepared, 4, 9, out)
    with pytest.raises(ValueError, match="smaller"):
        l1.block_u8(x, prepared, 0, 8, out[:, :7])
    with pytest.raises(TypeError):
        l1.block_u8(x, prepared, 0, 8, out.astype(np.int64))


def test_empty_blocks_touch_nothing():
    x = np.ones((8, 64), np.uint8)
    out = np.full((4, 4), SENTINEL, np.int32)
    l1.block_u8(x[:0], l1.prepare_u8(x), 0, 4, out)
    l1.block_u8(x[:4], l1.prepare_u8(x), 3, 3, out)
    assert (out == SENTINEL).all()


def test_unsupported_variant_refuses_to_run(monkeypatch):
    """Without the CPU feature, a SIMD variant raises instead of crashing LLVM."""
    monkeypatch.setattr(l1._cpu, "has", lambda *names: not names)
    assert l1.supported_variants() == ["portable"]
    assert l1.variant() == "portable"
    x = np.zeros((4, 64), np.uint8)
    for name in ("avx512bw", "avx2"):
        with pytest.raises(RuntimeError, match="cannot run"):
            l1.VARIANTS[name](x, l1.prepare_u8(x), 0, 4, np.zeros((4, 4), np.int32))


def test_variant_names():
    assert l1.variant() in ("avx512bw", "avx2", "portable")
    assert l1.supported_variants()[-1] == "portable"
    assert l1.variant(np.float32) == "portable"
    assert set(l1.VARIANTS) == {"avx512bw", "avx2", "portable"}


@pytest.mark.parametrize(
    ("disabled", "allowed"),
    [("all", {"portable"}), ("avx512bw", {"avx2", "portable"})],
)
def test_disable_simd_env(disabled, allowed):
    code = "from imgclf.neighbors.kernels import l1; print(l1.variant())"
    env = {**os.environ, "IMGCLF_DISABLE_SIMD": disabled}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() in allowed
