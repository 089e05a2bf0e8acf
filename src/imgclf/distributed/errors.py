"""The error a cluster raises: imgclf's own, naming the scheduler or the shard."""

from __future__ import annotations

from imgclf.errors import ImgclfError

__all__ = ["ClusterError"]


class ClusterError(ImgclfError, RuntimeError):
    """A Dask scheduler could not be reached, or work was lost with its workers.

    Messages name the scheduler address, or the shard and its database rows,
    and what was tried (the timeout, the retries).
    """
