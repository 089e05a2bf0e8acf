"""Which index a k-NN classifier searches with: a name for each, built or reloaded alike.

=====================  ==========================================================
``"exact"``            :class:`~imgclf.neighbors.ExactIndex` (or faiss's flat index
                       with ``backend="faiss"``): every neighbour, L1 and L2
``"ivf"``              :class:`~imgclf.neighbors.IVFIndex`: imgclf's inverted lists,
                       L1 and L2, ``n_lists`` / ``n_probe``
``"hnsw"``             :class:`~imgclf.neighbors.hnsw_backend.HnswIndex` (hnswlib):
                       L2, ``ef_search``
``"faiss:<factory>"``  :class:`~imgclf.neighbors.faiss_backend.FaissIndex` with any
                       faiss factory string, e.g. ``"faiss:IVF1024,Flat"``, ``"faiss:HNSW32"``
=====================  ==========================================================

Approximate indexes keep their built state as plain arrays
(:meth:`to_arrays`), which model files store, so loading a model never
trains its index again.
"""

from __future__ import annotations

import re

from imgclf.neighbors.search import METRICS, ExactIndex

__all__ = [
    "ALGORITHMS",
    "build_index",
    "check_algorithm",
    "is_approximate",
    "load_index",
    "metrics_of",
]

ALGORITHMS = ("exact", "ivf", "hnsw", "faiss:<factory>")
FAISS_PREFIX = "faiss:"


def check_algorithm(algorithm) -> str:
    """``algorithm`` if it names an index, else a ValueError listing the names."""
    if isinstance(algorithm, str) and (
        algorithm in ("exact", "ivf", "hnsw")
        or (algorithm.startswith(FAISS_PREFIX) and algorithm[len(FAISS_PREFIX) :].strip())
    ):
        return algorithm
    accepted = ", ".join(repr(a) for a in ALGORITHMS)
    raise ValueError(f"algorithm must be one of {accepted}; got {algorithm!r}")


def is_approximate(algorithm: str) -> bool:
    return algorithm != "exact"


# faiss factories that search L1 correctly (measured on faiss 1.15; faiss_backend refuses others)
_FAISS_L1 = re.compile(r"Flat|IVF\d+,Flat|HNSW\d+(,Flat)?")


def metrics_of(algorithm: str) -> tuple[str, ...]:
    """The metrics ``algorithm`` searches: what a search grid may try with it."""
    if algorithm == "hnsw":
        return ("l2",)
    factory = algorithm[len(FAISS_PREFIX) :] if algorithm.startswith(FAISS_PREFIX) else None
    if factory is not None and not _FAISS_L1.fullmatch(factory.strip()):
        return ("l2",)
    return METRICS


def _index_class(algorithm: str):
    if algorithm == "ivf":
        from imgclf.neighbors.ivf import IVFIndex

        return IVFIndex
    if algorithm == "hnsw":
        from imgclf.neighbors.hnsw_backend import HnswIndex

        return HnswIndex
    from imgclf.neighbors.faiss_backend import FaissIndex

    return FaissIndex


def _settings(algorithm: str, settings: dict) -> dict:
    """The keyword arguments ``algorithm``'s index takes, from the classifier's parameters."""
    common = {"working_memory": settings["working_memory"], "n_jobs": settings["n_jobs"]}
    if algorithm == "ivf":
        return {**common, "n_probe": settings["n_probe"], "seed": settings["seed"]}
    if algorithm == "hnsw":
        return {**common, "ef_search": settings["ef_search"], "seed": settings["seed"]}
    factory = algorithm[len(FAISS_PREFIX) :]
    tuning = {
        name: settings[name] for name in ("n_probe", "ef_search") if settings[name] is not None
    }
    return {**common, "factory": factory, "seed": settings["seed"], **tuning}


def build_index(X, algorithm: str, metric: str, **settings):
    """A new index over ``X`` for ``algorithm``; ``settings`` are the classifier's
    ``backend``, ``n_lists``, ``n_probe``, ``ef_search``, ``seed``, ``working_memory``
    and ``n_jobs``."""
    if algorithm == "exact":
        return _exact_index(X, metric, settings)
    kwargs = _settings(algorithm, settings)
    if algorithm == "ivf":
        kwargs["n_lists"] = settings["n_lists"]
    return _index_class(algorithm)(X, metric, **kwargs)


def load_index(X, arrays: dict, algorithm: str, metric: str, *, trusted: bool, **settings):
    """The index saved as ``arrays`` (:meth:`to_arrays`) over ``X``, without rebuilding it.

    ``trusted``: the arrays come from a model file whose signature was verified,
    so faiss or hnswlib may parse their bytes in this process straight away.
    """
    cls = _index_class(algorithm)
    kwargs = _settings(algorithm, settings)
    if algorithm != "ivf":
        kwargs["trusted"] = trusted
    return cls.from_arrays(X, arrays, metric, **kwargs)


def _exact_index(X, metric: str, settings: dict):
    limits = {"working_memory": settings["working_memory"], "n_jobs": settings["n_jobs"]}
    if settings["backend"] == "faiss":
        from imgclf.neighbors.faiss_backend import FaissIndex, faiss_available

        if not faiss_available():
            raise ImportError("backend='faiss' needs the faiss extra: pip install 'imgclf[faiss]'")
        return FaissIndex(X, metric, **limits)
    return ExactIndex(X, metric, **limits)
