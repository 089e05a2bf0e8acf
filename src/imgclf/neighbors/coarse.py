"""The coarse quantizer of an inverted index: PCA, then the nearest of a few centroids.

``project(x) = (x - mean) @ components.T`` maps a row to the coarse space
(``components`` has orthonormal rows, the leading principal directions of a
training sample; with none, the coarse space is the features themselves).
A row belongs to the list of its nearest centroid there (Euclidean, ties to
the lower list), and a query probes the lists of its nearest centroids.

For L1 search of features of modest width (:data:`L1_MEDIANS_MAX_D`) a query
ranks the lists by its L1 distance to their *medians* instead, in the original
space (the per-feature median of the training sample's rows in each cell: the
point of least summed L1 distance to them). Euclidean centres in a projected
space rank a query's L1 neighbours' lists lower: on HOG + colour features of
CIFAR-10 (334 numbers) 128 lists ranked by medians find as many of the 10
nearest (recall 0.958) as 160 ranked by centroids. On raw pixels (3,072 bytes)
a pass over every median would cost about what the lists it saves do, so they
keep the centroids.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.utils.extmath import randomized_svd

from imgclf._threads import on_shares
from imgclf._validation import check_int
from imgclf.neighbors.kernels.probe import (
    nearest_lists,
    nearest_lists_of_rows,
    reference_l1_scores,
)

__all__ = ["CoarseQuantizer", "checked_pca_components", "coarse_dims"]

L1_MEDIANS_MAX_D = 1024  # L1 ranks lists by their medians up to this many features
WIDE_D = 1024  # wider rows (images) keep 64 principal directions by default, narrower 96
CHUNK = 4096  # rows projected at once: 4096 x d float32 (48 MiB at CIFAR's 3,072)
PCA_SAMPLE = 8192  # rows the principal directions are estimated from
THREAD_MIN_QUERIES = 256  # fewer queries a thread: the coarse step stays on one


@dataclass(frozen=True)
class CoarseQuantizer:
    """A fitted quantizer.

    ``mean (d,)``, ``components (c, d)`` (``c = 0``: no projection) and
    ``centroids (n_lists, c or d)``, all float32; ``medians (n_lists, d)`` in the
    features' dtype (uint8 or float32) when lists are ranked by L1 distance to
    them, else ``(0, d)``.
    """

    mean: np.ndarray
    components: np.ndarray
    centroids: np.ndarray
    medians: np.ndarray

    @classmethod
    def fit(
        cls,
        sample: np.ndarray,
        n_lists: int,
        n_components: int | None,
        *,
        seed: int,
        cluster: Callable,
        metric: str = "l2",
    ) -> CoarseQuantizer:
        """Learn the projection (``n_components``: an int, ``"auto"`` or None, see
        :func:`coarse_dims`) and ``n_lists`` centroids from ``sample`` ``(s, d)``, and
        for ``metric="l1"`` with ``d <=`` :data:`L1_MEDIANS_MAX_D` the cells' medians."""
        d = sample.shape[1]
        mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
        n_components = coarse_dims(n_components, d)
        if n_components is None or n_components >= d:
            components = np.zeros((0, d), np.float32)
        else:
            components = _principal_directions(sample, mean, n_components, seed)
        empty = np.zeros((0, components.shape[0] or d), np.float32)
        quantizer = cls(mean, components, empty, _no_medians(d))
        centroids = cluster(quantizer.project(sample), n_lists, seed=seed)
        centroids = np.ascontiguousarray(centroids, np.float32)
        quantizer = cls(mean, components, centroids, _no_medians(d))
        if metric != "l1" or d > L1_MEDIANS_MAX_D:
            return quantizer
        medians = _cell_medians(sample, quantizer.assign(sample), quantizer.n_lists)
        return cls(mean, components, centroids, medians)

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

        def nearest(lo: int, hi: int):
            return nearest_lists_of_rows(
                queries[lo:hi], self.components, self._projected_mean, self.centroids,
                self._centroid_norms, self.medians, n_probe, offsets, k,
            )  # fmt: skip

        found = on_shares(nearest, len(queries), n_jobs, THREAD_MIN_QUERIES)
        if len(found) == 1:
            return found[0]
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def _probe_on(self, query: np.ndarray, n_probe: int, k: int, offsets: np.ndarray):
        """The lists of one ``query`` whose nearest ``n_probe`` hold fewer than ``k`` rows:
        nearest first (equal scores: the lower list), until they hold ``k`` (or all)."""
        scores = (
            reference_l1_scores(query, self.medians)
            if len(self.medians)
            else self._scores(self.project(query[None]))[0]
        )
        order = np.lexsort((np.arange(len(scores)), scores))
        held = np.cumsum(np.diff(offsets)[order])
        return order[: max(n_probe, int(np.searchsorted(held, k)) + 1)].astype(np.int64)

    def probed_ranges(self, query: np.ndarray, n_probe: int, k: int, offsets: np.ndarray):
        """The row ranges ``(r, 2)`` of the lists one ``query`` ``(d,)`` probes, nearest
        first: :meth:`probes` for a single query."""
        ranges = nearest_lists(
            query, self.components, self._projected_mean, self.centroids,
            self._centroid_norms, self.medians, n_probe, offsets, k,
        )  # fmt: skip
        if not len(ranges):  # fewer than k rows: probe on
            lists = self._probe_on(query, n_probe, k, offsets)
            ranges = np.stack([offsets[lists], offsets[lists + 1]], axis=1)
        return ranges

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"mean": self.mean, "components": self.components, "centroids": self.centroids}
        return {**arrays, "medians": self.medians} if len(self.medians) else arrays

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
        return cls(*as32, _checked_medians(arrays.get("medians"), len(centroids), d))


