"""Model files: round trips, and clear errors for damaged or foreign files."""

import json
import zipfile

import numpy as np
import pytest

from imgclf import io
from imgclf.datasets import load_digits
from imgclf.errors import ModelFileError
from imgclf.experiments import make_model
from imgclf.linear import linear_pipeline
from imgclf.neighbors import KNNClassifier


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# One model of every type the command line trains, fitted on demand.
FITTERS = {
    "knn": lambda t: KNNClassifier(k=3, metric="l1", weights="distance").fit(t.images, t.labels),
    "linear": lambda t: linear_pipeline(loss="svm", epochs=3, seed=0).fit(t.images, t.labels),
    "net": lambda t: make_model("net", hidden=20, epochs=3).fit(t.X, t.labels),
    "knn+features": lambda t: make_model(
        "knn", features=["pixels"], image_shape=(8, 8, 1), k=3
    ).fit(t.X, t.labels),
}


@pytest.fixture(params=sorted(FITTERS))
def saved(request, digits, tmp_path):
    model = FITTERS[request.param](digits["train"])
    path = io.save(
        model,
        tmp_path / "model.imgclf",
        model_type=request.param,
        class_names=digits["train"].classes,
        image_shape=(8, 8, 1),
    )
    return model, path


def scores(model, X):
    """Class scores: the linear model's decision function, k-NN's vote shares."""
    return (
        model.decision_function(X)
        if hasattr(model, "decision_function")
        else model.predict_proba(X)
    )


def test_round_trip_gives_identical_predictions(saved, digits):
    model, path = saved
    loaded = io.load(path)
    test = digits["test"].images
    np.testing.assert_array_equal(loaded.model.predict(test), model.predict(test))
    np.testing.assert_array_equal(scores(loaded.model, test), scores(model, test))
    assert loaded.class_names == list("0123456789") and loaded.image_shape == (8, 8, 1)


def test_file_holds_no_pickle(saved):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            assert data[:6] == b"\x93NUMPY"
            assert b"'descr': '|O'" not in data[:200]  # no object arrays (which need pickle)


def test_truncated_file_is_refused(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ModelFileError, match="model.imgclf"):
        io.load(path)


def rewrite(path, change):
    """Load every array of the file, let ``change`` edit them, write the file back."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with open(path, "wb") as out:
        np.savez(out, **arrays)


def edit_header(arrays, edit):
    header = json.loads(arrays["__header__"].tobytes())
    edit(header)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


def test_tampered_array_fails_the_checksum(saved):
    _, path = saved

    def flip_a_byte(arrays):
        name = next(n for n in arrays if n != "__header__")
        arrays[name] = arrays[name].copy()
        arrays[name].reshape(-1).view(np.uint8)[-1] ^= 0xFF

    rewrite(path, flip_a_byte)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        io.load(path)


def test_tampered_parameters_fail_the_checksum(saved):
    _, path = saved
    rewrite(
        path,
        lambda m: edit_header(
            m,
            lambda h: h["steps"][-1]["params"].update(
                {"k": 1} if h["model_type"].startswith("knn") else {"reg": 123.0}
            ),
        ),
    )
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        io.load(path)


def test_unknown_version_is_named(saved):
    _, path = saved
    rewrite(path, lambda m: edit_header(m, lambda h: h.update(format_version=99)))
    with pytest.raises(ModelFileError, match="format version 99; this imgclf .* reads version 1"):
        io.load(path)


def test_unknown_class_is_refused_without_instantiating(saved):
    _, path = saved

    def evil(arrays):
        def swap_class(header):
            header["steps"][0]["class"] = "os.system"
            header.pop("checksum")
            body = {k: v for k, v in arrays.items() if k != "__header__"}
            header["checksum"] = io._checksum(header, body)  # a forger can recompute it

        edit_header(arrays, swap_class)

    rewrite(path, evil)
    with pytest.raises(ModelFileError, match="unknown estimator class 'os.system'"):
        io.load(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04 broken zip"])
def test_garbage_files(tmp_path, content):
    path = tmp_path / "junk.imgclf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="junk.imgclf"):
        io.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        io.load(tmp_path / "nope.imgclf")


def test_failed_save_leaves_no_file(tmp_path, digits):
    path = tmp_path / "model.imgclf"

    class Unfit:
        def get_params(self, deep=False):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.save(Unfit(), path, model_type="knn")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_archive_is_never_unpickled(tmp_path):
    import pickle

    path = tmp_path / "evil.imgclf"
    path.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        io.load(path)
