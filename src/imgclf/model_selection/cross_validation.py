"""Cross-validation of any classifier over a grid of hyperparameters."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid

from imgclf._progress import progress
from imgclf.model_selection.result import SearchResult
from imgclf.model_selection.splits import Fold, folds_of

__all__ = ["cross_validate", "expand_grid", "resolve_folds", "warn_if_one_class"]


def expand_grid(param_grid) -> list[dict]:
    """Every configuration of ``param_grid`` (a dict of lists, or a list of such dicts)."""
    grids = param_grid if isinstance(param_grid, list) else [param_grid]
    if not grids or not all(grids):
        raise ValueError("param_grid is empty; give at least one parameter and value")
    for grid in grids:
        for name, values in grid.items():
            if len(values) == 0:
                raise ValueError(f"param_grid[{name!r}] is empty; give at least one value")
    return list(ParameterGrid(param_grid))


def resolve_folds(X, y, folds, val, seed) -> tuple[np.ndarray, np.ndarray, list[Fold]]:
    """Data and folds: k-fold of ``(X, y)``, or ``(X, y)`` train + a fixed ``val`` set."""
    warn_if_one_class(y)
    if val is None:
        return X, y, folds_of(folds, X, y, seed=seed)
    X_val, y_val = val
    n, m = len(X), len(X_val)
    X_all = np.concatenate([np.asarray(X), np.asarray(X_val)])
    y_all = np.concatenate([np.asarray(y), np.asarray(y_val)])
    return X_all, y_all, [(np.arange(n), np.arange(n, n + m))]


def warn_if_one_class(y) -> None:
    """Warn that validation on data of a single class measures nothing.

    A dataset stored class by class (CIFAR-10's folders) gives a first-``n``
    slice of one class; every classifier then scores 1.0 and any choice looks
    perfect. ``Dataset.subset(n, seed=...)`` takes a stratified sample instead.
    """
    classes = np.unique(np.asarray(y))
    if len(classes) == 1:
        warnings.warn(
            f"the training data holds a single class ({classes[0]!r}): every validation "
            "score will be 1.0 and the choice means nothing; take a stratified sample "
            "(Dataset.subset(n, seed=...)) rather than the first n images",
            stacklevel=3,
        )


def cross_validate(
    estimator, X, y, param_grid, folds=5, *, val=None, seed: int = 0, scoring=None, client=None
) -> SearchResult:
    """Validation score of every configuration of ``param_grid`` on every fold.

    Parameters
    ----------
    estimator : classifier
        Any imgclf or scikit-learn classifier; cloned for each fit.
    X : array-like, shape (n, d) or (n, H, W, C)
    y : array-like, shape (n,)
    param_grid : dict of str to list, or list of such dicts
    folds : int, scikit-learn splitter, or iterable of (train, val) index pairs
        Ignored when ``val`` is given.
    val : (X_val, y_val), optional
        A fixed validation set instead of folds.
    seed : int
        Shuffle seed of the folds.
    scoring : callable(estimator, X, y) -> float, optional
        Defaults to ``estimator.score`` (accuracy).
    client : dask.distributed.Client, optional
        Fit the (configuration, fold) pairs as tasks on this cluster
        (:func:`imgclf.distributed.cross_validate`; the same scores). Default: the
        client of an enclosing :func:`imgclf.distributed.use_cluster`, else this process.

    Returns
    -------
    SearchResult
    """
    from imgclf.distributed._context import active_client

    client = client if client is not None else active_client()
    if client is not None:
        from imgclf.distributed.cv import cross_validate as on_cluster

        return on_cluster(client, estimator, X, y, param_grid, folds, val=val, seed=seed,
                          scoring=scoring)  # fmt: skip
    configs = expand_grid(param_grid)
    X, y, splits = resolve_folds(X, y, folds, val, seed)
    X, y = (X if _on_disk(X) else np.asarray(X)), np.asarray(y)
    scores = np.empty((len(configs), len(splits)))
    tasks = [(c, f) for f in range(len(splits)) for c in range(len(configs))]
    start = time.perf_counter()
    for c, f in progress(tasks, len(tasks), "Cross-validating"):
        model = clone(estimator).set_params(**configs[c])
        scores[c, f] = _fold_score(model, X, y, *splits[f], scoring)
    return SearchResult(configs, scores, {"cross_validate_s": time.perf_counter() - start})


def _on_disk(X) -> bool:
    """Whether ``X`` is a lazy array larger than the in-memory limit (never read whole)."""
    from imgclf.datasets.chunked import fits_in_memory, is_lazy

    return is_lazy(X) and not fits_in_memory(X)


def _fold_score(model, X, y, train, held_out, scoring) -> float:
    """``model`` fitted on ``X[train]`` and scored on ``X[held_out]``.

    For ``X`` on disk the fold's rows are read from it: the training rows whole
    when they fit the in-memory limit (the same model as in memory), else trained on
    out of core (:func:`~imgclf.model_selection.out_of_core.fit_rows`); the held-out
    rows a block at a time for accuracy (the same score), whole for ``scoring``.
    """
    if not _on_disk(X):
        model.fit(X[train], y[train])
        return (scoring or _accuracy)(model, X[held_out], y[held_out])
    from imgclf.datasets.row_subset import RowSubset
    from imgclf.model_selection.out_of_core import fit_rows, score_rows

    model = fit_rows(model, RowSubset(X, train), y[train])
    if scoring is None:
        return score_rows(model, X, y, held_out)
    return scoring(model, X.take(held_out), y[held_out])


def _accuracy(model, X, y) -> float:
    return model.score(X, y)
