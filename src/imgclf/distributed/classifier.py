"""The index a KNNClassifier searches when it is fitted (or loaded) inside a cluster.

``KNNClassifier`` has no ``client`` parameter (its parameters are what a model
file stores, and a client is not a setting). Its documented equivalent is
a context::

    with imgclf.distributed.use_cluster(client):
        clf = KNNClassifier(k=5, metric="l1").fit(X, y)   # a ShardedIndex on client
    clf.predict(X_test)                                   # searched on the cluster

so a scikit-learn user keeps the estimator (``clone``, ``GridSearchCV`` and model
files work as ever), and an estimator fitted there keeps searching there.
"""

from __future__ import annotations

from imgclf.distributed.index import ALGORITHMS, ShardedIndex

__all__ = ["sharded_index"]


def sharded_index(client, X, algorithm: str, metric: str, saved: dict, settings: dict):
    """A :class:`ShardedIndex` over the classifier's training rows ``X``.

    ``saved`` holds a loaded model's IVF arrays (used, not trained again);
    ``settings`` are the classifier's ``backend``, ``n_lists``, ``n_probe``,
    ``seed``, ``working_memory`` and ``n_jobs`` (``ef_search`` does not apply).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm={algorithm!r} does not run on a Dask cluster; use 'exact' or 'ivf' "
            "(or fit outside imgclf.distributed.use_cluster)"
        )
    if settings.get("backend") == "faiss":
        raise ValueError("backend='faiss' does not run on a Dask cluster; use 'auto'")
    kwargs = {name: settings[name] for name in ("working_memory", "n_jobs", "n_probe")}
    if algorithm == "ivf":
        kwargs |= {"n_lists": settings["n_lists"], "seed": settings["seed"]}
        if saved:
            kwargs["layout"] = saved
    return ShardedIndex(client, X, metric, algorithm, **kwargs)
