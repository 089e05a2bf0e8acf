"""The coarse quantizer of an inverted index: PCA, then the nearest of a few centroids.

``project(x) = (x - mean) @ components.T`` maps a row to the coarse space
(``components`` has orthonormal rows, the leading principal directions of a
training sample; with none, the coarse space is the features themselves).
A row belongs to the list of its nearest centroid there (Euclidean, ties to
the lower list), and a query probes the lists of its nearest centroids.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.utils.extmath import randomized_svd

from imgclf.neighbors.kernels.probe import nearest_lists, nearest_lists_of_rows

__all__ = ["CoarseQuantizer"]

CHUNK = 4096  # rows projected at once: 4096 x d float32 (48 MiB at CIFAR's 3,072)
PCA_SAMPLE = 8192  # rows the principal directions are estimated from
THREAD_MIN_QUERIES = 256  # fewer queries a thread: the coarse step stays on one


@dataclass(frozen=True)
class CoarseQuantizer:
    """A fitted quantizer.

    ``mean (d,)``, ``components (c, d)`` (``c = 0``: no projection) and
    ``centroids (n_lists, c or d)``, all float32.
    """

    mean: np.ndarray
    components: np.ndarray
    centroids: np.ndarray

    @classmethod
    def fit(
        cls,
        sample: np.ndarray,
        n_lists: int,
        n_components: int | None,
        *,
        seed: int,
        cluster: Callable,
    ) -> CoarseQuantizer:
        """Learn the projection and ``n_lists`` centroids from ``sample`` ``(s, d)``."""
        d = sample.shape[1]
        mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
        if n_components is None or n_components >= d:
            components = np.zeros((0, d), np.float32)
        else:
            components = _principal_directions(sample, mean, int(n_components), seed)
        empty = np.zeros((0, components.shape[0] or d), np.float32)
        quantizer = cls(mean, components, empty)
        centroids = cluster(quantizer.project(sample), n_lists, seed=seed)
        return cls(mean, components, np.ascontiguousarray(centroids, np.float32))

    @property
    def n_lists(self) -> int:
        return len(self.centroids)

    def project(self, X: np.ndarray) -> np.ndarray:
        """Rows of ``X`` ``(m, d)`` in the coarse space, float32, in chunks of :data:`CHUNK`."""
        if not len(self.components):
            return np.asarray(X, np.float32)
        out = np.empty((len(X), len(self.components)), np.float32)
        for lo in range(0, len(X), CHUNK):
            np.matmul(
                X[lo : lo + CHUNK].astype(np.float32), self.components.T, out=out[lo : lo + CHUNK]
            )
        out -= self._projected_mean  # (x - mean) P = xP - mean P: no centred copy of X
        return out

    @functools.cached_property
    def _projected_mean(self) -> np.ndarray:
        return np.ascontiguousarray(self.mean @ self.components.T, np.float32)

    @functools.cached_property
    def _centroid_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.centroids, self.centroids).astype(np.float32)

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        """``|z - c|^2 - |z|^2`` for every centroid: the same order as the distances."""
        scores = Z @ self.centroids.T
        scores *= -2
        scores += self._centroid_norms
        return scores

    def assign(self, X: np.ndarray) -> np.ndarray:
        """The list of every row of ``X``: its nearest centroid (ties: the lower list)."""
        labels = np.empty(len(X), np.int64)
        for lo in range(0, len(X), CHUNK):
            labels[lo : lo + CHUNK] = self._scores(self.project(X[lo : lo + CHUNK])).argmin(axis=1)
        return labels

    def probes(self, queries: np.ndarray, n_probe: int, k: int, offsets: np.ndarray,
               n_jobs: int = 1):  # fmt: skip
        """(query, list) pairs to scan, sorted by query, each query's lists nearest first.

        Each query probes its ``n_probe`` nearest lists, and further lists, nearest
        first, while those hold fewer than ``k`` rows between them. Query by query
        (:func:`~imgclf.neighbors.kernels.probe.nearest_lists_of_rows`): the lists
        of a query do not depend on the batch it came in, nor on the ``n_jobs``
        threads that share the queries.
        """
        lists, short = self._nearest_lists(queries, n_probe, k, offsets, n_jobs)
        if short.any():  # too few rows: probe on (rare; the NumPy way, one query at a time)
            lists = [self._probe_on(queries[i], n_probe, k, offsets) if short[i] else lists[i]
                     for i in range(len(queries))]  # fmt: skip
            counts = np.array([len(x) for x in lists])
            return np.repeat(np.arange(len(queries)), counts), np.concatenate(lists)
        return np.repeat(np.arange(len(queries)), n_probe), lists.ravel()

    def _nearest_lists(self, queries, n_probe: int, k: int, offsets, n_jobs: int):
        """:func:`~imgclf.neighbors.kernels.probe.nearest_lists_of_rows` on up to ``n_jobs``
        threads, each a share of at least :data:`THREAD_MIN_QUERIES` queries (at 128 of
        894 lists a query takes ~15 us: 10,000 queries on one thread held the other idle)."""

        def nearest(part: np.ndarray):
            return nearest_lists_of_rows(
                part, self.components, self._projected_mean, self.centroids,
                self._centroid_norms, n_probe, offsets, k,
            )  # fmt: skip

        parts = min(n_jobs, len(queries) // THREAD_MIN_QUERIES)
        if parts <= 1:
            return nearest(queries)
        edges = np.linspace(0, len(queries), parts + 1).astype(np.int64)
        with ThreadPoolExecutor(parts) as pool:
            found = list(pool.map(nearest, [queries[a:b] for a, b in itertools.pairwise(edges)]))
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def _probe_on(self, query: np.ndarray, n_probe: int, k: int, offsets: np.ndarray):
        """The lists of one ``query`` whose nearest ``n_probe`` hold fewer than ``k`` rows:
        nearest first (equal scores: the lower list), until they hold ``k`` (or all)."""
        scores = self._scores(self.project(query[None]))[0]
        order = np.lexsort((np.arange(len(scores)), scores))
        held = np.cumsum(np.diff(offsets)[order])
        return order[: max(n_probe, int(np.searchsorted(held, k)) + 1)].astype(np.int64)

    def probed_ranges(self, query: np.ndarray, n_probe: int, k: int, offsets: np.ndarray):
        """The row ranges ``(r, 2)`` of the lists one ``query`` ``(d,)`` probes, nearest
        first: :meth:`probes` for a single query."""
        ranges = nearest_lists(
            query, self.components, self._projected_mean, self.centroids,
            self._centroid_norms, n_probe, offsets, k,
        )  # fmt: skip
        if not len(ranges):  # fewer than k rows: probe on
            lists = self._probe_on(query, n_probe, k, offsets)
            ranges = np.stack([offsets[lists], offsets[lists + 1]], axis=1)
        return ranges

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "components": self.components, "centroids": self.centroids}

    @classmethod
    def from_arrays(cls, arrays: dict, d: int) -> CoarseQuantizer:
        """Check saved arrays against each other and ``d`` features; ValueError names the array."""
        mean, components, centroids = (
            arrays.get(name) for name in ("mean", "components", "centroids")
        )
        c = components.shape[0] if isinstance(components, np.ndarray) else -1
        width = c or d
        for name, value, shape in (
            ("mean", mean, (d,)),
            ("components", components, (c, d)),
            (
                "centroids",
                centroids,
                (len(centroids) if isinstance(centroids, np.ndarray) else -1, width),
            ),
        ):
            if (
                not isinstance(value, np.ndarray)
                or value.ndim != len(shape)
                or value.shape != shape
            ):
                raise ValueError(f"ivf array {name!r} must have shape {shape}")
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise ValueError(f"ivf array {name!r} must hold finite floats")
        if len(centroids) < 1:
            raise ValueError("ivf array 'centroids' holds no centroid")
        as32 = (np.ascontiguousarray(a, np.float32) for a in (mean, components, centroids))
        return cls(*as32)


def _principal_directions(sample: np.ndarray, mean: np.ndarray, n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).permutation(len(sample))[:PCA_SAMPLE]
    centred = sample[np.sort(rows)].astype(np.float32) - mean
    _, _, vt = randomized_svd(centred, n, n_iter=4, random_state=seed)
    return np.ascontiguousarray(vt, np.float32)
