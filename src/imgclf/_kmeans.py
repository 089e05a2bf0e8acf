"""Lloyd's k-means in float32 with BLAS, for coarse quantizers and patch dictionaries.

Why not scikit-learn's ``KMeans``: on 57,000 points of 64 dimensions it took
1.7 s for 224 clusters but 47 s for 512 and 176 s for 894 on this project's
2-core machines (``MiniBatchKMeans``: 16 s and 30 s), while the same Lloyd
iterations as one sgemm per chunk take about a second. faiss's k-means is as
fast, but faiss is an optional extra. This module is the plain algorithm:

* start from ``n_clusters`` distinct points drawn with the seed;
* repeat: assign every point to its nearest centroid (``argmin_c |c|^2 - 2 x.c``,
  one matrix product per chunk of points), move each centroid to the mean of
  its points; an emptied cluster restarts at the point farthest from its
  centroid, so no cluster is ever lost.

Deterministic for a fixed seed and BLAS thread count.
"""

from __future__ import annotations

import numpy as np

__all__ = ["assign", "kmeans"]

CHUNK = 8192  # points per matrix product: an 8192 x n_clusters float32 block


def assign(X: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row of ``X``: (labels int64 (n,), squared distances (n,)).

    Ties go to the lower centroid index (``argmin``).
    """
    X = np.asarray(X, np.float32)
    norms = np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(len(X), np.int64)
    dist = np.empty(len(X), np.float32)
    for lo in range(0, len(X), CHUNK):
        chunk = X[lo : lo + CHUNK]
        scores = chunk @ centroids.T
        scores *= -2
        scores += norms  # |x - c|^2 - |x|^2, in place: no second block
        labels[lo : lo + CHUNK] = best = scores.argmin(axis=1)
        nearest = np.take_along_axis(scores, best[:, None], 1)[:, 0]
        dist[lo : lo + CHUNK] = np.maximum(nearest + np.einsum("ij,ij->i", chunk, chunk), 0)
    return labels, dist


def kmeans(X, n_clusters: int, *, n_iter: int = 20, seed: int = 0) -> np.ndarray:
    """``n_clusters`` centroids ``(n_clusters, d)`` float32 of the rows of ``X`` ``(n, d)``.

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], np.float32)
    >>> np.sort(kmeans(X, 2, seed=0), axis=0).tolist()
    [[0.0, 0.5], [10.0, 10.5]]
    """
    X = np.ascontiguousarray(X, np.float32)
    if not 1 <= n_clusters <= len(X):
        raise ValueError(
            f"n_clusters must be in 1..{len(X)} (the number of points); got {n_clusters}"
        )
    rng = np.random.default_rng(seed)
    centroids = X[rng.choice(len(X), n_clusters, replace=False)].copy()
    for _ in range(n_iter):
        labels, dist = assign(X, centroids)
        centroids = _means(X, labels, centroids, dist)
    return centroids


def _means(X: np.ndarray, labels: np.ndarray, old: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Each cluster's mean; empty clusters restart at the worst-served points."""
    counts = np.bincount(labels, minlength=len(old))
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.add.reduceat(X[order].astype(np.float64), starts[counts > 0])  # per non-empty cluster
    centroids = old.copy()
    centroids[counts > 0] = (sums / counts[counts > 0, None]).astype(np.float32)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        farthest = np.argsort(-dist, kind="stable")[: len(empty)]
        centroids[empty] = X[farthest]
    return centroids
