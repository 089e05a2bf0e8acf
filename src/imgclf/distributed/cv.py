"""Cross-validation of any classifier on a cluster: each (configuration, fold) is a task.

The data go to every worker once (a broadcast scatter); each task clones the
estimator, sets one configuration, fits on one fold's training rows and scores
its validation rows, exactly as :func:`imgclf.model_selection.cross_validate`
does in one process, so the :class:`~imgclf.model_selection.SearchResult` is the
same for any deterministic (seeded) estimator. Tasks lost with a worker are
sent again (``retries`` times), with the data scattered again.
"""

from __future__ import annotations

import time

import numpy as np

from imgclf._validation import check_int
from imgclf.distributed.errors import ClusterError
from imgclf.distributed.index import _await, _Lost, _lost_errors
from imgclf.model_selection.cross_validation import expand_grid, resolve_folds
from imgclf.model_selection.result import SearchResult

__all__ = ["cross_validate"]


def cross_validate(
    client,
    estimator,
    X,
    y,
    param_grid,
    folds=5,
    *,
    val=None,
    seed: int = 0,
    scoring=None,
    retries: int = 2,
) -> SearchResult:
    """:func:`imgclf.model_selection.cross_validate` with the fits as tasks on ``client``.

    Parameters
    ----------
    client : dask.distributed.Client
    estimator, X, y, param_grid, folds, val, seed, scoring :
        As :func:`imgclf.model_selection.cross_validate`; ``X`` must fit in a
        worker's memory (it is copied to every worker), ``scoring`` must pickle.
    retries : int, default=2
        Times a task lost with its worker is sent again.

    Returns
    -------
    SearchResult
        Timings hold ``cross_validate_s``, as locally.
    """
    retries = check_int("retries", retries, low=0)
    configs = expand_grid(param_grid)
    X, y, splits = resolve_folds(X, y, folds, val, seed)
    X, y = np.asarray(X), np.asarray(y)
    start = time.perf_counter()
    todo = [(c, f) for f in range(len(splits)) for c in range(len(configs))]
    scores = np.full((len(configs), len(splits)), np.nan)
    for _ in range(retries + 1):
        data = client.scatter([X, y], broadcast=True, hash=False)
        futures = {
            (c, f): client.submit(
                _fit_and_score,
                estimator,
                data[0],
                data[1],
                *splits[f],
                configs[c],
                scoring,
                pure=False,
            )  # fmt: skip
            for c, f in todo
        }
        todo = _collect(client, futures, scores)
        for future in data:
            future.release()
        if not todo:
            return SearchResult(configs, scores, {"cross_validate_s": time.perf_counter() - start})
    c, f = todo[0]
    raise ClusterError(
        f"cross-validation task (configuration {configs[c]}, fold {f}) was lost with its "
        f"worker {retries + 1} time(s); no partial result is returned"
    )


def _collect(client, futures: dict, scores: np.ndarray) -> list:
    """Fill ``scores`` from finished tasks; the (config, fold) pairs the cluster lost."""
    lost = []
    for (c, f), future in futures.items():
        try:
            scores[c, f] = _await(future, f"fold {f}", client, None)
        except (_Lost, *_lost_errors()):
            lost.append((c, f))
    return lost


def _fit_and_score(estimator, X, y, train, held_out, config: dict, scoring) -> float:
    """On a worker: fit a clone with ``config`` on ``train``, score it on ``held_out``."""
    from sklearn.base import clone

    model = clone(estimator).set_params(**config).fit(X[train], y[train])
    if scoring is None:
        return float(model.score(X[held_out], y[held_out]))
    return float(scoring(model, X[held_out], y[held_out]))
