"""One table of defaults, read by the estimators, the experiments and the command line."""

import subprocess
import sys

import pytest

from imgclf import defaults
from imgclf.experiments import default_grid, default_params
from imgclf.linear import LinearClassifier
from imgclf.neighbors import KNNClassifier
from imgclf.nn import TwoLayerNet


@pytest.mark.parametrize(
    "model, estimator",
    [("knn", KNNClassifier), ("linear", LinearClassifier), ("net", TwoLayerNet)],
)
def test_estimators_default_to_the_table(model, estimator):
    params = estimator().get_params()
    table = defaults.for_model(model)
    assert {name: params[name] for name in table} == table
    assert default_params(model) == table


@pytest.mark.parametrize(
    "model, loss", [("knn", None), ("linear", "softmax"), ("linear", "svm"), ("net", None)]
)
def test_search_grids_hold_the_default(model, loss):
    table, grid = defaults.for_model(model), default_grid(model, loss or "softmax")
    if model != "knn":
        table["learning_rate"] = defaults.learning_rate(model, loss or "softmax")
    assert grid and all(table[name] in values for name, values in grid.items())


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_the_linear_learning_rate_follows_the_loss(loss):
    clf = LinearClassifier(loss=loss)
    assert clf.learning_rate is None
    assert clf._learning_rate() == defaults.LINEAR_LEARNING_RATES[loss]


def test_help_shows_the_defaults_of_the_table():
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", "train", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "300", "PATH": ""},
    )
    text = " ".join(done.stdout.split())
    rates = defaults.LINEAR_LEARNING_RATES
    net = defaults.NET["learning_rate"]
    lr = f"{rates['softmax']:g} (softmax), {rates['svm']:g} (svm), {net:g} (net)"
    assert lr in text and f"[default: {defaults.NET['hidden']}]" in text


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="'tree'"):
        defaults.for_model("tree")
