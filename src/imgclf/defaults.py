"""Every default hyperparameter, in one place.

The estimators' ``__init__`` signatures take their defaults from these tables,
and the experiments and the command line (its ``--help`` included) read them
too, so a default is changed here and nowhere else. This module imports
nothing, so ``imgclf --help`` shows the defaults without loading NumPy or
scikit-learn.

The values were chosen on validation data (never a test split) by
``benchmarks/bench_defaults.py``: with no hyperparameter given, on 49,000
CIFAR-10 training images scored on 1,000 held out, the softmax classifier
reaches 0.424, the SVM 0.411 and the two-layer network 0.547.

Examples
--------
>>> learning_rate("linear", "svm"), search_grid("knn")["k"]
(0.003, [1, 3, 5, 10, 20])
"""

from __future__ import annotations

__all__ = [
    "KNN",
    "LINEAR",
    "LINEAR_LEARNING_RATES",
    "NET",
    "for_model",
    "learning_rate",
    "search_grid",
]

#: :class:`imgclf.neighbors.KNNClassifier`
KNN = {"k": 1, "metric": "l2", "weights": "uniform"}

#: :class:`imgclf.linear.LinearClassifier`. ``learning_rate`` None means "by loss".
LINEAR = {
    "loss": "softmax",
    "standardize": True,
    "reg": 0.01,
    "learning_rate": None,
    "epochs": 20,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr_decay": 0.85,
}

#: The linear classifier's learning rate by loss: the SVM's hinge gradients need steps
#: about 7x smaller than the softmax's on CIFAR-10 (at 0.01 and above it falls to
#: 0.37-0.39), while the softmax needs large ones on small sets (digits) that get few
#: steps per epoch; no single rate serves both.
LINEAR_LEARNING_RATES = {"softmax": 0.02, "svm": 0.003}

#: :class:`imgclf.nn.TwoLayerNet`
NET = {
    "hidden": 100,
    "standardize": True,
    "reg": 1e-3,
    "learning_rate": 1e-3,
    "epochs": 15,
    "batch_size": 64,
    "optimizer": "adam",
    "lr_decay": 0.9,
    "dropout": 0.0,
}

_BY_MODEL = {"knn": KNN, "linear": LINEAR, "net": NET}


def for_model(model: str) -> dict:
    """A copy of the defaults of ``model`` (``"knn"``, ``"linear"`` or ``"net"``)."""
    if model not in _BY_MODEL:
        raise ValueError(f"model must be one of {', '.join(map(repr, _BY_MODEL))}; got {model!r}")
    return dict(_BY_MODEL[model])


def learning_rate(model: str, loss: str = "softmax") -> float:
    """The default learning rate of ``model`` (for ``"linear"``, that of its ``loss``)."""
    return LINEAR_LEARNING_RATES[loss] if model == "linear" else for_model(model)["learning_rate"]


def search_grid(model: str, loss: str = "softmax") -> dict[str, list]:
    """The grid ``imgclf cv`` and ``imgclf report`` try when the user names no values.

    k-NN: a few k and both distances. Linear and net: a third of each default
    learning rate and regularization, the default, and three times it.
    """
    if model == "knn":
        return {"k": [1, 3, 5, 10, 20], "metric": ["l1", "l2"], "weights": ["uniform"]}
    reg = for_model(model)["reg"]
    return {"learning_rate": _around(learning_rate(model, loss)), "reg": _around(reg)}


def _around(value: float) -> list[float]:
    """A third of ``value``, itself and three times it: a small log-spaced grid."""
    return [float(f"{value / 3:.2g}"), value, float(f"{value * 3:.2g}")]
