"""The approximate backends (faiss factories, hnswlib) against a plain NumPy reference.

Every backend must keep ExactIndex's contract: true distances (float64), ascending,
ties to the lower index; generous settings must find (nearly) the exact neighbours;
settings changed after the build must take effect; builds must be reproducible;
saved arrays must load to the same searches, and damaged ones must be refused
without ever crashing this process.
"""

import pickle
import struct
import sys
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from imgclf.errors import ModelFileError
from imgclf.neighbors import ExactIndex, hnsw_backend
from imgclf.neighbors import _index_bytes as shared
from imgclf.neighbors.faiss_backend import FaissIndex
from imgclf.neighbors.hnsw_backend import HnswIndex
from imgclf.neighbors.kernels.topk import reference_topk

N, D, M_QUERIES, K = 3000, 64, 100, 10
SCIPY_METRIC = {"l1": "cityblock", "l2": "euclidean"}


def needs(module: str):
    extra = {"faiss": "faiss", "hnswlib": "hnsw"}[module]
    pytest.importorskip(module, reason=f"the {extra} extra is not installed")


def make(backend: str, database, metric="l2", **settings):
    """FaissIndex or HnswIndex, skipping when its library is missing."""
    needs("faiss" if backend == "faiss" else "hnswlib")
    cls = FaissIndex if backend == "faiss" else HnswIndex
    settings.setdefault("n_jobs", 1)
    with warnings.catch_warnings():  # faiss warns when k-means has few points per list
        warnings.simplefilter("ignore")
        return cls(database, metric, **settings)


def load(index, arrays=None, trusted=False, **overrides):
    """``from_arrays`` of ``index``'s own arrays and settings."""
    settings = {**index.settings, **overrides}
    return type(index).from_arrays(
        index.database,
        index.to_arrays() if arrays is None else arrays,
        index.metric,
        n_jobs=1,
        trusted=trusted,
        **settings,
    )


def reference(queries, database, k, metric):
    """Full float64 distance matrix, stable sort: ties to the lower index."""
    full = cdist(
        np.asarray(queries, np.float64), np.asarray(database, np.float64), SCIPY_METRIC[metric]
    )
    return reference_topk(full, k)


def recall(found, exact) -> float:
    return np.mean(
        [len(np.intersect1d(a, b)) / exact.shape[1] for a, b in zip(found, exact, strict=True)]
    )


def assert_contract(index, queries, k=K):
    """Shapes and dtypes, ascending distances that are the true ones, ties to lower index."""
    dist, idx = index.search(queries, k)
    assert dist.dtype == np.float64 and idx.dtype == np.int64
    assert dist.shape == idx.shape == (len(queries), k)
    assert ((idx >= 0) & (idx < len(index))).all()
    assert all(len(set(row)) == k for row in idx)  # no row twice
    rows = np.asarray(index.database, np.float64)[idx]
    diff = rows - np.asarray(queries, np.float64)[:, None, :]
    true = np.sqrt((diff**2).sum(-1)) if index.metric == "l2" else np.abs(diff).sum(-1)
    np.testing.assert_allclose(dist, true, rtol=1e-12)
    step = np.diff(dist, axis=1)
    assert (step >= 0).all()
    assert (np.diff(idx, axis=1)[step == 0] > 0).all()  # equal distances: lower index first
    return dist, idx


