"""The k-NN sweep on a cluster: every fold's search runs on the shards of the data.

The data are placed on the workers once (:class:`~imgclf.distributed.shards.Placement`);
each fold then builds, on every shard, an index over the shard's *training*
rows (:meth:`ShardedIndex.over_rows`) and searches the fold's validation rows,
which the workers read from the shards holding them. The client merges the
shards' lists, then votes exactly as :func:`imgclf.model_selection.sweep_knn`
does, with its own functions: the :class:`~imgclf.model_selection.SearchResult`
is the local one, score for score.
"""

from __future__ import annotations

import time

import numpy as np

from imgclf._progress import progress
from imgclf._validation import check_choice
from imgclf.distributed.index import ALGORITHMS, ShardedIndex
from imgclf.distributed.shards import Placement, source_of
from imgclf.model_selection import knn_sweep
from imgclf.model_selection.cross_validation import resolve_folds
from imgclf.model_selection.result import SearchResult
from imgclf.neighbors import algorithms, voting

__all__ = ["sweep_knn"]


def sweep_knn(
    client,
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
    n_shards: int | None = None,
) -> SearchResult:
    """:func:`imgclf.model_selection.sweep_knn` with every search on ``client``'s cluster.

    Parameters
    ----------
    client : dask.distributed.Client
    X : array-like, shape (n, d) or (n, H, W, C), or a store-backed lazy array
        Placed on the workers once (a lazy array is read by them).
    y, ks, metrics, weights, folds, val, seed, tie_break, n_probes :
        As :func:`imgclf.model_selection.sweep_knn`.
    algorithm : {"exact", "ivf"}
    index_params : dict, optional
        ``n_lists``, ``seed`` (``backend`` and ``ef_search`` do not apply).
    working_memory, n_jobs : optional
        Per shard (default 256 MiB; the worker's threads).
    n_shards : int, optional
        Default: one per worker.

    Returns
    -------
    SearchResult
        Equal, configuration for configuration and fold for fold, to the local sweep's.
    """
    ks, metrics, weights = knn_sweep._check_grid(ks, metrics, weights)
    algorithm = algorithms.check_algorithm(algorithm)
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm {algorithm!r} does not run on a Dask cluster; use 'exact' or 'ivf'"
        )
    n_probes = knn_sweep._check_probes(n_probes, algorithm)
    check_choice("tie_break", tie_break, voting.TIE_BREAKS)
    settings = knn_sweep._index_settings(index_params, working_memory, n_jobs)
    X, y, splits = resolve_folds(X, y, folds, val, seed)
    classes, y_index = np.unique(np.asarray(y), return_inverse=True)
    knn_sweep._check_k_fits(max(ks), splits)
    configs = knn_sweep._configs(ks, metrics, weights, n_probes)
    row_of = {tuple(c.values()): i for i, c in enumerate(configs)}
    scores = np.empty((len(configs), len(splits)))
    timings = {"search_s": 0.0, "vote_s": 0.0}
    index_settings = {
        "n_lists": settings["n_lists"],
        "seed": settings["seed"],
        "working_memory": working_memory,
        "n_jobs": n_jobs,
    }
    placement = Placement(client, source_of(X), n_shards)
    try:
        tasks = [(f, m) for f in range(len(splits)) for m in metrics]
        for f, metric in progress(tasks, len(tasks), "Sweeping k-NN on the cluster"):
            train, held_out = splits[f]
            start = time.perf_counter()
            index = ShardedIndex.over_rows(placement, train, metric, algorithm, **index_settings)
            timings["search_s"] += time.perf_counter() - start
            try:
                for n_probe in n_probes:
                    start = time.perf_counter()
                    if n_probe is not None:
                        index.n_probe = n_probe
                    dist, neighbors = index.search_rows(held_out, max(ks))
                    timings["search_s"] += time.perf_counter() - start
                    start = time.perf_counter()
                    labels = y_index[train][neighbors]
                    for w in weights:
                        fold_scores = knn_sweep._score_every_k(
                            labels, dist, w, ks, len(classes), y_index[held_out], tie_break
                        )
                        for k, score in fold_scores.items():
                            key = (k, metric, w) if n_probe is None else (k, metric, w, n_probe)
                            scores[row_of[key], f] = score
                    timings["vote_s"] += time.perf_counter() - start
            finally:
                index.close()
    finally:
        placement.release()
    return SearchResult(configs, scores, timings)
