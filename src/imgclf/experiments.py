"""Whole experiments as the lecture runs them, for the command line and reports.

``choose_hyperparameters``: pick hyperparameters on validation data (k-fold or
a held-out part of the *training* split; the test split is never touched),
then, only if asked, fit the chosen configuration on all the training data
and evaluate it once on the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.datasets import Dataset
from imgclf.model_selection import SearchResult, cross_validate, sweep_knn, train_val_split
from imgclf.neighbors import KNNClassifier

__all__ = ["MODELS", "Selection", "choose_hyperparameters", "make_model"]

MODELS = ("knn", "linear")


@dataclass
class Selection:
    """What a hyperparameter search found, and the single test evaluation if one was run."""

    model: str
    search: SearchResult
    n_train: int
    protocol: str
    test_accuracy: float | None = None
    n_test: int | None = None
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "protocol": self.protocol,
            "n_train": self.n_train,
            "best_params": self.search.best_params,
            "best_validation_accuracy": self.search.best_score,
            "results": self.search.to_records(),
            "test_accuracy": self.test_accuracy,
            "n_test": self.n_test,
            "timings": {**self.search.timings, **self.timings},
        }


def make_model(model: str, **params):
    """An unfitted estimator for ``model`` with ``params``."""
    check_choice("model", model, MODELS)
    if model == "knn":
        return KNNClassifier(**params)
    from imgclf.linear import make_linear_pipeline

    return make_linear_pipeline(**params)


def _training_subset(train: Dataset, train_size: int | None, seed: int) -> Dataset:
    if train_size is None or train_size >= len(train):
        return train
    check_int("train_size", train_size, low=2)
    _, keep = train_val_split(train.labels, train_size, seed=seed)
    return train.subset(keep)


def _search(model, train: Dataset, grid: dict, folds: int, val_size, seed: int):
    X, y = train.X, train.labels
    val = None
    if val_size is not None:
        fit_part, val_part = train_val_split(y, val_size, seed=seed)
        X, y, val = X[fit_part], y[fit_part], (X[val_part], y[val_part])
    if model == "knn":
        return sweep_knn(
            X,
            y,
            grid["k"],
            grid.get("metric", ("l2",)),
            grid.get("weights", ("uniform",)),
            folds,
            val=val,
            seed=seed,
        )
    return cross_validate(make_model(model), X, y, grid, folds, val=val, seed=seed)


def choose_hyperparameters(
    splits: dict[str, Dataset],
    model: str,
    grid: dict,
    *,
    folds: int = 5,
    val_size: int | float | None = None,
    train_size: int | None = None,
    seed: int = 0,
    final_test: bool = False,
) -> Selection:
    """Search ``grid`` on validation data from the training split; test once if asked.

    Parameters
    ----------
    splits : dict of str to Dataset
        Needs ``"train"``; ``"test"`` only for ``final_test``.
    model : {"knn", "linear"}
    grid : dict of str to list
        For k-NN: ``k``, ``metric``, ``weights``; for linear: its parameters.
    folds : int
        k-fold cross-validation, unless ``val_size`` is given.
    val_size : int or float, optional
        Hold out this much of the training split as one validation set instead.
    train_size : int, optional
        Use a seeded, stratified subset of the training split (faster sweeps).
    final_test : bool
        Fit the best configuration on the whole (subset of the) training split
        and score it once on the test split.
    """
    check_choice("model", model, MODELS)
    train = _training_subset(splits["train"], train_size, seed)
    protocol = (
        f"{folds}-fold cross-validation"
        if val_size is None
        else f"held-out validation set ({val_size})"
    )
    search = _search(model, train, grid, folds, val_size, seed)
    selection = Selection(model, search, len(train), protocol)
    if final_test:
        _evaluate_once(selection, splits, train)
    return selection


def _evaluate_once(selection: Selection, splits: dict[str, Dataset], train: Dataset) -> None:
    if "test" not in splits:
        raise ValueError("final_test needs a test split, and this dataset has none")
    test = splits["test"]
    start = time.perf_counter()
    model = make_model(selection.model, **selection.search.best_params).fit(train.X, train.labels)
    selection.test_accuracy = float(np.mean(model.predict(test.X) == test.labels))
    selection.n_test = len(test)
    selection.timings["final_test_s"] = time.perf_counter() - start
