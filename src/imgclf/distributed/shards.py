"""Where a database's rows live on a cluster: row ranges, their sources, their workers.

A database of ``n`` rows is cut into contiguous row ranges (shards). Each
shard is read from its *source* straight onto one worker, once:

- :class:`ArraySource`: rows the client holds (a NumPy array), scattered to
  the worker; the client keeps the array, so a shard lost with its worker is
  scattered again;
- a lazy, store-backed array (anything with ``shard_reader``, e.g. a Zarr
  store's images): the worker reads its rows itself, the client never holds them.

A :class:`Placement` is the shards of one database on one client: their
ranges, workers and data futures, and how to put a lost shard back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from imgclf._validation import check_int
from imgclf.distributed import _tasks
from imgclf.distributed.cluster import worker_records
from imgclf.distributed.errors import ClusterError
from imgclf.neighbors.search import as_features

__all__ = [
    "MAX_SHARD_BYTES",
    "ArraySource",
    "Placement",
    "ReaderSource",
    "Shard",
    "shard_bounds",
    "source_of",
]

MAX_SHARD_BYTES = 2 * 2**30  # a shard is at most 2 GiB of rows unless n_shards says otherwise


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """``n_shards`` contiguous, balanced row ranges ``[lo, hi)`` covering ``0..n``.

    Examples
    --------
    >>> shard_bounds(10, 3)
    [(0, 3), (3, 6), (6, 10)]
    """
    n_shards = check_int("n_shards", n_shards, low=1, high=max(1, n))
    edges = [n * i // n_shards for i in range(n_shards + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


class ArraySource:
    """Rows the client holds: ``array`` ``(n, d)`` uint8 or float32 features."""

    def __init__(self, array: np.ndarray):
        self.array = array

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def put(self, client, lo: int, hi: int, worker: str):
        """A future of rows ``lo..hi`` in ``worker``'s memory (scattered: sent once)."""
        return client.scatter(self.array[lo:hi], workers=[worker], hash=False)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Some rows on the client (a training sample)."""
        return self.array[positions]


class ReaderSource:
    """Rows a worker reads itself through ``reader(lo, hi)`` (picklable; e.g. a Zarr store)."""

    def __init__(self, reader, shape: tuple[int, int], dtype):
        self.reader, self.shape, self.dtype = reader, tuple(shape), np.dtype(dtype)

    def put(self, client, lo: int, hi: int, worker: str):
        return client.submit(
            _tasks.read_rows, self.reader, lo, hi, workers=[worker], pure=False,
            allow_other_workers=True,
        )  # fmt: skip

    def rows(self, positions: np.ndarray) -> np.ndarray:
        return as_features(self.reader.take(positions), "database")


def source_of(database) -> ArraySource | ReaderSource:
    """The source of ``database``: a store-backed lazy array is read by the workers,
    anything else becomes features on the client (:func:`imgclf.neighbors.search.as_features`)."""
    if hasattr(database, "shard_reader"):
        reader = database.shard_reader()
        return ReaderSource(reader, reader.shape, reader.dtype)
    return ArraySource(as_features(database, "database"))


@dataclass
class Shard:
    """Rows ``lo..hi`` of the database, held on ``worker`` as ``data`` (a future)."""

    number: int
    lo: int
    hi: int
    worker: str
    data: object = field(repr=False, default=None)

    def __str__(self) -> str:
        return f"shard {self.number} (database rows {self.lo}..{self.hi - 1})"


class Placement:
    """The shards of one source on one client's workers.

    Parameters
    ----------
    client : dask.distributed.Client
    source : ArraySource or ReaderSource
    n_shards : int, optional
        Default: one per worker, more if a shard would exceed :data:`MAX_SHARD_BYTES`.
    """

    def __init__(self, client, source, n_shards: int | None = None):
        self.client, self.source = client, source
        n, d = source.shape
        workers = live_workers(client)
        if n_shards is None:
            row_bytes = d * np.dtype(source.dtype).itemsize
            n_shards = max(len(workers), math.ceil(n * row_bytes / MAX_SHARD_BYTES))
        bounds = shard_bounds(n, min(int(n_shards), n))
        self.shards = [
            Shard(i, lo, hi, workers[i % len(workers)]) for i, (lo, hi) in enumerate(bounds)
        ]
        for shard in self.shards:
            shard.data = source.put(client, shard.lo, shard.hi, shard.worker)

    def __len__(self) -> int:
        return self.source.shape[0]

    def lost(self) -> list[Shard]:
        """Shards whose data is gone (its worker died) or whose worker left."""
        alive = set(live_workers(self.client, allow_none=True))
        return [s for s in self.shards if s.data.status != "finished" or s.worker not in alive]

    def replace(self, shard: Shard) -> None:
        """Put ``shard`` back from its source on the live worker holding fewest shards."""
        alive = live_workers(self.client, allow_none=True)
        if not alive:
            raise ClusterError(f"{shard} was lost and no worker is left to take it")
        load = {w: 0 for w in alive}
        for other in self.shards:
            if other is not shard and other.worker in load:
                load[other.worker] += 1
        shard.worker = min(alive, key=lambda w: (load[w], w))
        shard.data = self.source.put(self.client, shard.lo, shard.hi, shard.worker)

    def release(self) -> None:
        for shard in self.shards:
            if shard.data is not None:
                shard.data.release()
                shard.data = None


def live_workers(client, *, allow_none: bool = False) -> list[str]:
    """Addresses of the workers now connected, sorted; a ClusterError if there are none."""
    workers = sorted(worker_records(client))
    if not workers and not allow_none:
        raise ClusterError(f"the Dask cluster at {client.scheduler.address} has no workers")
    return workers
