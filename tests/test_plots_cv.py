"""The cross-validation picture and the absence of any GUI window."""

import subprocess
import sys

from imgclf.datasets import load_digits
from imgclf.model_selection import sweep_knn
from imgclf.plots import cv_curve
from tests.plots_helpers import assert_png


def test_cv_curve_writes_a_png_with_title_labels_and_best_point(tmp_path):
    train = load_digits()["train"]
    result = sweep_knn(train.X, train.labels, [1, 3, 10, 30], ("l1", "l2"), folds=3)
    figure = cv_curve(result, tmp_path / "cv.png")
    assert assert_png(tmp_path / "cv.png") == (700, 450)
    ax = figure.axes[0]
    assert ax.get_title() and ax.get_xlabel() == "k" and "accuracy" in ax.get_ylabel()
    assert ax.get_xscale() == "log"  # k spans more than a decade
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(label.startswith("best: ") for label in labels)
    assert any("l1" in label for label in labels) and any("l2" in label for label in labels)


def test_plotting_never_imports_pyplot_or_opens_a_window(tmp_path):
    # A GUI backend and no display: any pyplot figure would fail or try to open a window.
    code = (
        "import sys, numpy as np\n"
        "from imgclf import plots\n"
        "from imgclf.datasets import load\n"
        "from imgclf.linear import linear_pipeline\n"
        "from imgclf.model_selection import SearchResult\n"
        "r = SearchResult([{'k': 1}, {'k': 3}], np.array([[0.5, 0.6], [0.7, 0.8]]))\n"
        f"plots.cv_curve(r, {str(tmp_path / 'x.png')!r})\n"
        "d = load('digits')['train']\n"
        "plots.samples(d.images, d.labels, d.classes, per_class=2)\n"
        "plots.confusion(np.eye(3, dtype=int), ['a', 'b', 'c'])\n"
        "t = load('toy:xor')['train']\n"
        "plots.knn_regions(t.points, t.labels, t.classes, steps=20)\n"
        "m = linear_pipeline(epochs=1).fit(d.images, d.labels)\n"
        "plots.templates(m, d.image_shape, d.classes)\n"
        "plots.loss_curve(m)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {"MPLBACKEND": "TkAgg", "DISPLAY": "", "PATH": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert_png(tmp_path / "x.png")
