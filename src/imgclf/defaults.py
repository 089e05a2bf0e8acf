"""Every default hyperparameter, in one place.

The estimators' ``__init__`` signatures, the experiments and the command line
(its ``--help`` included) all read these tables, so a default is changed here
and nowhere else. This module imports nothing, so ``imgclf --help`` can show
the defaults without loading NumPy or scikit-learn.

``SEARCH_GRIDS`` are the grids ``imgclf cv`` and ``imgclf report`` try when the
user names no values: a few values around each default.
"""

from __future__ import annotations

__all__ = ["KNN", "LINEAR", "NET", "SEARCH_GRIDS", "for_model"]

#: :class:`imgclf.neighbors.KNNClassifier`
KNN = {"k": 1, "metric": "l2", "weights": "uniform"}

#: :class:`imgclf.linear.LinearClassifier`
LINEAR = {
    "loss": "softmax",
    "reg": 1e-4,
    "learning_rate": 1e-3,
    "epochs": 20,
    "batch_size": 200,
    "optimizer": "sgd",
    "lr_decay": 0.95,
}

#: :class:`imgclf.nn.TwoLayerNet`
NET = {
    "hidden": 100,
    "reg": 1e-4,
    "learning_rate": 1e-3,
    "epochs": 20,
    "batch_size": 200,
    "optimizer": "adam",
    "lr_decay": 0.95,
    "dropout": 0.0,
}

_BY_MODEL = {"knn": KNN, "linear": LINEAR, "net": NET}


def _around(value: float) -> list[float]:
    """A third of ``value``, itself and three times it: a small log-spaced grid."""
    return [float(f"{value / 3:.2g}"), value, float(f"{value * 3:.2g}")]


SEARCH_GRIDS = {
    "knn": {"k": [1, 3, 5, 10, 20], "metric": ["l1", "l2"], "weights": ["uniform"]},
    "linear": {"learning_rate": _around(LINEAR["learning_rate"]), "reg": _around(LINEAR["reg"])},
    "net": {"learning_rate": _around(NET["learning_rate"]), "reg": _around(NET["reg"])},
}


def for_model(model: str) -> dict:
    """A copy of the defaults of ``model`` (``"knn"``, ``"linear"`` or ``"net"``)."""
    if model not in _BY_MODEL:
        raise ValueError(f"model must be one of {', '.join(map(repr, _BY_MODEL))}; got {model!r}")
    return dict(_BY_MODEL[model])
