"""Whole experiments as the lecture runs them, for the command line and reports.

1. :func:`choose_hyperparameters` searches a grid on validation data: k-fold
   cross-validation or a held-out part of the *training* split. The test
   split is never touched.
2. :func:`fit_and_evaluate` fits the chosen configuration on all the training
   data and evaluates it once on the test split.
3. :func:`run_model` does both and keeps the timings; :func:`run_demo` runs
   k-NN and a linear classifier on the built-in digits.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.pipeline import Pipeline

from imgclf import defaults, metrics
from imgclf._sampling import split_indices
from imgclf._validation import check_choice, check_int, final_estimator
from imgclf.datasets import Dataset
from imgclf.model_selection import (
    SearchResult,
    cross_validate,
    repeated_train_val_split,
    sweep_knn,
    train_val_split,
)
from imgclf.neighbors import KNNClassifier
from imgclf.predict import rank_top

__all__ = [
    "DEMO_GRIDS",
    "MODELS",
    "Evaluation",
    "ModelRun",
    "Selection",
    "choose_hyperparameters",
    "carve_test_split",
    "check_compatible",
    "test_for_model",
    "default_grid",
    "default_params",
    "evaluate",
    "fit_and_evaluate",
    "fit_model",
    "hyperparameters",
    "make_model",
    "run_demo",
    "run_model",
    "test_split",
    "train_model",
]

MODELS = ("knn", "linear", "net")


@dataclass
class Selection:
    """What a hyperparameter search found on validation data."""

    model: str
    search: SearchResult
    n_train: int
    protocol: str
    fixed: dict = field(default_factory=dict)

    @property
    def best_params(self) -> dict:
        """The chosen configuration, fixed parameters included."""
        return {**self.fixed, **self.search.best_params}


@dataclass
class Evaluation:
    """The single evaluation of a fitted model on the test split."""

    accuracy: float
    top5_accuracy: float | None
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    n_test: int


@dataclass
class ModelRun:
    """A search, the final model fitted with its choice, and its one test evaluation."""

    selection: Selection
    model: object
    evaluation: Evaluation | None
    train: Dataset | None = None
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        search, ev = self.selection.search, self.evaluation
        return {
            "model": self.selection.model,
            "protocol": self.selection.protocol,
            "n_train": self.selection.n_train,
            "best_params": self.selection.best_params,
            "best_validation_accuracy": search.best_score,
            "results": search.to_records(),
            "test_accuracy": None if ev is None else ev.accuracy,
            "test_top5_accuracy": None if ev is None else ev.top5_accuracy,
            "n_test": None if ev is None else ev.n_test,
            "timings": {**search.timings, **self.timings},
        }


# --- models ------------------------------------------------------------------------------


def default_grid(model: str, loss: str = "softmax") -> dict:
    """The grid a search over ``model`` tries when none is given.

    See :func:`imgclf.defaults.search_grid` (a linear model's depends on its ``loss``).
    """
    check_choice("model", model, MODELS)
    return defaults.search_grid(model, loss)


def default_params(model: str) -> dict:
    """The hyperparameters ``model`` is trained with when none is given."""
    check_choice("model", model, MODELS)
    return defaults.for_model(model)


def make_model(model: str, *, features=None, image_shape=None, **params):
    """An unfitted estimator for ``model`` with ``params``.

    ``"knn"`` is a :class:`~imgclf.neighbors.KNNClassifier`; ``"linear"`` the
    pipeline mean image -> :class:`~imgclf.linear.LinearClassifier` (standardised
    inputs unless ``scale`` says otherwise); ``"net"`` standardise ->
    :class:`~imgclf.nn.TwoLayerNet`. With ``features`` (names such as
    ``["hog", "color"]``) each model sees those features of the images, whose
    shape ``image_shape`` ``(H, W, C)`` the flattened rows are read with.
    """
    check_choice("model", model, MODELS)
    extract = None if not features else _feature_step(features, image_shape)
    if model == "net":
        from imgclf.nn import net_pipeline

        return net_pipeline(extract, **params)
    if model == "knn":
        estimator = KNNClassifier(**params)
        return (
            estimator if extract is None else Pipeline([("features", extract), ("clf", estimator)])
        )
    from imgclf.linear import linear_pipeline

    pipeline = linear_pipeline(**{"scale": "std", **params})
    return pipeline if extract is None else Pipeline([("features", extract), *pipeline.steps])


def _feature_step(features, image_shape):
    from imgclf.features import make_features

    return make_features(features, image_shape=image_shape)


def _as_pipeline_grid(estimator, grid: dict) -> dict:
    """Hyperparameters address a pipeline's final (classifier) step."""
    if not isinstance(estimator, Pipeline):
        return grid
    step = estimator.steps[-1][0]
    return {f"{step}__{name}": values for name, values in grid.items()}


def _without_step_prefix(result: SearchResult) -> SearchResult:
    result.configs = [{k.split("__", 1)[-1]: v for k, v in c.items()} for c in result.configs]
    return result


def _with_image_shape(fixed: dict | None, train: Dataset) -> dict:
    """Feature extractors read flattened rows as images of the training shape."""
    fixed = dict(fixed or {})
    if fixed.get("features") and "image_shape" not in fixed:
        fixed["image_shape"] = train.image_shape
    return fixed


# --- 1. choose ---------------------------------------------------------------------------


def _training_subset(train: Dataset, train_size: int | None, seed: int) -> Dataset:
    if train_size is None or train_size >= len(train):
        return train
    check_int("train_size", train_size, low=2)
    _, keep = train_val_split(train.labels, train_size, seed=seed)
    return train.subset(keep)


def _validation(X, y, folds, val_size, repeats: int, seed: int):
    """``(X, y, folds, val)`` for the search: k-fold, one held-out set, or repeated ones."""
    if val_size is None:
        return X, y, folds, None
    if repeats > 1:
        return X, y, repeated_train_val_split(y, val_size, repeats, seed=seed), None
    fit_part, val_part = train_val_split(y, val_size, seed=seed)
    if getattr(X, "lazy", False):  # rows stay on disk: the split as one (train, val) fold
        return X, y, [(fit_part, val_part)], None
    return X[fit_part], y[fit_part], folds, (X[val_part], y[val_part])


def _search(model, train: Dataset, grid: dict, splitting: dict, seed: int, fixed: dict):
    X, y, folds, val = _validation(train.X, train.labels, seed=seed, **splitting)
    if model == "knn":
        with contextlib.ExitStack() as scratch:
            if fixed.get("features"):  # fixed per image: extract once, sweep on them
                extract = _feature_step(fixed["features"], fixed["image_shape"])
                X, val = _features(extract, X, val, scratch)
            return _sweep(X, y, folds, val, grid, seed, fixed)
    estimator = make_model(model, **fixed)
    grid = _as_pipeline_grid(estimator, grid)
    return _without_step_prefix(cross_validate(estimator, X, y, grid, folds, val=val, seed=seed))


def _features(extract, X, val, scratch: contextlib.ExitStack):
    """``(features of X, val with features)``; for ``X`` on disk, written chunk by chunk
    to a scratch store (removed when ``scratch`` closes) that the sweep reads."""
    from imgclf.datasets.chunked import fits_in_memory, is_lazy

    if is_lazy(X) and not fits_in_memory(X):  # a lazy set has no separate val (_validation)
        from imgclf.model_selection.out_of_core import features_of

        return features_of(extract, X, scratch), val
    return extract.fit_transform(X), val and (extract.transform(val[0]), val[1])


def _sweep(X, y, folds, val, grid: dict, seed: int, fixed: dict) -> SearchResult:
    """:func:`~imgclf.model_selection.sweep_knn` of the grid's k, metrics and weights."""
    metric, weights = grid.get("metric", ("l2",)), grid.get("weights", ("uniform",))
    index = {name: fixed[name] for name in ("n_lists", "seed") if fixed.get(name) is not None}
    return sweep_knn(X, y, grid["k"], metric, weights, folds, val=val, seed=seed,
                     algorithm=fixed.get("algorithm", "exact"), n_probes=grid.get("n_probe"),
                     index_params=index)  # fmt: skip


def choose_hyperparameters(
    train: Dataset,
    model: str,
    grid: dict,
    *,
    folds: int = 5,
    val_size: int | float | None = None,
    repeats: int = 1,
    seed: int = 0,
    fixed: dict | None = None,
) -> Selection:
    """Search ``grid`` on validation data taken from ``train`` only.

    ``fixed`` may name ``features`` (e.g. ``["hog", "color"]``); k-NN then
    sweeps on features extracted once, the others search feature pipelines.

    Parameters
    ----------
    train : Dataset
        The training split (or a subset of it).
    model : {"knn", "linear", "net"}
    grid : dict of str to list
        k-NN: ``k``, ``metric``, ``weights``; linear: e.g. ``learning_rate``, ``reg``.
    folds : int
        k-fold cross-validation, unless ``val_size`` is given.
    val_size : int or float, optional
        Hold out this much of ``train`` as one validation set instead.
    repeats : int, default=1
        With ``val_size``: average over this many seeded held-out splits
        (:func:`~imgclf.model_selection.repeated_train_val_split`).
    seed : int
    fixed : dict, optional
        Parameters held fixed during the search (e.g. ``loss="svm"``, ``epochs``).
    """
    check_choice("model", model, MODELS)
    fixed = _with_image_shape(fixed, train)
    repeats = check_int("repeats", repeats, low=1)
    if repeats > 1 and val_size is None:
        raise ValueError(f"repeats={repeats} repeats a held-out split; give val_size too")
    splitting = {"folds": folds, "val_size": val_size, "repeats": repeats}
    search = _search(model, train, grid, splitting, seed, fixed)
    return Selection(model, search, len(train), _protocol(folds, val_size, repeats), fixed)


def _protocol(folds: int, val_size, repeats: int) -> str:
    if val_size is None:
        return f"{folds}-fold cross-validation"
    if repeats == 1:
        return f"held-out validation set ({val_size})"
    return f"held-out validation set ({val_size}), {repeats} seeded splits averaged"


# --- 2. evaluate once --------------------------------------------------------------------


def evaluate(model, test: Dataset) -> Evaluation:
    """Accuracy, top-5 accuracy, per-class accuracy and confusion on ``test``.

    Labels are class indices; the model must have been fitted on indices too.
    One pass over the test set serves every figure: the classes are ranked
    once (for k-NN, one neighbour search) and the prediction is the first.
    """
    n_classes = len(test.classes)
    ranking = _ranking(model, test.X, top=min(5, n_classes))
    labels = final_estimator(model).classes_
    predictions = labels[ranking[:, 0]]
    top5 = None
    if n_classes > 5 and ranking.shape[1] == 5:
        top5 = metrics.top_k_accuracy_from_ranking(test.labels, labels[ranking], k=5)
    return Evaluation(
        accuracy=metrics.accuracy(test.labels, predictions),
        top5_accuracy=top5,
        per_class_accuracy=metrics.per_class_accuracy(test.labels, predictions, n_classes),
        confusion=metrics.confusion_matrix(test.labels, predictions, n_classes),
        predictions=predictions,
        n_test=len(test),
    )


def _ranking(model, X, top: int) -> np.ndarray:
    """:func:`~imgclf.predict.rank_top`'s ranking; a lazy ``X`` is ranked a block at a time
    (each row's ranking depends on that row alone, so the result is the same)."""
    if not getattr(X, "lazy", False):
        return rank_top(model, X, top=top)[0]
    from imgclf.datasets.chunked import blocks

    # float64 scores of float32 features: 8 bytes a value bound a block's copies
    parts = [rank_top(model, block, top=top)[0] for _, block in blocks(X, row_bytes=8 * X.shape[1])]
    return np.concatenate(parts)


def fit_model(model, train: Dataset):
    """``model`` fitted on ``train``'s rows and labels; out of core for a large lazy set.

    A :attr:`~imgclf.datasets.Dataset.lazy` set that fits the in-memory limit is
    read whole (the same model as in memory). A larger one is never read whole: a
    classifier trains on it in shuffled windows of blocks (see :mod:`imgclf._minibatch`),
    a k-NN classifier searches it from disk; in a pipeline, each step before it is fitted
    on the lazy rows and the next step sees its output
    (:func:`~imgclf.model_selection.out_of_core.fit_rows`).
    """
    X = train.X
    if not getattr(X, "lazy", False):
        return model.fit(X, train.labels)
    from imgclf.model_selection.out_of_core import fit_rows

    return fit_rows(model, X, train.labels)


def fit_and_evaluate(selection: Selection, train: Dataset, test: Dataset | None):
    """Fit the chosen configuration on all of ``train``; evaluate once on ``test`` if given."""
    model = fit_model(make_model(selection.model, **selection.best_params), train)
    return model, (None if test is None else evaluate(model, test))


# --- 3. whole runs -----------------------------------------------------------------------


def run_model(
    splits: dict[str, Dataset],
    model: str,
    grid: dict,
    *,
    folds: int = 5,
    val_size=None,
    repeats: int = 1,
    train_size: int | None = None,
    seed: int = 0,
    final_test: bool = True,
    fixed: dict | None = None,
) -> ModelRun:
    """Choose hyperparameters; if ``final_test``, fit the choice and test it once.

    ``train_size`` takes a seeded, stratified subset of the training split first.
    Without ``final_test`` the returned run has no model and no evaluation: the
    test split is not touched.
    """
    timings = {}
    start = time.perf_counter()
    train = _training_subset(splits["train"], train_size, seed)
    selection = choose_hyperparameters(
        train,
        model,
        grid,
        folds=folds,
        val_size=val_size,
        repeats=repeats,
        seed=seed,
        fixed=fixed,
    )
    timings["selection_s"] = time.perf_counter() - start  # the whole search, sweep included
    if not final_test:
        return ModelRun(selection, None, None, train, timings)
    if "test" not in splits:
        raise ValueError("a final test needs a test split, and this dataset has none")
    start = time.perf_counter()
    test = splits["test"].with_classes(train.classes)  # labels match by class name
    fitted, evaluation = fit_and_evaluate(selection, train, test)
    timings["fit_and_test_s"] = time.perf_counter() - start
    return ModelRun(selection, fitted, evaluation, train, timings)


DEMO_GRIDS = {
    "knn": {"k": [1, 3, 5, 8, 10, 15, 20, 50], "metric": ["l1", "l2"]},
    "linear": {"learning_rate": [0.01, 0.1, 1.0], "reg": [1e-4, 1e-2]},
}


def run_demo(splits: dict[str, Dataset], *, seed: int = 0) -> list[ModelRun]:
    """The project's main job: k-NN (5-fold CV over k and metric) and a linear classifier
    (learning rate x regularization on a held-out validation set), each tested once."""
    knn = run_model(splits, "knn", DEMO_GRIDS["knn"], folds=5, seed=seed)
    linear = run_model(
        splits,
        "linear",
        DEMO_GRIDS["linear"],
        val_size=0.2,
        seed=seed,
        fixed={"epochs": 30, "seed": seed},
    )
    return [knn, linear]


# --- training, testing and predicting with saved models ----------------------------------


def train_model(
    splits: dict[str, Dataset],
    model: str,
    params: dict,
    *,
    train_size: int | None = None,
    seed: int = 0,
):
    """Fit ``model`` with ``params`` on the (optionally subsetted) training split.

    Returns the fitted estimator and the training Dataset it saw.
    """
    train = _training_subset(splits["train"], train_size, seed)
    params = _with_image_shape(params, train)
    return fit_model(make_model(model, **params), train), train


def test_split(splits: dict[str, Dataset]) -> Dataset:
    """The ``"test"`` split, or a clear error when the dataset has none."""
    if "test" not in splits:
        raise ValueError(
            f"this dataset has no test split (splits: {', '.join(sorted(splits))}); "
            "carve one off the training images with --test-size N or FRACTION"
        )
    return splits["test"]


def carve_test_split(
    splits: dict[str, Dataset], test_size: int | float, *, seed: int = 0
) -> dict[str, Dataset]:
    """``{"train", "test"}`` with a seeded, stratified test split taken from ``"train"``.

    For image folders without a test split. ``test_size`` is a count or a
    fraction of the training images; the test images are removed from
    ``"train"``, so nothing is trained on what is tested.
    """
    if "test" in splits:
        raise ValueError(
            "this dataset already has a test split; test_size carves one only where there is none"
        )
    train = splits["train"]
    try:
        rest, chosen = split_indices(train.labels, test_size, seed=seed)
    except ValueError as exc:
        raise ValueError(f"test_size={test_size!r}: {exc}") from None
    return {**splits, "train": train.subset(rest), "test": train.subset(chosen)}


def test_for_model(saved, test: Dataset) -> Dataset:
    """``test`` checked against a saved model and labelled in the model's class order.

    Image shapes must agree (:func:`check_compatible`); labels are matched by
    class name (:meth:`Dataset.with_classes`), so a test split whose classes are
    numbered differently, or that lacks a class, is scored correctly.
    """
    check_compatible(saved, test)
    return test if not saved.class_names else test.with_classes(saved.class_names)


def check_compatible(saved, test: Dataset) -> None:
    """A clear error when ``test`` holds other inputs than the saved model was trained on.

    Says it in words ("the model expects 8x8x1 images (digits); cifar:test has
    32x32x3 images"), not as a count of features.
    """
    expected, found = _inputs_of(saved.image_shape), _inputs_of(test.image_shape, test.X.shape[1])
    if expected is None or expected == found:
        return
    source = saved.header.get("dataset")
    raise ValueError(
        f"the model expects {expected}{f' ({source})' if source else ''}; "
        f"{test.name or 'this dataset'} has {found}"
    )


def _inputs_of(image_shape, n_features: int | None = None) -> str | None:
    if image_shape is not None:
        return "x".join(str(int(s)) for s in image_shape) + " images"
    return None if n_features is None else f"{n_features}D points"


def hyperparameters(model) -> dict:
    """The classifier's hyperparameters (a Pipeline's last step), as it trains with them.

    A learning rate left to the default is the value used, not None; so are a
    fitted approximate index's ``n_lists`` / ``n_probe`` / ``ef_search``. Exact
    k-NN shows none of the index settings.
    """
    estimator = final_estimator(model)
    params = estimator.get_params(deep=False)
    if "loss" in params and params.get("learning_rate") is None:  # "by loss": say which
        params["learning_rate"] = defaults.learning_rate("linear", params["loss"])
    if "algorithm" in params:
        params |= _index_settings(estimator, params["algorithm"])
    if "solver" in params:  # each solver's own settings only
        unused = _SGD_SETTINGS if params["solver"] == "lbfgs" else ("max_iter",)
        params |= dict.fromkeys(unused, _UNUSED)
    return {
        name: value
        for name, value in params.items()
        if name not in _NOT_HYPERPARAMETERS and value is not _UNUSED
    }


_UNUSED = object()
_INDEX_SETTINGS = ("n_lists", "n_probe", "ef_search", "seed")
_SGD_SETTINGS = ("learning_rate", "epochs", "batch_size", "optimizer", "lr_decay")


def _index_settings(estimator, algorithm: str) -> dict:
    """The index settings a k-NN model searches with (those that do not apply: _UNUSED)."""
    if algorithm == "exact":  # the default: say nothing of indexes
        return dict.fromkeys(("algorithm", *_INDEX_SETTINGS), _UNUSED)
    index = getattr(estimator, "_index", None)
    used = {name: getattr(index, name, None) for name in _INDEX_SETTINGS[:3]}
    return {name: _UNUSED if value is None else value for name, value in used.items()}


# settings of how a model runs, not of what it learns
_NOT_HYPERPARAMETERS = (
    "backend",
    "working_memory",
    "n_jobs",
    "val_fraction",
    "early_stopping",
    "patience",
)
