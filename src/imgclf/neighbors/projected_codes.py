"""Float features as uint8 codes of their leading principal components: what an L2 IVF scans.

``code(x) = scalar(P (x - mean))``: ``P`` ``(c, d)`` has orthonormal rows, the
first ``c`` principal directions of a sample, and ``scalar`` is
:class:`~imgclf.neighbors.scalar_codes.ScalarCodes` fitted on the projected
database (one step for every direction). For any two rows

    ``|x - y|^2 = |P (x - y)|^2 + |r(x) - r(y)|^2``

where ``r`` is the part outside the kept directions: the code distance
under-counts by the residual's share (and rounds, as scalar codes do). On
HOG + colour features of CIFAR-10 (334 numbers) 128 directions keep 96% of
the variance; ranking the whole database by 128 code numbers and measuring the
best 40 of each query exactly finds all of its 10 nearest rows (300 queries),
as 352 plain codes do with the best 20 — at 2.75x fewer bytes to scan.

Only for L2: a rotation keeps Euclidean distances, not L1 ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils.extmath import randomized_svd

from imgclf._validation import check_int
from imgclf.neighbors.scalar_codes import ScalarCodes

__all__ = ["ProjectedCodes", "checked_code_dims"]

CHUNK = 4096  # rows projected at once
PCA_SAMPLE = 8192  # rows the principal directions are estimated from
RERANK_FACTOR = 3  # an index measures the best 3 k codes of a query exactly (plain codes: 2 k)
# "auto": the fewest directions whose best AUTO_DEPTH of each of AUTO_QUERIES sample rows
# hold AUTO_RECALL of its AUTO_K nearest among the rest of the sample. Stricter than the
# index's 3 k: a sample's neighbours are farther apart than the database's. On HOG +
# colour the sample's best 3 k held 99.7% at 96 directions, which cost the index 0.011
# recall@10; its best 2 k (98.7% at 96, 99.8% at 128) tell the two apart.
AUTO_K, AUTO_DEPTH, AUTO_QUERIES, AUTO_RECALL = 10, 20, 256, 0.995
DIM_STEP = 32  # directions come in whole 32-byte chunks (the row kernels' unit)
MAX_SHARE = 0.5  # ... and at most half the plain codes' width, or plain codes are as good


@dataclass(frozen=True)
class ProjectedCodes:
    """``mean (d,)`` and ``components (c, d)`` float32, and the scalar codes of the
    ``c`` projections: see the module docstring.

    >>> rows = np.random.default_rng(0).normal(size=(500, 64)).astype(np.float32)
    >>> codes = ProjectedCodes.fit(rows, 32, seed=0)
    >>> codes.encode(rows[:3]).shape, codes.n_dims
    ((3, 32), 32)
    """

    mean: np.ndarray
    components: np.ndarray
    scalar: ScalarCodes

    @classmethod
    def fit(cls, database: np.ndarray, n_dims: int, *, seed: int = 0) -> ProjectedCodes:
        """Codes of ``database`` ``(n, d)`` floats on its first ``n_dims < d`` principal
        directions (estimated from :data:`PCA_SAMPLE` rows)."""
        mean, centred = _centred_sample(database, seed)
        _, _, directions = randomized_svd(centred, n_dims, n_iter=4, random_state=seed)
        return cls._on(database, mean, directions)

    @classmethod
    def fit_auto(cls, database: np.ndarray, *, seed: int = 0) -> ProjectedCodes | None:
        """Codes on the fewest directions, in whole :data:`DIM_STEP` chunks, that rank
        neighbours well enough (:func:`_enough_directions`; HOG + colour's 334: 128);
        ``None`` when that would take more than :data:`MAX_SHARE` of the plain codes'
        padded width (their scan would save too little for what the projection loses)
        or the sample is too small to tell."""
        d = database.shape[1]
        widest = int(-(-d // DIM_STEP) * DIM_STEP * MAX_SHARE) // DIM_STEP * DIM_STEP
        if widest < DIM_STEP or widest >= d or len(database) < 4 * AUTO_QUERIES:
            return None
        mean, centred = _centred_sample(database, seed)
        _, _, directions = randomized_svd(centred, widest, n_iter=4, random_state=seed)
        dims = _enough_directions(centred, directions.astype(np.float32))
        return None if dims is None else cls._on(database, mean, directions[:dims])

    @classmethod
    def _on(cls, database: np.ndarray, mean: np.ndarray, directions: np.ndarray):
        components = np.ascontiguousarray(directions, np.float32)
        return cls(mean, components, ScalarCodes.fit(_project(database, mean, components)))

    @property
    def n_dims(self) -> int:
        return len(self.components)

    def project(self, rows: np.ndarray) -> np.ndarray:
        """``(rows - mean) @ components.T``, ``(m, c)`` float32."""
        return _project(rows, self.mean, self.components)

    def encode(
        self, rows: np.ndarray, order: np.ndarray | None = None, width: int | None = None
    ) -> np.ndarray:
        """As :meth:`ScalarCodes.encode`, of the projected rows: ``(m, width or c)``."""
        return self.scalar.encode(self.project(rows), order=order, width=width)

    def reference_encode(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`encode` the NumPy way (for tests)."""
        projected = (np.asarray(rows, np.float64) - self.mean) @ self.components.T
        return self.scalar.reference_encode(projected.astype(np.float32))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "code_mean": self.mean,
            "code_components": self.components,
            **self.scalar.to_arrays(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict, d: int) -> ProjectedCodes | None:
        """Saved codes (``None`` when the arrays hold no projection); ValueError names
        the array that does not fit."""
        mean, components = arrays.get("code_mean"), arrays.get("code_components")
        if mean is None and components is None:
            return None
        if not _finite_floats(mean, (d,)):
            raise ValueError(f"ivf array 'code_mean' must be {d} finite floats")
        if (
            not _finite_floats(components, None)
            or components.shape[1:] != (d,)
            or not (0 < len(components) < d)
        ):
            raise ValueError(f"ivf array 'code_components' must be (c, {d}) finite floats, c < {d}")
        scalar = ScalarCodes.from_arrays(arrays, len(components))
        if scalar is None:
            raise ValueError("ivf arrays 'code_low' and 'code_step' must come with the projection")
        as32 = (np.ascontiguousarray(a, np.float32) for a in (mean, components))
        return cls(*as32, scalar)


def checked_code_dims(value):
    """``value`` if it is a ``code_dims``: an int >= 1, ``"auto"`` or None (else a
    ValueError naming the argument)."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, str):
        raise ValueError(f"code_dims must be an integer >= 1, 'auto' or None; got {value!r}")
    return check_int("code_dims", value, low=1)


def _enough_directions(centred: np.ndarray, directions: np.ndarray) -> int | None:
    """The fewest leading ``directions`` (a multiple of :data:`DIM_STEP`) whose projected
    distances put :data:`AUTO_RECALL` of the :data:`AUTO_K` nearest neighbours of
    :data:`AUTO_QUERIES` rows of ``centred`` (among its other rows) in their best
    :data:`AUTO_DEPTH`: what the index's re-ranking then finds. Measured, not
    judged by the variance kept: clustered rows keep most of theirs in a few directions
    while their nearest neighbours differ in the rest."""
    queries, base = centred[:AUTO_QUERIES], centred[AUTO_QUERIES:]
    truth = _nearest(queries, base, AUTO_K)
    for dims in range(DIM_STEP, len(directions) + 1, DIM_STEP):
        axes = directions[:dims].T
        found = _nearest(queries @ axes, base @ axes, AUTO_DEPTH)
        hits = sum(np.isin(t, f).sum() for t, f in zip(truth, found, strict=True))
        if hits >= AUTO_RECALL * truth.size:
            return dims
    return None


def _nearest(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Each query's ``k`` nearest rows of ``base`` (L2, in no particular order)."""
    scores = np.einsum("ij,ij->i", base, base)[None] - 2 * queries @ base.T
    return np.argpartition(scores, k - 1, axis=1)[:, :k]


def _centred_sample(database: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The database mean ``(d,)`` and up to :data:`PCA_SAMPLE` rows minus it."""
    mean = database.mean(axis=0, dtype=np.float64).astype(np.float32)
    n = len(database)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:PCA_SAMPLE])
    return mean, database[rows].astype(np.float32) - mean


def _project(rows: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``(rows - mean) @ components.T`` float32, :data:`CHUNK` rows at a time (no
    centred copy of a whole database)."""
    out = np.empty((len(rows), len(components)), np.float32)
    for lo in range(0, len(rows), CHUNK):
        chunk = np.asarray(rows[lo : lo + CHUNK], np.float32) - mean
        np.matmul(chunk, components.T, out=out[lo : lo + CHUNK])
    return out


def _finite_floats(value, shape) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype.kind == "f"
        and (value.shape == shape if shape else value.ndim == 2)
        and bool(np.isfinite(value).all())
    )
