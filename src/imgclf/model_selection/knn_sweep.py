"""The fast k-NN sweep: one neighbour search per fold and metric serves every k.

A grid search refits and re-searches for each ``(k, metric, weights)``.
But the k nearest neighbours are the first k of the ``k_max`` nearest (ties
go to the lower index in both), so one search at the largest k, followed by
votes built up rank by rank, scores every k and weighting, *exactly* as
running each configuration separately would.

With an approximate index (``algorithm="ivf"`` and friends) the index is built
once per fold and metric, and every ``n_probe`` re-searches it: the sweep then
scores what :class:`~imgclf.neighbors.KNNClassifier` with that algorithm and
``n_probe`` would, so speed can be traded for accuracy on validation data.
"""

from __future__ import annotations

import time

import numpy as np

from imgclf._progress import progress
from imgclf._validation import check_choice, check_int
from imgclf.model_selection.cross_validation import resolve_folds
from imgclf.model_selection.result import SearchResult
from imgclf.neighbors import algorithms, voting
from imgclf.neighbors.search import METRICS

__all__ = ["sweep_knn"]


def sweep_knn(
    X,
    y,
    ks,
    metrics=("l1", "l2"),
    weights=("uniform",),
    folds=5,
    *,
    val=None,
    seed: int = 0,
    tie_break: str = "smallest",
    algorithm: str = "exact",
    n_probes=None,
    index_params: dict | None = None,
    working_memory: int | None = None,
    n_jobs: int | None = None,
    client=None,
) -> SearchResult:
    """Validation accuracy of k-NN for every k, metric and weighting.

    Parameters
    ----------
    X : array-like, shape (n, d) or (n, H, W, C)
        uint8 pixels stay uint8 (the fastest kernels).
    y : array-like, shape (n,)
    ks : iterable of int
        Neighbour counts to score, each at most the smallest training fold.
    metrics : iterable of {"l1", "l2"}
    weights : iterable of {"uniform", "distance"}
    folds : int, scikit-learn splitter or (train, val) index pairs
    val : (X_val, y_val), optional
        A fixed validation set instead of folds.
    seed : int
        Shuffle seed of the folds.
    tie_break : {"smallest", "nearest"}
    algorithm : str, default="exact"
        The search index, as :class:`~imgclf.neighbors.KNNClassifier` names it.
    n_probes : iterable of int, optional
        ``n_probe`` values to score (``"ivf"`` and faiss IVF indexes); each is
        a column of the grid like ``k``.
    index_params : dict, optional
        Other index settings held fixed: ``n_lists``, ``ef_search``, ``seed``, ``backend``.
    client : dask.distributed.Client, optional
        Run every fold's search on this cluster's workers, the data sharded across
        them (:func:`imgclf.distributed.sweep_knn`: ``"exact"`` and ``"ivf"``, the
        same result). Default: the client of an enclosing
        :func:`imgclf.distributed.use_cluster`, else this process.

    Returns
    -------
    SearchResult
        Configurations ordered metric, then weights, then n_probe, then k;
        scores equal those of :class:`~imgclf.neighbors.KNNClassifier` fitted
        per configuration.
    """
    client = client if client is not None else _cluster_client()
    if client is not None:
        from imgclf.distributed.sweep import sweep_knn as on_cluster

        grid = {"metrics": metrics, "weights": weights, "folds": folds, "val": val}
        return on_cluster(
            client, X, y, ks, **grid, seed=seed, tie_break=tie_break, algorithm=algorithm,
            n_probes=n_probes, index_params=index_params, working_memory=working_memory,
            n_jobs=n_jobs,
        )  # fmt: skip
    ks, metrics, weights = _check_grid(ks, metrics, weights)
    n_probes = _check_probes(n_probes, algorithms.check_algorithm(algorithm))
    check_choice("tie_break", tie_break, voting.TIE_BREAKS)
    X, y, splits = resolve_folds(X, y, folds, val, seed)
    X = _in_memory_unless_too_large(X, algorithm)
    classes, y_index = np.unique(np.asarray(y), return_inverse=True)
    _check_k_fits(max(ks), splits)
    configs = _configs(ks, metrics, weights, n_probes)
    row_of = {tuple(c.values()): i for i, c in enumerate(configs)}
    scores = np.empty((len(configs), len(splits)))
    timings = {"search_s": 0.0, "vote_s": 0.0}
    settings = _index_settings(index_params, working_memory, n_jobs)
    tasks = [(f, m) for f in range(len(splits)) for m in metrics]
    for f, metric in progress(tasks, len(tasks), "Sweeping k-NN"):
        train, held_out = splits[f]
        searches = _fold_searches(X, splits[f], algorithm, metric, n_probes, max(ks), settings)
        for n_probe, dist, neighbors, seconds in searches:
            timings["search_s"] += seconds
            start = time.perf_counter()
            labels = y_index[train][neighbors]
            for w in weights:
                fold_scores = _score_every_k(
                    labels, dist, w, ks, len(classes), y_index[held_out], tie_break
                )
                for k, score in fold_scores.items():
                    key = (k, metric, w) if n_probe is None else (k, metric, w, n_probe)
                    scores[row_of[key], f] = score
            timings["vote_s"] += time.perf_counter() - start
    return SearchResult(configs, scores, timings)


