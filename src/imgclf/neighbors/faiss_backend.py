"""The same exact search through faiss's IndexFlat, when the ``faiss`` extra is installed.

faiss works in float32 and returns squared L2 distances; this wrapper converts
to the engine's conventions (float64 true distances, ``(m, k)`` arrays), so
either backend can sit behind :class:`~imgclf.neighbors.KNNClassifier`.
Ties between equal distances may be ordered differently from imgclf's own
engine (which always prefers the lower index).
"""

from __future__ import annotations

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.neighbors.search import METRICS, as_features

__all__ = ["FaissIndex", "faiss_available"]


def faiss_available() -> bool:
    """True if ``import faiss`` works."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class FaissIndex:
    """An exact faiss ``IndexFlat`` (METRIC_L2 or METRIC_L1) with ExactIndex's interface."""

    def __init__(self, database, metric: str = "l2", *, n_jobs: int | None = None, **_ignored):
        try:
            import faiss
        except ImportError as exc:
            raise ImportError(
                "backend='faiss' needs the faiss extra: pip install 'imgclf[faiss]'"
            ) from exc
        self.metric = check_choice("metric", metric, METRICS)
        database = as_features(database, "database").astype(np.float32)
        self.n_features = database.shape[1]
        kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_L1
        self._index = faiss.IndexFlat(self.n_features, kind)
        self._index.add(database)
        if n_jobs:
            faiss.omp_set_num_threads(n_jobs)

    def __len__(self) -> int:
        return self._index.ntotal

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as :meth:`imgclf.neighbors.ExactIndex.search`."""
        k = check_int("k", k, low=1, high=len(self))
        queries = as_features(queries, "queries").astype(np.float32)
        if queries.shape[1] != self.n_features:
            raise ValueError(
                f"queries have {queries.shape[1]} features but the database has {self.n_features}"
            )
        dist, index = self._index.search(queries, k)
        dist = dist.astype(np.float64)
        if self.metric == "l2":
            dist = np.sqrt(np.maximum(dist, 0))
        return dist, index.astype(np.int64)
