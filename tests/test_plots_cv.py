"""Pictures of a search: accuracy against k, the two-parameter heat map; no GUI window."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from imgclf.datasets import load_digits
from imgclf.model_selection import SearchResult, sweep_knn
from imgclf.plots import cv_curve, search_heatmap
from tests.plots_helpers import (
    BAD_MATHTEXT,
    assert_legend_covers_no_data,
    assert_png,
    data_in_display,
    legend_boxes,
)

KS = [1, 3, 5, 8, 10, 15, 20, 50]


@pytest.fixture(scope="module")
def sweep():
    train = load_digits()["train"]
    return sweep_knn(train.X, train.labels, KS, ("l1", "l2"), folds=3)


def test_cv_curve_writes_a_png_with_title_labels_and_best_point(sweep, tmp_path):
    figure = cv_curve(sweep, tmp_path / "cv.png")
    assert assert_png(tmp_path / "cv.png") == (850, 450)
    ax = figure.axes[0]
    assert ax.get_title() == "Validation accuracy against k"
    assert ax.get_xlabel().startswith("k") and "accuracy" in ax.get_ylabel()
    assert ax.get_xscale() == "log"  # k spans more than a decade
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert any(label.startswith("chosen: k = ") for label in labels)
    assert any("l1" in label for label in labels) and any("l2" in label for label in labels)


def test_cv_curve_ticks_are_the_k_values_tried(sweep):
    ax = cv_curve(sweep).axes[0]
    ax.figure.canvas.draw()
    assert ax.get_xticks().tolist() == KS
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in KS]
    assert len(ax.xaxis.get_minorticklocs()) == 0  # no unlabelled log ticks in between


def test_cv_curve_on_a_linear_axis_also_ticks_every_k():
    result = SearchResult([{"k": k} for k in (2, 3, 4, 7)], np.array([[0.5], [0.6], [0.7], [0.6]]))
    ax = cv_curve(result).axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xticks().tolist() == [2, 3, 4, 7]


@pytest.mark.parametrize("best_at", ["left", "right"])
def test_cv_curve_legend_covers_no_data(best_at):
    # data filling the top corners, where a legend inside the axes would go
    ks = [1, 2, 3, 5, 10]
    high = [0.95, 0.2, 0.2, 0.2, 0.2] if best_at == "left" else [0.2, 0.2, 0.2, 0.2, 0.95]
    configs = [{"k": k, "metric": m} for m in ("l1", "l2") for k in ks]
    scores = np.array([[h, h - 0.01] for h in high] * 2)
    figure = cv_curve(SearchResult(configs, scores))
    assert len(data_in_display(figure.axes[0])) >= 20
    assert_legend_covers_no_data(figure)
    axes_box = figure.axes[0].get_window_extent()
    assert all(not box.overlaps(axes_box) for box in legend_boxes(figure))


def test_search_heatmap_labels_cells_with_values_and_frames_the_best(tmp_path):
    configs = [
        {"learning_rate": lr, "reg": reg} for lr in (1e-3, 3e-3, 1e-2) for reg in (1e-4, 0.1)
    ]
    mean = np.array([0.30, 0.31, 0.35, 0.29, 0.33, 0.32])  # best: 3e-3, 1e-4
    figure = search_heatmap(SearchResult(configs, mean[:, None]), tmp_path / "h.png")
    assert_png(tmp_path / "h.png")
    ax = figure.axes[0]
    assert ax.get_images(), "a heat map is an image"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.003", "0.01"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.0001", "0.1"]
    assert ax.get_xlabel() == "learning rate" and ax.get_ylabel() == "regularization strength"
    cells = {
        (round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts
    }
    assert cells[(1, 0)] == "0.350" and cells[(2, 1)] == "0.320" and len(cells) == 6
    frames = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_edgecolor()[0] == 1]
    assert len(frames) == 1 and frames[0].get_xy() == (0.5, -0.5)  # column 1, row 0
    assert "learning rate = 0.003" in figure._supxlabel.get_text()


def test_search_heatmap_marks_pairs_not_tried_and_std_over_folds():
    configs = [{"learning_rate": 0.1, "reg": 1.0}, {"learning_rate": 0.2, "reg": 2.0}]
    ax = search_heatmap(SearchResult(configs, np.array([[0.5, 0.7], [0.6, 0.6]]))).axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["0.600", "0.600\n± 0.100", "not tried", "not tried"]


def test_search_labels_from_data_are_drawn_literally():
    configs = [{"k": 1, "metric": BAD_MATHTEXT}, {"k": 3, "metric": BAD_MATHTEXT}]
    figure = cv_curve(SearchResult(configs, np.array([[0.5], [0.6]])))
    figure.canvas.draw()  # would raise on unescaped mathtext


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
        "g = SearchResult([{'learning_rate': 1, 'reg': 2}], np.array([[0.5]]))\n"
        "plots.search_heatmap(g)\n"
        "d = load('digits')['train']\n"
        "plots.samples(d.images, d.labels, d.classes, per_class=2)\n"
        "plots.confusion(np.eye(3, dtype=int), ['a', 'b', 'c'])\n"
        "t = load('toy:xor')['train']\n"
        "plots.knn_regions(t.points, t.labels, t.classes, steps=20)\n"
        "plots.scatter_points(t.points, t.labels, t.classes)\n"
        "m = linear_pipeline(epochs=1).fit(d.images, d.labels)\n"
        "plots.templates(m, d.image_shape, d.classes)\n"
        "plots.loss_curve(m)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {"MPLBACKEND": "TkAgg", "DISPLAY": "", "PATH": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert_png(tmp_path / "x.png")
