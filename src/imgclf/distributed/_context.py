"""The cluster that imgclf's k-NN and model selection use when given no ``client``.

A :class:`contextvars.ContextVar`, not a process-wide global: the threads of
an in-process Dask worker start with an empty context, so work running *on*
the cluster never tries to send itself to the cluster again.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["active_client", "use_cluster"]

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("imgclf_dask_client", default=None)


def active_client():
    """The ``dask.distributed.Client`` of the innermost :func:`use_cluster`, or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def use_cluster(client) -> Iterator[object]:
    """Within this block, k-NN search and model selection run on ``client``'s cluster.

    ``KNNClassifier.fit`` builds a :class:`~imgclf.distributed.ShardedIndex`
    (exact or ``"ivf"``), and :func:`~imgclf.model_selection.sweep_knn` and
    :func:`~imgclf.model_selection.cross_validate` spread their folds, unless
    given ``client=`` themselves. ``client=None`` runs everything locally again.

    Parameters
    ----------
    client : dask.distributed.Client or None

    Examples
    --------
    >>> with use_cluster(None):
    ...     active_client() is None
    True
    """
    token = _ACTIVE.set(client)
    try:
        yield client
    finally:
        _ACTIVE.reset(token)
