"""k-NN search, sweeps and cross-validation on a Dask cluster (the ``dask`` extra).

``ShardedIndex``      the database cut into row shards, placed on the workers once;
                      every search runs the exact (or IVF) kernels on each shard and
                      merges the local top-k lists by (distance, row): the same answer
                      as one process, tie rule included
``sweep_knn``         :func:`imgclf.model_selection.sweep_knn` with the folds' searches
                      on the shards (``sweep_knn(..., client=client)`` calls it)
``cross_validate``    any classifier's folds x configurations as tasks on the workers
``StreamedIndex``     exact search over a database larger than memory, read from disk
                      block by block in this process (no Dask needed; it lives in
                      :mod:`imgclf.neighbors.streamed` and is named here too)
``connect``           a Client from a scheduler address or ``"local:N"``, with a timeout
``use_cluster``       a context in which ``KNNClassifier``, ``sweep_knn`` and
                      ``cross_validate`` given no ``client`` use this one
``ClusterError``      a scheduler out of reach, a shard lost with its worker

Modules: ``cluster`` (connecting), ``_context`` (the active client), ``shards``
(row ranges, sources, placement), ``_tasks`` (what runs on workers), ``index``
(ShardedIndex), ``sweep``, ``cv``, ``classifier``
(KNNClassifier's index in a cluster context), ``errors``. Nothing here imports
Dask until it is used, so ``import imgclf.distributed`` works without the extra.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ClusterError",
    "ShardedIndex",
    "StreamedIndex",
    "active_client",
    "connect",
    "cross_validate",
    "sweep_knn",
    "use_cluster",
]

_LAZY = {
    "ClusterError": "imgclf.distributed.errors",
    "ShardedIndex": "imgclf.distributed.index",
    "StreamedIndex": "imgclf.neighbors.streamed",  # (no Dask: it lives in neighbors/)
    "active_client": "imgclf.distributed._context",
    "use_cluster": "imgclf.distributed._context",
    "connect": "imgclf.distributed.cluster",
    "cross_validate": "imgclf.distributed.cv",
    "sweep_knn": "imgclf.distributed.sweep",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'imgclf.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
