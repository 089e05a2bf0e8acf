"""POST /v1/models/{name}/predict answers exactly what the library and ``imgclf predict`` do."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.serve.client import ENV, multipart


def _images(name: str, digits_files, request) -> list:
    if name.startswith("digits"):
        return digits_files["images"]
    return request.getfixturevalue("cifar_files")["images"]


def _library(saved, path, top=5) -> dict:
    from imgclf.predict import predict_file

    return predict_file(saved, path, top=top)


def _expected_neighbors(saved, path) -> list[dict]:
    """The k nearest training images of ``path``, from the estimator itself."""
    from imgclf.datasets.folder import read_image

    clf = saved.model
    height, width, channels = saved.image_shape
    image = read_image(path, mode="L" if channels == 1 else "RGB", size=(height, width))
    dist, index = clf.kneighbors(image.reshape(1, -1))
    names = saved.class_names
    return [
        {"index": int(i), "class": names[int(clf.classes_[clf._y[i]])], "distance": float(d)}
        for i, d in zip(index[0], dist[0], strict=True)
    ]


def test_every_model_answers_as_the_library(server, saved_models, digits_files, request):
    """Every model, every image (PNG and JPEG, one of another size): the library's answer."""
    for name, saved in saved_models.items():
        for path in _images(name, digits_files, request):
            kind = "image/jpeg" if path.suffix == ".jpg" else "image/png"
            status, got = server.post(f"/v1/models/{name}/predict", path.read_bytes(), kind)
            assert status == 200, got
            want = _library(saved, path)
            assert got["top"] == want["top"] and got["score"] == want["score"], (name, path)
            assert got["resized"] == want["resized"] and got["label"] == want["top"][0]["class"]
            assert got["model"] == name
            if name.endswith("knn") and want["resized"] is None:
                assert got["neighbors"] == _expected_neighbors(saved, path)
            assert ("neighbors" in got) == name.endswith("knn")


def test_resized_upload_says_so(server, digits_files):
    big = digits_files["images"][-1]
    status, got = server.post("/v1/models/digits-linear/predict", big.read_bytes())
    assert status == 200 and got["resized"] == "8x8"


@pytest.mark.parametrize("kind", ["knn", "linear", "net"])
def test_http_equals_the_predict_command(server, all_models, digits_files, request, kind):
    """``imgclf predict --json`` in a fresh process gives the same top classes and scores."""
    prefix = "cifar" if f"cifar-{kind}" in all_models else "digits"
    name = f"{prefix}-{kind}"
    images = _images(name, digits_files, request)[:6]
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", "predict", str(all_models[name]), "--top", "3", "--json",
         *map(str, images)],
        capture_output=True, text=True, env=ENV, timeout=300, check=True,
    )  # fmt: skip
    command = json.loads(done.stdout)
    for path, want in zip(images, command, strict=True):
        status, got = server.post(f"/v1/models/{name}/predict?top=3", path.read_bytes())
        assert status == 200 and got["top"] == want["top"] and got["resized"] == want["resized"]


def test_multipart_form_of_several_files(server, saved_models, digits_files):
    paths = digits_files["images"][:4]
    body, kind = multipart([(p.name, p.read_bytes()) for p in paths])
    status, got = server.post("/v1/models/digits-net/predict?top=2", body, kind)
    assert status == 200 and got["model"] == "digits-net"
    assert [p["file"] for p in got["predictions"]] == [p.name for p in paths]
    for path, answer in zip(paths, got["predictions"], strict=True):
        assert answer["top"] == _library(saved_models["digits-net"], path, top=2)["top"]


def test_octet_stream_and_top(server, saved_models, digits_files):
    path = digits_files["images"][1]
    status, got = server.post(
        "/v1/models/digits-knn/predict?top=10", path.read_bytes(), "application/octet-stream"
    )
    assert status == 200 and len(got["top"]) == 10
    assert got["top"] == _library(saved_models["digits-knn"], path, top=10)["top"]


def test_models_are_listed_and_described(server, saved_models):
    status, listing = server.get_json("/v1/models")
    assert status == 200 and [m["name"] for m in listing["models"]] == list(saved_models)
    status, one = server.get_json("/v1/models/digits-knn")
    assert one["image_shape"] == [8, 8, 1] and one["k"] == 5 and one["score"] == "vote share"
    assert one["classes"] == [str(i) for i in range(10)] and one["training_images"]


def test_training_images_and_templates_are_pngs(server, saved_models):
    from io import BytesIO

    from PIL import Image

    status, headers, body = server.request("GET", "/v1/models/digits-knn/train/7.png")
    assert status == 200 and headers["content-type"] == "image/png"
    clf = saved_models["digits-knn"].model
    pixels = np.asarray(Image.open(BytesIO(body)))
    assert np.array_equal(pixels, clf._fit_X[7].reshape(8, 8))
    assert headers["x-imgclf-class"] == str(clf.classes_[clf._y[7]])
    status, headers, body = server.request("GET", "/v1/models/digits-linear/templates/3.png")
    assert status == 200 and Image.open(BytesIO(body)).size == (8, 8)
    status, _, body = server.request("GET", "/v1/models/digits-net/templates/3.png")
    assert status == 404 and b"no class templates" in body


def test_knn_without_neighbors(server, saved_models, digits_files):
    path = digits_files["images"][2]
    status, got = server.post("/v1/models/digits-knn/predict?top=1&neighbors=0", path.read_bytes())
    assert status == 200 and "neighbors" not in got
    assert got["top"] == _library(saved_models["digits-knn"], path, top=1)["top"]
    status, got = server.post("/v1/models/digits-knn/predict?neighbors=2", path.read_bytes())
    assert status == 400 and "neighbors" in got["error"]