def _in_memory_unless_too_large(X, algorithm: str):
    """``X`` as a NumPy array, except a lazy one above the in-memory limit: that one stays
    on disk and every fold is searched exactly, in windows (:mod:`.streamed`)."""
    from imgclf.datasets.chunked import fits_in_memory, is_lazy
    from imgclf.errors import DatasetError

    if not is_lazy(X) or fits_in_memory(X):
        return np.asarray(X)
    if algorithm != "exact":
        raise DatasetError(
            f"algorithm={algorithm!r} cannot sweep a dataset larger than memory (it is read "
            "from disk in windows, and only exact search streams); use algorithm='exact', "
            "a subset (--train-size), or a Dask cluster (--scheduler)"
        )
    return X


def _fold_searches(X, split, algorithm: str, metric: str, n_probes, k: int, settings: dict):
    """``(n_probe, distances, neighbours, seconds)`` of one fold's held-out rows: one index
    built on its training rows, searched once per ``n_probe``; a lazy ``X`` streamed."""
    train, held_out = split
    start = time.perf_counter()
    if not isinstance(X, np.ndarray):  # lazy, above the in-memory limit: exact only
        from imgclf.model_selection.streamed import fold_neighbors

        limits = {name: settings[name] for name in ("working_memory", "n_jobs")}
        dist, neighbors = fold_neighbors(X, train, held_out, metric, k, limits=limits)
        yield None, dist, neighbors, time.perf_counter() - start
        return
    index = algorithms.build_index(X[train], algorithm, metric, **settings)
    for n_probe in n_probes:
        if n_probe is not None:
            index.n_probe = n_probe
        dist, neighbors = index.search(X[held_out], k)
        yield n_probe, dist, neighbors, time.perf_counter() - start
        start = time.perf_counter()


def _cluster_client():
    """The client of an enclosing :func:`imgclf.distributed.use_cluster`, or None."""
    from imgclf.distributed._context import active_client

    return active_client()


def _configs(ks, metrics, weights, n_probes) -> list[dict]:
    """Every configuration, as KNNClassifier parameters (``n_probe`` only when swept)."""
    configs = []
    for m in metrics:
        for w in weights:
            for p in n_probes:
                probe = {} if p is None else {"n_probe": p}
                configs += [{"k": k, "metric": m, "weights": w, **probe} for k in ks]
    return configs


def _check_probes(n_probes, algorithm: str) -> list:
    if n_probes is None:
        return [None]
    n_probes = sorted({check_int("n_probe", p, low=1) for p in n_probes})
    if not n_probes:
        raise ValueError("n_probes is empty; give at least one value, or None")
    if algorithm == "exact":
        raise ValueError(
            "n_probe values apply to approximate search; give algorithm='ivf' "
            "(--algorithm ivf) or a faiss IVF factory such as 'faiss:IVF1024,Flat' too"
        )
    return n_probes


def _index_settings(index_params: dict | None, working_memory, n_jobs) -> dict:
    settings = {"backend": "auto", "n_lists": None, "n_probe": None, "ef_search": None, "seed": 0}
    unknown = set(index_params or {}) - settings.keys()
    if unknown:
        raise ValueError(
            f"index_params has unknown settings {sorted(unknown)}; accepted: {sorted(settings)}"
        )
    return {**settings, **(index_params or {}), "working_memory": working_memory, "n_jobs": n_jobs}


def _score_every_k(labels, dist, weights, ks, n_classes, truth, tie_break) -> dict[int, float]:
    wanted = set(ks)
    vote_weights = voting.neighbor_weights(dist, weights)
    scores = {}
    for k, tally in voting.cumulative_votes(labels, n_classes, vote_weights):
        if k in wanted:
            predicted = voting.winners(tally, labels[:, :k], tie_break)
            scores[k] = float(np.mean(predicted == truth))
    return scores


def _check_grid(ks, metrics, weights):
    ks = sorted({check_int("k", k, low=1) for k in ks})
    metrics = [check_choice("metric", m, METRICS) for m in dict.fromkeys(metrics)]
    weights = [check_choice("weights", w, voting.WEIGHTS) for w in dict.fromkeys(weights)]
    for name, values in (("ks", ks), ("metrics", metrics), ("weights", weights)):
        if not values:
            raise ValueError(f"{name} is empty; give at least one value")
    return ks, metrics, weights


def _check_k_fits(k_max: int, splits) -> None:
    smallest = min(len(train) for train, _ in splits)
    if k_max > smallest:
        raise ValueError(
            f"k={k_max} is larger than the smallest training fold "
            f"({smallest} samples); use a smaller k or fewer folds"
        )
