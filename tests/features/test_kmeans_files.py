"""k-means features in model files (arrays, checked) and on the command line, fresh processes."""

import json
import zipfile

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from imgclf import io
from imgclf.errors import ModelFileError
from imgclf.experiments import make_model
from imgclf.features import KMeansFeatures
from imgclf.linear import LinearClassifier
from tests.test_cli_fresh import imgclf, rgb_folder  # noqa: F401 - rgb_folder is a fixture


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    y = np.arange(n) % 2
    X[y == 1, :, :6] //= 3  # a dark left half: something to learn
    return X, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X, y = data()
    model = make_model("linear", features=["kmeans:6", "color"], image_shape=(12, 12, 3), epochs=3)
    model.fit(X, y)
    path = tmp_path_factory.mktemp("m") / "m.imgclf"
    io.save(model, path, model_type="linear", class_names=["a", "b"], image_shape=(12, 12, 3))
    return model, path


def test_a_feature_set_with_kmeans_round_trips_as_arrays(saved):
    model, path = saved
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {
        "features/centroids_.npy",
        "features/whitening_.npy",
        "features/patch_mean_.npy",
    } <= names
    loaded = io.load(path).model
    X, _ = data(10, seed=1)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded[0].centroids_, model[0].centroids_)


def kmeans_step(path, **params):
    X, y = data()
    model = Pipeline(
        [
            ("kmeans", KMeansFeatures(n_centroids=4, n_patches=500, **params)),
            ("clf", LinearClassifier(epochs=2)),
        ]
    ).fit(X, y)
    io.save(model, path, model_type="linear", image_shape=(12, 12, 3))
    return model, X


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"encoder": "soft", "alpha": 0.5},
        {"pooling": "pyramid", "power": 0.5, "mirror": True, "whiten_eps": 1.0},
    ],
    ids=repr,
)
def test_a_kmeans_step_round_trips(tmp_path, params):
    model, X = kmeans_step(tmp_path / "k.imgclf", **params)
    loaded = io.load(tmp_path / "k.imgclf").model
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
    assert loaded[0].n_iter_ == model[0].n_iter_
    assert loaded[0].get_params() == model[0].get_params()


def test_a_file_from_before_the_soft_encoder_loads_and_a_bad_alpha_is_refused(tmp_path):
    model, X = kmeans_step(tmp_path / "k.imgclf")
    older = rewrite(
        tmp_path / "k.imgclf",
        tmp_path / "old.imgclf",
        lambda h, a: [
            h["steps"][0]["params"].pop(p) for p in ("alpha", "power", "mirror", "whiten_eps")
        ],
    )
    loaded = io.load(older).model
    params = loaded[0].get_params()
    assert [params[p] for p in ("alpha", "power", "mirror", "whiten_eps")] == [0.25, 1, False, 0.1]
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
    forged = rewrite(
        tmp_path / "k.imgclf",
        tmp_path / "bad.imgclf",
        lambda h, a: h["steps"][0]["params"].update(alpha=-1),
    )
    with pytest.raises((ModelFileError, ValueError), match="alpha must be a non-negative number"):
        io.load(forged)
    forged = rewrite(
        tmp_path / "k.imgclf",
        tmp_path / "bad.imgclf",
        lambda h, a: h["steps"][0]["params"].update(power=2.0),
    )
    with pytest.raises((ModelFileError, ValueError), match=r"power must be a number in \(0, 1\]"):
        io.load(forged)


def rewrite(path, out, edit):
    """Copy the model file with its header and arrays edited, checksum recomputed."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays.pop("__header__").tobytes())
    edit(header, arrays)
    header["checksum"] = io._checksum(header, arrays)
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(out, "wb") as f:  # a path not ending in .npz would get one
        np.savez(f, __header__=blob, **arrays)
    return out


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda h, a: a.update({"features/centroids_": a["features/centroids_"][:5]}),
            r"centroids_ is \(5, 108\).*expected \(6, d\)",
        ),
        (
            lambda h, a: a.update({"features/whitening_": a["features/whitening_"][:10]}),
            r"whitening_ has shape \(10, 108\); expected \(108, 108\)",
        ),
        (
            lambda h, a: a.pop("features/centroids_"),
            r"k-means features but no centroids",
        ),
        (
            lambda h, a: h["steps"][0]["params"].update(names=["hog", "color"]),
            r"k-means arrays but no kmeans feature",
        ),
        (
            lambda h, a: h["steps"][0]["params"].update(names=["kmeans:x"]),
            r"names is .*expected kmeans or kmeans:N",
        ),
    ],
)
def test_forged_kmeans_arrays_are_refused_by_name(saved, tmp_path, edit, message):
    _, path = saved
    forged = rewrite(path, tmp_path / "f.imgclf", edit)
    with pytest.raises(ModelFileError, match=message):
        io.load(forged)


def test_command_line_trains_evaluates_and_reports_with_kmeans_features(tmp_path, rgb_folder):  # noqa: F811
    """Four centroids, one configuration, two folds: each command in a few seconds.

    With k-means features the linear model is trained by L-BFGS unless told otherwise.
    """
    data_args = [str(rgb_folder), "--test-size", "0.25"]
    feats = ["--features", "kmeans:4,color"]
    trained = imgclf(
        "train", *data_args, "--model", "linear", *feats, "-o", "m.imgclf", cwd=tmp_path
    )
    assert "solver='lbfgs'" in trained.stdout
    assert "accuracy" in imgclf("evaluate", "m.imgclf", *data_args, cwd=tmp_path).stdout
    one_config = ["--reg", "0.01", "--folds", "2"]  # (L-BFGS: no learning rate to vary)
    report = imgclf(
        "report", *data_args, "--model", "linear", *one_config, *feats, "-o", "r.html", cwd=tmp_path
    )
    assert report.returncode == 0
    assert "The k-means features&#x27; dictionary: 4 centroids" in (tmp_path / "r.html").read_text()
    sgd = ["--solver", "sgd", "--epochs", "2"]
    trained = imgclf(
        "train", *data_args, "--model", "linear", *sgd, *feats, "-o", "s", cwd=tmp_path
    )
    assert "solver='sgd'" in trained.stdout
    bad = imgclf("train", *data_args, "--features", "kmeans:0", "-o", "x", cwd=tmp_path, ok=False)
    assert (
        bad.returncode == 1
        and "Error: the centroids of 'kmeans:0' must be >= 1; got 0" in bad.stderr
    )
    bad = imgclf(
        "train",
        *data_args,
        "--model",
        "linear",
        "--solver",
        "newton",
        "-o",
        "x",
        cwd=tmp_path,
        ok=False,
    )
    assert (
        bad.returncode == 1 and "solver must be one of 'sgd', 'lbfgs'; got 'newton'" in bad.stderr
    )