@pytest.fixture(scope="module")
def data():
    """Clustered float32 points (like image features) and queries near them."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, D)) * 3
    database = (centres[rng.integers(0, 30, N)] + rng.standard_normal((N, D))).astype(np.float32)
    queries = (
        centres[rng.integers(0, 30, M_QUERIES)] + rng.standard_normal((M_QUERIES, D))
    ).astype(np.float32)
    return database, queries


@pytest.fixture(scope="module")
def exact(data):
    database, queries = data
    return {metric: reference(queries, database, K, metric) for metric in ("l1", "l2")}


# --- exact at generous settings --------------------------------------------------------

EXACT_CONFIGS = [
    ("faiss", "l2", {"factory": "Flat"}),
    ("faiss", "l1", {"factory": "Flat"}),
    ("faiss", "l2", {"factory": "IVF32,Flat", "n_probe": 32}),
    ("faiss", "l1", {"factory": "IVF32,Flat", "n_probe": 32}),
]


@pytest.mark.parametrize(("backend", "metric", "settings"), EXACT_CONFIGS)
def test_exhaustive_settings_give_the_exact_answer(data, exact, backend, metric, settings):
    database, queries = data
    index = make(backend, database, metric, **settings)
    dist, idx = assert_contract(index, queries)
    ref_dist, ref_idx = exact[metric]
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)


HNSW_CONFIGS = [
    ("hnsw", "l2", {"ef_search": 200}),
    ("faiss", "l2", {"factory": "HNSW32", "ef_search": 200}),
    ("faiss", "l1", {"factory": "HNSW32", "ef_search": 200}),
]


@pytest.mark.parametrize(("backend", "metric", "settings"), HNSW_CONFIGS)
def test_hnsw_with_a_wide_search_finds_nearly_all(data, exact, backend, metric, settings):
    database, queries = data
    index = make(backend, database, metric, **settings)
    _, idx = assert_contract(index, queries)
    assert recall(idx, exact[metric][1]) >= 0.99


def test_product_quantization_is_reranked_to_true_distances(data, exact):
    database, queries = data
    index = make("faiss", database, factory="IVF16,PQ8", n_probe=16)
    assert index.rerank_factor is None and index._lossy  # 4 * k candidates
    _, idx = assert_contract(index, queries)
    index.rerank_factor = 1  # PQ's own order
    _, pq_order = assert_contract(index, queries)
    assert recall(idx, exact["l2"][1]) >= 0.8 > recall(pq_order, exact["l2"][1]) + 0.1


def test_queries_with_fewer_candidates_than_k_are_answered_exactly(data):
    """IVF64 on 3,000 rows has lists of ~47; k=200 from one list must fall back to exact."""
    database, queries = data
    index = make("faiss", database, factory="IVF64,Flat", n_probe=1)
    dist, idx = assert_contract(index, queries[:20], k=200)
    ref_dist, ref_idx = reference(queries[:20], database, 200, "l2")
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize(
    ("backend", "metric", "settings"),
    [
        ("faiss", "l2", {"factory": "Flat"}),
        ("faiss", "l1", {"factory": "IVF8,Flat", "n_probe": 8}),
        ("faiss", "l1", {"factory": "HNSW16", "ef_search": 100}),
        ("hnsw", "l2", {"ef_search": 100}),
    ],
)
def test_ties_go_to_the_lower_index(backend, metric, settings):
    """uint8 rows repeated many times: every distance ties; the lower rows must win."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(12, 32), dtype=np.uint8)
    database = np.tile(base, (25, 1))  # 300 rows, each of 12 patterns 25 times
    queries = base[:5] + rng.integers(0, 2, size=(5, 32), dtype=np.uint8)
    index = make(backend, database, metric, **settings)
    assert index.database.dtype == np.uint8  # kept as uint8 for re-ranking
    dist, idx = assert_contract(index, queries, k=30)
    ref_dist, ref_idx = reference(queries, database, 30, metric)
    np.testing.assert_array_equal(dist, ref_dist)  # integers: exact
    if backend == "faiss" and settings["factory"] != "HNSW16":
        np.testing.assert_array_equal(idx, ref_idx)


def test_uint8_database_takes_byte_valued_float_queries(data):
    rng = np.random.default_rng(2)
    database = rng.integers(0, 256, size=(500, 48), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(7, 48)).astype(np.float64)
    index = make("faiss", database, factory="Flat")
    np.testing.assert_array_equal(
        index.search(queries, 5)[1], ExactIndex(database).search(queries, 5)[1]
    )
    with pytest.raises(ValueError, match="non-integer or out-of-range"):
        index.search(queries + 0.5, 5)


# --- settings after the build ----------------------------------------------------------


