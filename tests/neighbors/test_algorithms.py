"""KNNClassifier(algorithm=...): each index behind the estimator, and model files that
keep the built index (no second build at load, bytes checked unless signed)."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgclf import io
from imgclf.datasets import load_digits
from imgclf.neighbors import KNNClassifier, algorithms
from imgclf.neighbors import ivf as ivf_module
from imgclf.neighbors.faiss_backend import faiss_available
from imgclf.neighbors.hnsw_backend import hnswlib_available

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss extra not installed")
needs_hnswlib = pytest.mark.skipif(not hnswlib_available(), reason="hnsw extra not installed")

APPROXIMATE = [
    pytest.param("ivf", {"n_lists": 20, "n_probe": 4}, id="ivf"),
    pytest.param("faiss:IVF20,Flat", {"n_probe": 4}, id="faiss-ivf", marks=needs_faiss),
    pytest.param("faiss:HNSW16", {"ef_search": 64}, id="faiss-hnsw", marks=needs_faiss),
    pytest.param("hnsw", {"ef_search": 64}, id="hnsw", marks=needs_hnswlib),
]


@pytest.fixture(scope="module")
def digits():
    splits = load_digits()
    return splits["train"], splits["test"]


@parametrize_with_checks([KNNClassifier(algorithm="ivf", n_lists=2, n_probe=2)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(("algorithm", "settings"), APPROXIMATE)
def test_approximate_classifiers_predict_nearly_as_exact(digits, algorithm, settings):
    train, test = digits
    exact = KNNClassifier(k=5).fit(train.X, train.labels).predict(test.X)
    approx = KNNClassifier(k=5, algorithm=algorithm, **settings).fit(train.X, train.labels)
    assert np.mean(approx.predict(test.X) == exact) > 0.95
    dist, found = approx.kneighbors(test.X[:20])
    true = np.abs(test.X[:20, None, :].astype(int) - train.X[found].astype(int)) ** 2
    np.testing.assert_allclose(dist, np.sqrt(true.sum(axis=2)))


def test_ivf_probing_every_list_predicts_as_exact(digits):
    train, test = digits
    exact = KNNClassifier(k=3, metric="l1").fit(train.X, train.labels)
    ivf = KNNClassifier(k=3, metric="l1", algorithm="ivf", n_lists=15, n_probe=15)
    ivf.fit(train.X, train.labels)
    np.testing.assert_array_equal(ivf.predict(test.X), exact.predict(test.X))
    np.testing.assert_array_equal(ivf.rank_classes(test.X, 5), exact.rank_classes(test.X, 5))


def save(model, path, **kwargs):
    return io.save(model, path, model_type="knn", image_shape=(8, 8, 1), **kwargs)


@pytest.mark.parametrize(("algorithm", "settings"), APPROXIMATE)
def test_model_files_keep_the_built_index(digits, tmp_path, algorithm, settings):
    train, test = digits
    model = KNNClassifier(k=3, algorithm=algorithm, **settings).fit(train.X, train.labels)
    path = save(model, tmp_path / "model.imgclf")
    with np.load(path) as archive:
        saved = [name for name in archive.files if "/_index_" in name]
    assert saved, "the index's arrays are in the file"
    loaded = io.load(path).model
    assert type(loaded._index) is type(model._index)
    np.testing.assert_array_equal(loaded.kneighbors(test.X)[1], model.kneighbors(test.X)[1])


def test_loading_an_ivf_model_does_not_train_again(digits, tmp_path, monkeypatch):
    train, test = digits
    model = KNNClassifier(algorithm="ivf", n_lists=12, n_probe=3).fit(train.X, train.labels)
    path = save(model, tmp_path / "model.imgclf")

    def no_training(*args, **kwargs):
        raise AssertionError("k-means ran while loading")

    monkeypatch.setattr(ivf_module, "kmeans", no_training)
    loaded = io.load(path).model
    np.testing.assert_array_equal(loaded.predict(test.X), model.predict(test.X))
    assert loaded._index.n_probe == 3


@needs_faiss
def test_faiss_bytes_are_checked_in_a_child_unless_the_file_is_signed(
    digits, tmp_path, monkeypatch
):
    from imgclf.neighbors import faiss_backend

    train, _ = digits
    model = KNNClassifier(algorithm="faiss:IVF8,Flat").fit(train.X, train.labels)
    key = b"k" * 32
    unsigned = save(model, tmp_path / "unsigned.imgclf")
    signed = save(model, tmp_path / "signed.imgclf", key=key)
    checked = []
    real = faiss_backend.check_in_child
    monkeypatch.setattr(
        faiss_backend, "check_in_child", lambda *a, **k: checked.append(1) or real(*a, **k)
    )
    io.load(unsigned)
    assert checked == [1]
    io.load(signed, key=key)
    assert checked == [1], "a verified signature skips the child check"


def test_damaged_index_arrays_name_the_file(digits, tmp_path):
    from tests.test_io import forge

    train, _ = digits
    model = KNNClassifier(algorithm="ivf", n_lists=12).fit(train.X, train.labels)
    path = save(model, tmp_path / "model.imgclf")

    def scramble(arrays):
        arrays["model/_index_ids"] = np.zeros_like(arrays["model/_index_ids"])

    forge(path, arrays_edit=scramble)
    with pytest.raises(io.ModelFileError, match="ids.*permutation") as info:
        io.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m[:-1],
        lambda m: np.full(m.shape, np.nan, np.float32),
        lambda m: m.astype(np.int64),
    ],
    ids=["short", "nan", "int64"],
)
def test_damaged_l1_medians_name_the_array_and_the_file(digits, tmp_path, damage):
    from tests.test_io import forge

    train, _ = digits
    model = KNNClassifier(algorithm="ivf", metric="l1", n_lists=12).fit(train.X, train.labels)
    path = save(model, tmp_path / "model.imgclf")

    def edit(arrays):
        arrays["model/_index_medians"] = damage(arrays["model/_index_medians"])

    forge(path, arrays_edit=edit)
    with pytest.raises(io.ModelFileError, match="medians") as info:
        io.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("array", ["code_low", "code_step", "code_mean", "code_components"])
def test_float_features_keep_their_codes_in_the_file_and_damage_is_named(digits, tmp_path, array):
    from tests.test_io import forge

    train, test = digits
    # float features of rank <= 64 in 200 numbers: scanned as codes of principal components
    spread = np.random.default_rng(0).standard_normal((64, 200)).astype(np.float32)
    X, queries = ((d.X.astype(np.float32) / 255) @ spread for d in (train, test))
    model = KNNClassifier(algorithm="ivf", n_lists=12).fit(X, train.labels)
    dims = model._index._codes.n_dims
    assert dims in (32, 64) and model._index._codes.components.shape == (dims, 200)
    path = io.save(model, tmp_path / "model.imgclf", model_type="knn", image_shape=(10, 20, 1))
    loaded = io.load(path).model
    np.testing.assert_array_equal(loaded.predict(queries[:50]), model.predict(queries[:50]))
    # not rebuilt: the same projection
    np.testing.assert_array_equal(loaded._index._codes.components, model._index._codes.components)

    def edit(arrays):
        arrays[f"model/_index_{array}"] = np.full((2, 2), np.inf, np.float32)

    forge(path, arrays_edit=edit)
    with pytest.raises(io.ModelFileError, match=array) as info:
        io.load(path)
    assert str(path) in str(info.value)


def test_files_written_before_the_algorithm_parameter_still_load(digits, tmp_path):
    from tests.test_io import forge

    train, test = digits
    model = KNNClassifier(k=3).fit(train.X, train.labels)
    path = save(model, tmp_path / "model.imgclf")
    new = ("algorithm", "n_lists", "n_probe", "ef_search", "seed")
    forge(path, header_edit=lambda h: [h["steps"][0]["params"].pop(name) for name in new])
    loaded = io.load(path).model
    assert loaded.algorithm == "exact"
    np.testing.assert_array_equal(loaded.predict(test.X), model.predict(test.X))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"algorithm": "annoy"},
            "algorithm must be one of 'exact', 'ivf', 'hnsw', 'faiss:<factory>'",
        ),
        ({"algorithm": "faiss:"}, "algorithm must be one of"),
        ({"algorithm": "ivf", "n_probe": 0}, "n_probe must be >= 1"),
        ({"algorithm": "ivf", "n_lists": -2}, "n_lists must be >= 1"),
        ({"algorithm": "ivf", "n_lists": 5000}, "fewer than n_lists=5000"),
    ],
)
def test_bad_algorithm_settings_are_named(digits, params, message):
    train, _ = digits
    with pytest.raises(ValueError, match=message):
        KNNClassifier(**params).fit(train.X, train.labels)


@needs_hnswlib
def test_l1_with_hnsw_names_the_algorithms_that_have_it(digits):
    train, _ = digits
    with pytest.raises(ValueError, match="ivf") as info:
        KNNClassifier(metric="l1", algorithm="hnsw").fit(train.X, train.labels)
    assert "exact" in str(info.value)


def test_the_table_names_every_algorithm():
    assert algorithms.check_algorithm("faiss:IVF64,PQ8") == "faiss:IVF64,PQ8"
    assert not algorithms.is_approximate("exact")
    assert algorithms.is_approximate("ivf")