def checked_pca_components(value):
    """``value`` if it is a ``pca_components``: an int >= 1, ``"auto"`` or None (else a
    ValueError naming the argument), checked before any work that needs it."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, str):
        raise ValueError(f"pca_components must be an integer >= 1, 'auto' or None; got {value!r}")
    return check_int("pca_components", value, low=1)


def coarse_dims(n_components, d: int) -> int | None:
    """``n_components`` checked, ``"auto"`` resolved for ``d`` features: 64 for rows
    wider than :data:`WIDE_D`, else 96. At 3,072 CIFAR-10 pixels 64 keep 87% of the
    variance, and 96 gain recall@10 0.003 at n_probe 28 for a quarter more build time
    and 7 us a single query; at 334 HOG + colour features 96 lift recall@10 at
    n_probe 96 from 0.9485 to 0.953 at the same speed (the cells of flatter spectra
    need more directions). ``None``: the raw features."""
    n_components = checked_pca_components(n_components)
    if n_components == "auto":
        return 64 if d > WIDE_D else 96
    return n_components


def _no_medians(d: int) -> np.ndarray:
    """The ``medians`` of a quantizer that ranks lists by their centroids."""
    return np.zeros((0, d), np.float32)


def _cell_medians(sample: np.ndarray, labels: np.ndarray, n_lists: int) -> np.ndarray:
    """``(n_lists, d)``: each list's per-feature median of the sample rows in it (the
    whole sample's for a list none fell in), in the sample's dtype."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_lists + 1))
    medians = np.empty((n_lists, sample.shape[1]), sample.dtype)
    everyone = _lower_median(sample)
    for c in range(n_lists):
        rows = sample[order[bounds[c] : bounds[c + 1]]]
        medians[c] = _lower_median(rows) if len(rows) else everyone
    return medians


def _lower_median(rows: np.ndarray) -> np.ndarray:
    """The lower middle value of each column of ``rows`` ``(m, d)``: a median (any point
    between the two middles has the least summed L1 distance), and one of the values, so
    uint8 medians stay uint8 and their L1 scores exact integers."""
    middle = (len(rows) - 1) // 2
    return np.partition(rows, middle, axis=0)[middle]


def _checked_medians(medians, n_lists: int, d: int) -> np.ndarray:
    """Saved ``medians`` (absent in files of centroid-ranked indexes) as the quantizer keeps
    them; ValueError names the array when it does not fit."""
    if medians is None:
        return _no_medians(d)
    if not isinstance(medians, np.ndarray) or medians.shape != (n_lists, d):
        raise ValueError(f"ivf array 'medians' must have shape {(n_lists, d)}")
    if medians.dtype == np.uint8:
        return np.ascontiguousarray(medians)
    if medians.dtype.kind != "f" or not np.isfinite(medians).all():
        raise ValueError("ivf array 'medians' must hold uint8 or finite floats")
    return np.ascontiguousarray(medians, np.float32)


def _principal_directions(sample: np.ndarray, mean: np.ndarray, n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).permutation(len(sample))[:PCA_SAMPLE]
    centred = sample[np.sort(rows)].astype(np.float32) - mean
    _, _, vt = randomized_svd(centred, n, n_iter=4, random_state=seed)
    return np.ascontiguousarray(vt, np.float32)