def test_n_probe_takes_effect_after_the_build(data, exact):
    database, queries = data
    index = make("faiss", database, factory="IVF32,Flat")
    assert index.nlist == 32 and index.n_probe == 1  # faiss's default
    recalls = []
    for n_probe in (1, 4, 32):
        index.n_probe = n_probe
        assert index.n_probe == n_probe
        recalls.append(recall(index.search(queries, K)[1], exact["l2"][1]))
    assert recalls[0] < recalls[1] <= recalls[2] == 1.0
    with pytest.warns(UserWarning, match="n_probe=100 is more than the 32 lists"):
        index.n_probe = 100
    assert index.n_probe == 32
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"n_probe must be >= 1; got {bad}"):
            index.n_probe = bad
    with pytest.raises(ValueError, match="n_probe must be an integer; got 2.5"):
        index.n_probe = 2.5


@pytest.mark.parametrize(
    ("backend", "settings"), [("hnsw", {"M": 8}), ("faiss", {"factory": "HNSW8"})]
)
def test_ef_search_takes_effect_after_the_build(data, exact, backend, settings):
    database, queries = data
    index = make(backend, database, **settings)
    index.rerank_factor = 1  # the graph's own breadth decides
    index.ef_search = 1
    low = recall(index.search(queries, K)[1], exact["l2"][1])
    index.ef_search = 200
    assert index.ef_search == 200
    high = recall(index.search(queries, K)[1], exact["l2"][1])
    assert low < high and high >= 0.99
    with pytest.raises(ValueError, match="ef_search must be >= 1; got 0"):
        index.ef_search = 0


def test_settings_that_do_not_apply_are_errors(data):
    database, _ = data
    with pytest.raises(ValueError, match="n_probe applies to IVF factories only; factory 'HNSW8'"):
        make("faiss", database[:500], factory="HNSW8", n_probe=4)
    with pytest.raises(ValueError, match="ef_search applies to HNSW factories only.*'IVF8,Flat'"):
        make("faiss", database[:500], factory="IVF8,Flat", ef_search=4)
    flat = make("faiss", database[:500])
    assert flat.n_probe is None and flat.ef_search is None and flat.nlist is None


# --- determinism ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "settings"),
    [("faiss", {"factory": "IVF16,PQ4"}), ("faiss", {"factory": "HNSW16"}), ("hnsw", {"M": 8})],
)
def test_a_seed_and_one_thread_give_the_same_build(data, backend, settings):
    database, queries = data
    database = database[:1500]
    first, second, other = (
        make(backend, database, seed=seed, n_jobs=1, **settings) for seed in (7, 7, 8)
    )
    key = "faiss_index" if backend == "faiss" else "hnsw_index"
    np.testing.assert_array_equal(first.to_arrays()[key], second.to_arrays()[key])
    np.testing.assert_array_equal(first.search(queries, K)[1], second.search(queries, K)[1])
    if settings != {"factory": "HNSW16"}:  # faiss's HNSW has no seed to set
        assert not np.array_equal(first.to_arrays()[key], other.to_arrays()[key])


# --- saving and loading -----------------------------------------------------------------

ROUND_TRIP = [
    ("faiss", "l2", {"factory": "IVF16,Flat", "n_probe": 3}),
    ("faiss", "l1", {"factory": "HNSW16", "ef_search": 20}),
    ("faiss", "l2", {"factory": "IVF8,PQ8", "n_probe": 2}),
    ("hnsw", "l2", {"M": 8, "ef_search": 15}),
]


