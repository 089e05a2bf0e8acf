"""The fast k-NN sweep: one neighbour search per fold and metric serves every k.

A grid search refits and re-searches for each ``(k, metric, weights)``.
But the k nearest neighbours are the first k of the ``k_max`` nearest (ties
go to the lower index in both), so one search at the largest k, followed by
votes built up rank by rank, scores every k and weighting, *exactly* as
running each configuration separately would.
"""

from __future__ import annotations

import time

import numpy as np

from imgclf._progress import progress
from imgclf._validation import check_choice, check_int
from imgclf.model_selection.cross_validation import resolve_folds
from imgclf.model_selection.result import SearchResult
from imgclf.neighbors import voting
from imgclf.neighbors.search import METRICS, ExactIndex

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
    working_memory: int | None = None,
    n_jobs: int | None = None,
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

    Returns
    -------
    SearchResult
        Configurations ordered metric, then weights, then k; scores equal
        those of :class:`~imgclf.neighbors.KNNClassifier` fitted per configuration.
    """
    ks, metrics, weights = _check_grid(ks, metrics, weights)
    check_choice("tie_break", tie_break, voting.TIE_BREAKS)
    X, y, splits = resolve_folds(X, y, folds, val, seed)
    X = np.asarray(X)
    classes, y_index = np.unique(np.asarray(y), return_inverse=True)
    _check_k_fits(max(ks), splits)
    configs = [{"k": k, "metric": m, "weights": w} for m in metrics for w in weights for k in ks]
    row_of = {(c["metric"], c["weights"], c["k"]): i for i, c in enumerate(configs)}
    scores = np.empty((len(configs), len(splits)))
    timings = {"search_s": 0.0, "vote_s": 0.0}
    tasks = [(f, m) for f in range(len(splits)) for m in metrics]
    for f, metric in progress(tasks, len(tasks), "Sweeping k-NN"):
        train, held_out = splits[f]
        start = time.perf_counter()
        index = ExactIndex(X[train], metric, working_memory=working_memory, n_jobs=n_jobs)
        dist, neighbors = index.search(X[held_out], max(ks))
        timings["search_s"] += time.perf_counter() - start
        start = time.perf_counter()
        labels = y_index[train][neighbors]
        for w in weights:
            fold_scores = _score_every_k(
                labels, dist, w, ks, len(classes), y_index[held_out], tie_break
            )
            for k, score in fold_scores.items():
                scores[row_of[metric, w, k], f] = score
        timings["vote_s"] += time.perf_counter() - start
    return SearchResult(configs, scores, timings)


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
