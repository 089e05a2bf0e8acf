"""StreamedIndex: exact k-NN over a database larger than memory, read from disk block by block.

A :class:`ShardedIndex` whose shards are visited one after another in this
process: each block of database rows (a lazy
:class:`~imgclf.datasets.store.StoredArray`, or any array) is read, searched
by the engine's own :class:`~imgclf.neighbors.ExactIndex`, and its top-k
merged into the running one by ``(distance, row)``
(:func:`~imgclf.neighbors.kernels.topk.merge_sorted`). Exact distances and
the lower-row tie rule make the answer the in-memory engine's, element for
element. Memory: two blocks (the next one is read while the current one is
searched) and their kernel copies, whatever the database's size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.neighbors.kernels import topk
from imgclf.neighbors.search import METRICS, ExactIndex, as_features, match_queries

__all__ = ["DEFAULT_BLOCK_BYTES", "StreamedIndex", "budget_block_bytes"]

DEFAULT_BLOCK_BYTES = 128 * 2**20


def budget_block_bytes() -> int:
    """Block bytes that keep a search within the in-memory limit: an eighth of it (two
    blocks are held, each with its kernel's copy), at most :data:`DEFAULT_BLOCK_BYTES`."""
    from imgclf.datasets.store import in_memory_bytes

    return max(1, min(DEFAULT_BLOCK_BYTES, in_memory_bytes() // 8))


class StreamedIndex:
    """Exact search over rows read from disk in blocks, never all in memory.

    Parameters
    ----------
    database : StoredArray or array-like, shape (n, d) or (n, H, W, C)
        A lazy store-backed array (``Dataset.images`` of a large set) or any
        array; uint8 pixels or float features.
    metric : {"l2", "l1"}
    block_bytes : int, optional
        Database bytes read and searched at once (default 128 MiB).
    working_memory, n_jobs : optional
        As :class:`~imgclf.neighbors.ExactIndex`, for each block.

    Examples
    --------
    >>> db = np.arange(40, dtype=np.uint8).reshape(20, 2)
    >>> StreamedIndex(db, "l1", block_bytes=8).search(db[[3]], k=2)[1].tolist()
    [[3, 2]]
    """

    def __init__(
        self,
        database,
        metric: str = "l2",
        *,
        block_bytes: int | None = None,
        working_memory: int | None = None,
        n_jobs: int | None = None,
    ):
        self.metric = check_choice("metric", metric, METRICS)
        self.database = database
        n = len(database)
        if n == 0:
            raise ValueError("database is empty")
        first = as_features(_rows(database, 0, 1), "database")
        self._like = first[:0]
        self.n_features = first.shape[1]
        block_bytes = check_int("block_bytes", block_bytes or DEFAULT_BLOCK_BYTES, low=1)
        self.block_rows = max(1, block_bytes // first[0].nbytes)
        self._limits = {"working_memory": working_memory, "n_jobs": n_jobs}

    def __len__(self) -> int:
        return len(self.database)

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database rows of every query, as :meth:`ExactIndex.search`.

        Returns
        -------
        distances : ndarray of float64, shape (m, k)
        indices : ndarray of int64, shape (m, k)
            Database rows; ties go to the lower one.
        """
        k = check_int("k", k, low=1, high=len(self))
        queries = match_queries(as_features(queries, "queries"), self._like)
        best = (np.empty((len(queries), 0)), np.empty((len(queries), 0), np.int64))
        for lo, block in self._blocks():
            dist, rows = ExactIndex(block, self.metric, **self._limits).search(
                queries, min(k, len(block))
            )
            best = topk.merge_sorted([best, (dist, rows + lo)], k)
        return best

    def _blocks(self):
        """``(start, rows)`` of every block, the next one read on a thread meanwhile."""
        starts = range(0, len(self), self.block_rows)
        with ThreadPoolExecutor(1) as reader:
            pending = reader.submit(self._read, starts[0])
            for i, lo in enumerate(starts):
                block = pending.result()
                if i + 1 < len(starts):
                    pending = reader.submit(self._read, starts[i + 1])
                yield lo, block
                del block

    def _read(self, lo: int) -> np.ndarray:
        return as_features(_rows(self.database, lo, lo + self.block_rows), "database")


def _rows(database, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo..hi``: a store's chunk reads, or a slice of an array."""
    read = getattr(database, "read", None)
    return read(lo, hi) if callable(read) else np.asarray(database[lo:hi])
