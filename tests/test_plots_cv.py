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
    code = (
        "import sys, numpy as np\n"
        "from imgclf.model_selection import SearchResult\n"
        "from imgclf.plots import cv_curve\n"
        "r = SearchResult([{'k': 1}, {'k': 3}], np.array([[0.5, 0.6], [0.7, 0.8]]))\n"
        f"cv_curve(r, {str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {"MPLBACKEND": "TkAgg", "DISPLAY": "", "PATH": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert_png(tmp_path / "x.png")
