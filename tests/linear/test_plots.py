"""Pictures of linear classifiers: valid PNGs, titled, and never a window (no pyplot)."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from imgclf.datasets import load, load_digits
from imgclf.linear import LinearClassifier, linear_pipeline
from imgclf.plots.linear import decision_regions, loss_curve, lr_reg_grid, templates
from tests.plots_helpers import BAD_MATHTEXT, assert_legend_covers_no_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, figure):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = figure.get_size_inches() * 100  # saved at 100 dpi
        assert image.size == (round(width), round(height))
    assert figure._suptitle is not None or figure.axes[0].get_title()


def assert_labelled(figure):
    titled = [ax for ax in figure.axes if ax.get_title()]
    assert titled or figure._suptitle is not None
    plots = [ax for ax in figure.axes if ax.get_xlabel() or ax.get_ylabel()]
    assert plots or (figure._supxlabel is not None and figure._supylabel is not None)


@pytest.fixture(scope="module")
def digits_model():
    train = load_digits()["train"]
    return linear_pipeline(scale="std", learning_rate=0.05, epochs=3, val_fraction=0.2).fit(
        train.images, train.labels
    )


def test_templates(tmp_path, digits_model):
    path = tmp_path / "templates.png"
    figure = templates(digits_model, (8, 8, 1), [f"digit {c}" for c in range(10)], path=path)
    assert_png(path, figure)
    assert figure._suptitle.get_text().startswith("What each class's template looks like")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == [f"digit {c}" for c in range(10)]


def test_templates_of_a_bare_classifier_in_colour(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    clf = LinearClassifier(learning_rate=1e-5, epochs=1).fit(images, rng.integers(0, 3, 40))
    figure = templates(clf, (4, 4, 3), path=tmp_path / "colour.png")
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == ["0", "1", "2"]
    assert_png(tmp_path / "colour.png", figure)


@pytest.mark.parametrize("source", ["model", "history"])
def test_loss_curve(tmp_path, digits_model, source):
    path = tmp_path / "loss.png"
    what = digits_model if source == "model" else digits_model[-1].loss_history_.tolist()
    figure = loss_curve(what, path=path)
    assert_png(path, figure)
    assert_labelled(figure)
    assert len(figure.axes) == (2 if source == "model" else 1)  # + validation accuracy


def test_lr_reg_grid(tmp_path):
    results = {
        (lr, reg): (0.3 + lr * 10, 0.28 + lr * 9)
        for lr in (1e-4, 1e-3, 1e-2)
        for reg in (1e-3, 1e-2)
    }
    results[(1e-1, 1e-3)] = (np.nan, np.nan)  # a diverged run; (0.1, 0.01) was not tried
    path = tmp_path / "grid.png"
    figure = lr_reg_grid(results, path=path)
    assert_png(path, figure)
    panels = [ax for ax in figure.axes if ax.get_xlabel() == "learning rate"]
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "Training accuracy"
    assert titles[1].startswith("Validation accuracy\n(best 0.370: learning rate 0.01, reg 0.001")
    for ax in panels:  # heat maps: a tick per value tried, a cell per pair
        assert ax.get_images()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0001", "0.001", "0.01", "0.1"]
        texts = [t.get_text() for t in ax.texts]
        assert texts.count("diverged") == 1 and texts.count("not tried") == 1
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["0.001", "0.01"]
    frames = [p for p in panels[1].patches if isinstance(p, Rectangle)]
    assert [f.get_xy() for f in frames] == [(1.5, -0.5)]  # lr 0.01 (column 2), reg 0.001
    assert not [p for p in panels[0].patches if isinstance(p, Rectangle)]


@pytest.mark.parametrize("name", ["xor", "ring", "three-modes", "blobs"])
def test_decision_regions_on_toy_sets(tmp_path, name):
    train = load(f"toy:{name}")["train"]
    names = [f"class {c}" for c in train.classes]
    model = linear_pipeline(learning_rate=0.05, epochs=5).fit(train.points, train.labels)
    path = tmp_path / f"{name}.png"
    figure = decision_regions(model, train.points, train.labels, path=path, classes=names)
    assert_png(path, figure)
    assert_labelled(figure)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert set(names) <= set(legend)
    if name == "blobs":  # elsewhere a line may miss the picture (e.g. ring: all one class)
        assert sum("w·x + b = 0" in text for text in legend) == 3
        assert "line w·x + b = 0" in figure.axes[0].get_title()
    drawn, title = sum("w·x + b = 0" in t for t in legend), figure.axes[0].get_title()
    if drawn == 0:  # the title says why no line shows
        assert "no class's line w·x + b = 0 crosses the picture" in title
    elif drawn < len(names):
        assert f"{len(names) - drawn} of them outside the picture" in title
    else:
        assert "outside" not in title
    assert_legend_covers_no_data(figure)


def test_decision_regions_draws_one_dashed_line_per_class_of_a_linear_model():
    train = load("toy:blobs")["train"]
    model = linear_pipeline(learning_rate=0.05, epochs=5).fit(train.points, train.labels)
    ax = decision_regions(model, train.points, train.labels).axes[0]
    dashed = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    assert len(dashed) == 3


def test_decision_regions_of_a_model_without_weights_has_no_lines():
    from imgclf.neighbors import KNNClassifier

    train = load("toy:xor")["train"]
    model = KNNClassifier(k=3).fit(train.points, train.labels)
    figure = decision_regions(model, train.points, train.labels, resolution=40)
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert not any("w·x" in text for text in legend)
    assert "w·x" not in figure.axes[0].get_title()


def test_class_names_with_dollar_signs_are_drawn_as_written(tmp_path, digits_model):
    names = [BAD_MATHTEXT, *(f"${c}" for c in range(1, 10))]
    figure = templates(digits_model, (8, 8, 1), names, path=tmp_path / "t.png")
    assert figure.axes[0].get_title() == r"\$\undefinedcmd{x}\$"
    train = load("toy:blobs")["train"]
    model = linear_pipeline(epochs=2).fit(train.points, train.labels)
    decision_regions(model, train.points, train.labels, tmp_path / "r.png", classes=names[:3])


def test_decision_regions_of_a_binary_scikit_learn_model(tmp_path):
    from sklearn.linear_model import LogisticRegression

    train = load("toy:xor")["train"]
    model = LogisticRegression().fit(train.points, train.labels)
    figure = decision_regions(model, train.points, train.labels, path=tmp_path / "lr.png")
    assert_png(tmp_path / "lr.png", figure)


def test_no_window_is_ever_opened(tmp_path, digits_model):
    """The figures are built without pyplot: none is registered with a GUI manager."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    loss_curve(digits_model)
    templates(digits_model, (8, 8, 1))
    assert plt.get_fignums() == before


def test_pyplot_is_never_imported(tmp_path):
    code = (
        "import sys; from imgclf.plots.linear import loss_curve; "
        f"loss_curve([3, 2, 1], path={str(tmp_path / 'x.png')!r}); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
