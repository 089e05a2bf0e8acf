"""The command line as a user runs it: every command, every model, each in a fresh process.

In-process tests share imported modules, so an import cycle or a missing
lazy import can hide behind them (``imgclf train digits --model net`` once
crashed only in a fresh interpreter). Here every command is its own process,
and Ctrl-C is sent at several moments of a run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

IMGCLF = [sys.executable, "-m", "imgclf"]
ENV = {**os.environ, "IMGCLF_PROGRESS": "0", "COLUMNS": "200"}


def imgclf(*argv: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*IMGCLF, *argv], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300
    )
    assert "Traceback" not in done.stderr, done.stderr
    if ok:
        assert done.returncode == 0, f"imgclf {' '.join(argv)}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory) -> Path:
    """A small 32x32 RGB image folder without a test split: two classes, light and dark."""
    from PIL import Image

    root = tmp_path_factory.mktemp("rgb")
    rng = np.random.default_rng(0)
    for c, (name, base) in enumerate((("dark", 40), ("light", 200))):
        (root / name).mkdir()
        for i in range(30):
            pixels = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            pixels[:, : 8 + 8 * c] //= 2  # a class-dependent edge, for HOG
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_datasets_and_version(tmp_path):
    assert (
        "train: 1,437 images of shape (8, 8, 1)"
        in imgclf("datasets", "digits", cwd=tmp_path).stdout
    )
    assert imgclf("--version", cwd=tmp_path).stdout.startswith("imgclf ")


def test_demo(tmp_path):
    text = imgclf("demo", cwd=tmp_path).stdout
    assert "imgclf demo: digits" in text and (tmp_path / "report.html").is_file()


MODEL_ARGS = {
    "knn": ["--k", "1,3"],
    "linear": ["--epochs", "3", "--lr", "1e-3", "--reg", "1e-4,1e-2"],
    "net": ["--epochs", "3", "--lr", "1e-3", "--reg", "1e-4"],
}


def train_args(model: str) -> list[str]:
    return ["--k", "3"] if model == "knn" else ["--epochs", "3"]


@pytest.mark.parametrize("model", ["knn", "linear", "net"])
@pytest.mark.parametrize("features", [None, "pixels"])
def test_every_command_on_digits(tmp_path, model, features):
    """cv, train, evaluate, predict and report, each in a fresh process."""
    from PIL import Image

    from imgclf.datasets import load_digits

    feats = [] if features is None else ["--features", features]
    search = [*MODEL_ARGS[model], *feats, "--folds", "3"]
    cv = imgclf("cv", "digits", "--model", model, *search, "--final-test", cwd=tmp_path)
    assert "chosen: " in cv.stdout and "evaluated once on 360 test images" in cv.stdout
    trained = imgclf(
        "train",
        "digits",
        "--model",
        model,
        *train_args(model),
        *feats,
        "-o",
        "m.imgclf",
        cwd=tmp_path,
    )
    assert (
        trained.stdout.startswith(f"trained {model} on 1,437 images")
        and "seed=" in trained.stdout
        or model == "knn"
    )
    evaluation = json.loads(imgclf("evaluate", "m.imgclf", "digits", "--json", cwd=tmp_path).stdout)
    assert evaluation["n_test"] == 360 and evaluation["accuracy"] > 0.5
    assert len(evaluation["confusion_matrix"]) == 10
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(load_digits()["test"].images[:3]):
        Image.fromarray(image[:, :, 0]).save(images / f"{i}.png")
    predicted = imgclf("predict", "m.imgclf", str(images), "--top", "2", cwd=tmp_path).stdout
    assert len(predicted.splitlines()) == 3 and "images/0.png: " in predicted
    if features is None:  # the report is the slowest command: once per model is enough
        imgclf("report", "digits", "--model", model, *search, "-o", "r.html", cwd=tmp_path)
        assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("algorithm", ["ivf", "faiss:IVF16,Flat", "hnsw"])
def test_approximate_knn_commands(tmp_path, algorithm):
    """cv sweeps n_probe, train saves the index, evaluate and predict reload it."""
    from PIL import Image

    from imgclf.datasets import load_digits

    probes = [] if algorithm == "hnsw" else ["--n-probe", "2,8"]
    cv = imgclf("cv", "digits", "--algorithm", algorithm, *probes, "--k", "1", cwd=tmp_path)
    assert "chosen: k=1" in cv.stdout
    imgclf("train", "digits", "--algorithm", algorithm, "-o", "m.imgclf", cwd=tmp_path)
    evaluation = json.loads(imgclf("evaluate", "m.imgclf", "digits", "--json", cwd=tmp_path).stdout)
    assert evaluation["accuracy"] > 0.9
    Image.fromarray(load_digits()["test"].images[0][:, :, 0]).save(tmp_path / "0.png")
    assert "0.png: " in imgclf("predict", "m.imgclf", "0.png", cwd=tmp_path).stdout


@pytest.mark.parametrize("model", ["knn", "linear", "net"])
def test_features_on_a_folder_without_test_split(tmp_path, rgb_folder, model):
    """HOG and colour features need RGB images of 16x16 or more: a made-up folder."""
    data = [str(rgb_folder), "--test-size", "0.25"]
    feats = ["--features", "hog,color"]
    cv = imgclf(
        "cv",
        *data,
        "--model",
        model,
        *MODEL_ARGS[model],
        *feats,
        "--folds",
        "2",
        "--final-test",
        cwd=tmp_path,
    )
    assert "evaluated once on 15 test images" in cv.stdout
    assert "held out 15 of the training images as the test split" in cv.stderr
    imgclf(
        "train", *data, "--model", model, *train_args(model), *feats, "-o", "m.imgclf", cwd=tmp_path
    )
    evaluation = imgclf("evaluate", "m.imgclf", *data, cwd=tmp_path).stdout
    assert "accuracy" in evaluation


def test_evaluate_needs_a_test_split_and_says_how(tmp_path, rgb_folder):
    imgclf("train", str(rgb_folder), "-o", "m.imgclf", cwd=tmp_path)
    done = imgclf("evaluate", "m.imgclf", str(rgb_folder), cwd=tmp_path, ok=False)
    assert done.returncode == 1 and "--test-size" in done.stderr


# --- Ctrl-C ----------------------------------------------------------------------------------


def interrupt(argv: list[str], cwd: Path, when: str, *, python_flags=()):
    """Start ``imgclf argv``; send SIGINT once its stderr shows ``when``."""
    env = {**ENV, "IMGCLF_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, *python_flags, "-m", "imgclf", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a suite started in the background by a shell inherits SIGINT
        # ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = ""
    while when not in seen:
        line = proc.stderr.readline()
        assert line, f"the run ended before {when!r}: {seen[-2000:]}"
        seen += line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


LONG_TRAINING = [
    "train",
    "digits",
    "--model",
    "net",
    "--epochs",
    "400",
    "--hidden",
    "400",
    "-o",
    "n.imgclf",
]


@pytest.mark.parametrize("module", ["typer", "numpy", "sklearn"])
def test_ctrl_c_while_starting(tmp_path, module):
    """``python -v`` reports each import on stderr: interrupt in the middle of start-up."""
    code, err = interrupt(LONG_TRAINING, tmp_path, f"import '{module}'", python_flags=["-v"])
    assert code == 130 and "Traceback" not in err
    assert err.strip().endswith("Interrupted")


def test_ctrl_c_while_training(tmp_path):
    code, err = interrupt(LONG_TRAINING, tmp_path, "network epochs: ")
    assert code == 130 and "Traceback" not in err and err.strip().endswith("Interrupted")
    assert not list(tmp_path.iterdir())  # no model file, no .part left behind


def test_ctrl_c_while_decoding_a_folder(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(1500):
            Image.new("RGB", (64, 64), (i % 256, 0, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
    code, err = interrupt(["datasets", "imgs"], tmp_path, "Decoding images: ")
    assert code == 130 and "Traceback" not in err and err.strip().endswith("Interrupted")
