"""imgclf robustness and imgclf report --lecture, each run in a fresh process."""

from __future__ import annotations

import json
import re

import pytest

from imgclf import experiments, io
from imgclf.datasets import load_digits
from tests.plots_helpers import assert_png
from tests.test_cli_fresh import imgclf


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    imgclf("train", "digits", "--k", "3", "-o", "knn.imgclf", cwd=folder)
    imgclf("train", "digits", "--model", "linear", "--epochs", "3", "-o", "lin.imgclf", cwd=folder)
    return folder


def test_robustness_of_two_models_table_json_and_picture(models):
    argv = ["robustness", "knn.imgclf", "lin.imgclf", "digits", "-p", "shift=0,1", "-p", "flip"]
    text = imgclf(*argv, "--plot", "r.png", "-o", "r.json", cwd=models).stdout
    header = text.splitlines()[0].split()
    assert header[:1] == ["condition"] and "knn on pixels" in text and "linear on pixels" in text
    cells = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()[1:7]]
    rows = {row[0]: row[1:] for row in cells}
    assert list(rows) == ["clean", "shift 0 px", "shift 1 px", "flip 25%", "flip 50%", "flip 100%"]
    assert rows["clean"] == rows["shift 0 px"]  # severity 0: the plain accuracy, distance 0
    assert re.search(r"2 models on 360 test images x 5 perturbed conditions in [\d.]+ s", text)
    assert_png(models / "r.png", min_size=(600, 300))
    saved = json.loads((models / "r.json").read_text())
    assert [m["model"] for m in saved["models"]] == ["knn on pixels", "linear on pixels"]
    printed = json.loads(imgclf(*argv, "--json", "--n-test", "100", cwd=models).stdout)
    knn = printed["models"][0]
    assert knn["n_test"] == 100 and len(knn["results"]) == 6
    saved_model, test = io.load(models / "knn.imgclf"), load_digits()["test"]
    plain = experiments.evaluate(saved_model.model, test).accuracy
    assert saved["models"][0]["clean_accuracy"] == pytest.approx(plain)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["knn.imgclf", "digits", "-p", "zoom"], "perturbation must be one of 'shift'"),
        (["knn.imgclf", "toy:blobs"], "the model expects 8x8x1 images"),
    ],
)
def test_robustness_errors_are_one_line(models, argv, message):
    done = imgclf("robustness", *argv, cwd=models, ok=False)
    assert done.returncode == 1 and re.search(message, done.stderr)
    assert done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1


def test_report_with_the_lecture_section(tmp_path):
    imgclf(
        "report", "digits", "--k", "1", "--folds", "2", "--lecture", "-o", "r.html", cwd=tmp_path
    )
    page = (tmp_path / "r.html").read_text()
    section = page[page.index("What the lecture says, on this data") :]
    assert section.count("<img") == 3
    assert "at one L2 distance" in section and "Test accuracy against the strength" in section
    assert "points a quarter apart" in section
    assert section.index("What the lecture says") < section.index("Run time")


def test_an_approximate_knn_model_is_named_with_its_algorithm(tmp_path):
    from imgclf.cli._commands import _model_labels
    from imgclf.neighbors import KNNClassifier

    train = load_digits()["train"]
    saved = []
    for name, algorithm in (("exact", "exact"), ("ivf", "ivf")):
        model = KNNClassifier(k=3, algorithm=algorithm, n_lists=4).fit(train.images, train.labels)
        saved.append(io.load(io.save(model, tmp_path / f"{name}.imgclf", model_type="knn")))
    names = _model_labels(saved, ["a/exact.imgclf", "a/ivf.imgclf"])
    assert names == ["knn on pixels", "knn (ivf) on pixels"]