@pytest.mark.parametrize(("backend", "metric", "settings"), ROUND_TRIP)
@pytest.mark.parametrize("trusted", [False, True])
def test_arrays_round_trip_to_the_same_searches(data, backend, metric, settings, trusted):
    database, queries = data
    index = make(backend, database[:1500], metric, **settings)
    arrays = index.to_arrays()
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    loaded = load(index, trusted=trusted)
    assert loaded.settings == index.settings
    for ours, theirs in zip(index.search(queries, K), loaded.search(queries, K), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # without any settings the saved n_probe / ef_search come back too
    bare = type(index).from_arrays(
        index.database, arrays, metric, trusted=True, **settings_needed(backend, settings)
    )
    np.testing.assert_array_equal(bare.search(queries, K)[1], index.search(queries, K)[1])


def settings_needed(backend, settings):
    return {"factory": settings["factory"]} if backend == "faiss" else {}


@pytest.mark.parametrize(
    ("backend", "settings"), [("faiss", {"factory": "IVF8,Flat"}), ("hnsw", {"M": 8})]
)
def test_pickling_goes_through_the_arrays(data, backend, settings):
    database, queries = data
    index = make(backend, database[:800], **settings)
    copy = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(copy.search(queries, 5)[1], index.search(queries, 5)[1])


def damaged_copies(data: np.ndarray, seed: int = 0):
    """Truncations and seeded bit flips, in the header and anywhere."""
    rng = np.random.default_rng(seed)
    for cut in (40, len(data) - 1):
        yield f"truncated to {cut}", data[:cut].copy()
    for case in range(3):
        bad = data.copy()
        span = 200 if case % 2 else len(bad)
        where = rng.integers(0, span, 3)
        bad[where] ^= (1 << rng.integers(0, 8, 3)).astype(np.uint8)
        yield f"bits flipped at {where.tolist()}", bad


@pytest.mark.parametrize(
    ("backend", "settings"),
    [("faiss", {"factory": "IVF8,Flat"}), ("hnsw", {"M": 8})],
)
def test_damaged_bytes_are_refused_without_crashing(data, backend, settings):
    database, queries = data
    index = make(backend, database[:600], **settings)
    key = "faiss_index" if backend == "faiss" else "hnsw_index"
    arrays = index.to_arrays()
    for what, bad in damaged_copies(arrays[key]):
        try:
            loaded = load(index, {**arrays, key: bad})
        except ValueError as exc:
            assert isinstance(exc, ModelFileError), what
            assert "index bytes are damaged" in str(exc) or "do not match" in str(exc), what
            continue
        assert not what.startswith("truncated"), what
        assert_contract(loaded, queries[:5])  # a flip in the vectors or lists: still safe
    with pytest.raises(ModelFileError, match="end too soon"):
        load(index, {**arrays, key: arrays[key][:-1]}, trusted=True)


def test_a_crashing_hnsw_file_only_crashes_the_child(data, monkeypatch):
    """An entry point outside the graph makes hnswlib read wild memory (SIGSEGV here).

    The NumPy layout check catches it first; without that check the child process does.
    """
    needs("hnswlib")
    database, _ = data
    index = make("hnsw", database[:500], M=8)
    arrays = index.to_arrays()
    bad = arrays["hnsw_index"].copy()
    entry = struct.calcsize("<QQQQQQi")
    bad[entry : entry + 4] = np.frombuffer(struct.pack("<I", 2**30), np.uint8)
    with pytest.raises(ModelFileError, match="entry point 1073741824"):
        load(index, {**arrays, "hnsw_index": bad})
    monkeypatch.setattr(hnsw_backend, "_check_file", lambda data, database: None)
    with pytest.raises(ModelFileError, match=r"hnswlib index bytes are damaged: .*crashed"):
        load(index, {**arrays, "hnsw_index": bad})


@pytest.mark.skipif(sys.platform != "linux", reason="the memory cap reads /proc/self/status")
def test_the_child_check_reports_crashes_memory_and_time():
    payload = np.zeros(1000, np.uint8)
    run = shared.check_in_child
    with pytest.raises(ModelFileError, match=r"x are damaged: .*crashed \(SIG"):
        run(payload, "import ctypes", "ctypes.string_at(0)", [], what="x")
    with pytest.raises(ModelFileError, match="x are damaged: loading them asks for more memory"):
        run(payload, "", "b = bytearray(8 << 30)", [], what="x")
    with pytest.raises(ModelFileError, match="took over 1 s"):
        run(payload, "import time", "time.sleep(30)", [], what="x", timeout=1)
    with pytest.raises(ModelFileError, match="x are damaged: wrong size 1000"):
        run(payload, "", "sys.exit(f'wrong size {len(payload)}')", [], what="x")
    run(payload, "", "assert sys.argv[1:] == ['3', 'a']", [3, "a"], what="x")


@pytest.mark.parametrize(
    ("backend", "settings"), [("faiss", {"factory": "IVF8,Flat"}), ("hnsw", {"M": 8})]
)
def test_arrays_of_another_database_or_shape_are_refused(data, backend, settings):
    database, _ = data
    index = make(backend, database[:600], **settings)
    arrays = index.to_arrays()
    key = next(iter(arrays))
    cls = type(index)
    need = settings_needed(backend, settings)
    with pytest.raises(ModelFileError, match="do not match: they hold 600 vectors"):
        cls.from_arrays(database[:599], arrays, trusted=True, **need)
    with pytest.raises(ModelFileError, match=f"must hold '{key}'"):
        cls.from_arrays(database[:600], {"other": arrays[key]}, **need)
    with pytest.raises(ModelFileError, match="must be a 1-D uint8 array; got float32"):
        cls.from_arrays(database[:600], {**arrays, key: arrays[key].astype(np.float32)}, **need)
    if backend == "hnsw":  # hnswlib keeps the vectors: another database is seen
        with pytest.raises(ModelFileError, match="not the database's rows"):
            cls.from_arrays(database[600:1200], arrays)
        with pytest.raises(ModelFileError, match="the graph has M=8, not M=16"):
            cls.from_arrays(database[:600], arrays, M=16)
    else:
        with pytest.raises(ModelFileError, match=r"factory 'HNSW8' builds IndexHNSWFlat"):
            cls.from_arrays(database[:600], arrays, factory="HNSW8")
        with pytest.raises(ModelFileError, match="their metric is 'l2', not 'l1'"):
            cls.from_arrays(database[:600], arrays, "l1", factory="IVF8,Flat")


# --- errors a user can make -------------------------------------------------------------


def test_faiss_refusals_say_what_imgclf_was_doing(data):
    database, _ = data
    with pytest.raises(ValueError, match=r"building faiss index 'Foo' on 100 rows: .*parse"):
        make("faiss", database[:100], factory="Foo")
    with pytest.raises(ValueError, match="'IVF99999,Flat' has 99999 inverted lists.* has 100"):
        make("faiss", database[:100], factory="IVF99999,Flat")
    with pytest.raises(ValueError, match=r"needs at least 1024 database rows.*has 500.*IVF22"):
        make("faiss", database[:500], factory="IVF1024,Flat")
    with pytest.raises(
        ValueError,
        match=r"building faiss index 'IVF4,PQ8' on 100 rows: Number of training points \(100\)",
    ):
        make("faiss", database[:100], factory="IVF4,PQ8")
    with pytest.raises(ValueError, match="factory must be a faiss index_factory string"):
        make("faiss", database[:100], factory=32)


@pytest.mark.parametrize("factory", ["IVF8,PQ8", "PQ8", "IVF8,SQ8", "LSH", "IVF8_HNSW8,Flat"])
def test_l1_where_faiss_cannot_names_where_it_can(data, factory):
    with pytest.raises(ValueError, match=r"metric='l1' is not supported by faiss factory") as err:
        make("faiss", data[0][:500], "l1", factory=factory)
    for algorithm in ("'exact'", "'ivf'", "'Flat'", "'IVF<nlist>,Flat'", "'HNSW<M>'"):
        assert algorithm in str(err.value)


def test_hnswlib_has_no_l1(data):
    with pytest.raises(ValueError, match=r"metric='l1' is not supported by hnswlib.*'exact'"):
        make("hnsw", data[0][:100], "l1")
    with pytest.raises(ValueError, match="metric must be one of 'l1', 'l2'; got 'cosine'"):
        make("hnsw", data[0][:100], "cosine")


@pytest.mark.parametrize(
    ("backend", "settings"), [("faiss", {"factory": "HNSW8"}), ("hnsw", {"M": 8})]
)
def test_bad_queries_and_settings(data, backend, settings):
    database, queries = data
    index = make(backend, database[:300], **settings)
    with pytest.raises(ValueError, match="queries have 63 features but the database has 64"):
        index.search(queries[:, :63], 3)
    with pytest.raises(ValueError, match="k must be <= 300; got 301"):
        index.search(queries, 301)
    with pytest.raises(ValueError, match="k must be >= 1; got 0"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="queries contains NaN"):
        index.search(np.full((1, D), np.nan), 3)
    with pytest.raises(ValueError, match="seed must be >= 0; got -1"):
        make(backend, database[:300], seed=-1, **settings)
    with pytest.raises(ValueError, match="rerank_factor must be >= 1; got 0"):
        make(backend, database[:300], rerank_factor=0, **settings)
    with pytest.raises(ValueError, match="trusted must be True or False; got 'yes'"):
        load(index, trusted="yes")
