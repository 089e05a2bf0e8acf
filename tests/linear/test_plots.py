"""Pictures of linear classifiers: valid PNGs, titled, and never a window (no pyplot)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imgclf.datasets import load, load_digits
from imgclf.linear import LinearClassifier, linear_pipeline
from imgclf.plots.linear import decision_regions, loss_curve, lr_reg_grid, templates

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
    assert_labelled(figure)
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
    results[(1e-1, 1e-3)] = (np.nan, np.nan)  # a diverged run
    path = tmp_path / "grid.png"
    figure = lr_reg_grid(results, path=path)
    assert_png(path, figure)
    panels = [ax for ax in figure.axes if ax.get_xlabel() == "learning rate"]
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "Training accuracy"
    assert titles[1].startswith("Validation accuracy\n(best 0.370: learning rate 0.01, reg 0.001")
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in panels)


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
        assert sum("w.x + b = 0" in text for text in legend) == 3


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
