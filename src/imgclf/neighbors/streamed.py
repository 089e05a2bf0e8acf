"""StreamedIndex: k-NN over a database larger than memory, read from disk block by block.

A :class:`~imgclf.distributed.ShardedIndex` whose shards are visited one after
another in this process: each block of database rows (a lazy
:class:`~imgclf.datasets.store.StoredArray`, or any array) is read, searched
by the engine's own :class:`~imgclf.neighbors.ExactIndex` (or, for ``"ivf"``, by
an :class:`~imgclf.neighbors.IVFIndex` of the block's rows in the whole index's
cells, scanning the lists the whole index probes), and its top-k merged into the
running one by ``(distance, row)`` (:func:`~imgclf.neighbors.kernels.topk.merge_sorted`).
Exact distances and the lower-row tie rule make the answer the in-memory index's,
element for element. Memory: two blocks (the next one is read while the current
one is searched) and their kernel copies, whatever the database's size; for
``"ivf"`` also the cells and one list number per row (8 bytes).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imgclf._kmeans import kmeans
from imgclf._validation import check_choice, check_int
from imgclf.neighbors.coarse import CoarseQuantizer, checked_pca_components
from imgclf.neighbors.ivf import (
    TRAIN_PER_LIST,
    IVFIndex,
    ProbedCells,
    default_n_lists,
    default_n_probe,
    labels_from_layout,
)
from imgclf.neighbors.kernels import row_dtype, topk
from imgclf.neighbors.search import METRICS, ExactIndex, as_features, as_queries

__all__ = ["DEFAULT_BLOCK_BYTES", "StreamedIndex", "budget_block_bytes"]

DEFAULT_BLOCK_BYTES = 128 * 2**20
ALGORITHMS = ("exact", "ivf")


def budget_block_bytes() -> int:
    """Block bytes that keep a search within the in-memory limit: an eighth of it (two
    blocks are held, each with its kernel's copy), at most :data:`DEFAULT_BLOCK_BYTES`."""
    from imgclf.datasets.store import in_memory_bytes

    return max(1, min(DEFAULT_BLOCK_BYTES, in_memory_bytes() // 8))


class StreamedIndex(ProbedCells):
    """Exact or IVF search over rows read from disk in blocks, never all in memory.

    Parameters
    ----------
    database : StoredArray or array-like, shape (n, d) or (n, H, W, C)
        A lazy store-backed array (``Dataset.images`` of a large set) or any
        array; uint8 pixels or float features.
    metric : {"l2", "l1"}
    algorithm : {"exact", "ivf"}, default="exact"
        ``"ivf"``: :class:`~imgclf.neighbors.IVFIndex`'s inverted lists. Its cells
        are fitted on IVFIndex's own sample of rows (read from the store), every row's
        list is found a block at a time, and a search scans, in each block, only the
        rows of the lists its queries probe: the answers of an ``IVFIndex`` built in
        memory with the same settings. Every search still reads every block.
    n_lists, n_probe, seed, pca_components : optional
        As :class:`~imgclf.neighbors.IVFIndex` (``"ivf"`` only).
    layout : dict of arrays, optional
        ``"ivf"``: a built index's :meth:`to_arrays` (a model file's), used instead
        of fitting the cells again.
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
        algorithm: str = "exact",
        n_lists: int | None = None,
        n_probe: int | None = None,
        seed: int = 0,
        pca_components: int | str | None = "auto",
        layout: dict | None = None,
        block_bytes: int | None = None,
        working_memory: int | None = None,
        n_jobs: int | None = None,
    ):
        self.metric = check_choice("metric", metric, METRICS)
        self.algorithm = check_choice("algorithm", algorithm, ALGORITHMS)
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
        self.coarse = None
        if self.algorithm == "ivf":
            self._fit_cells(n_lists, seed, checked_pca_components(pca_components), layout)
            self.n_probe = default_n_probe(self.n_lists) if n_probe is None else n_probe

    def __len__(self) -> int:
        return len(self.database)

    # --- the inverted lists ("ivf") ---------------------------------------------------------

    def _fit_cells(self, n_lists, seed: int, pca_components, layout) -> None:
        """The coarse quantizer (from a layout, or fitted on IVFIndex's sample) and the list
        of every row, found a block at a time."""
        n = len(self)
        if layout is not None:
            self.coarse = CoarseQuantizer.from_arrays(layout, self.n_features)
            self._set_labels(labels_from_layout(layout, n, self.coarse.n_lists))
            return
        n_lists = check_int("n_lists", default_n_lists(n) if n_lists is None else n_lists, low=1)
        if n_lists > n:
            raise ValueError(f"the database has {n} samples, fewer than n_lists={n_lists}")
        seed = check_int("seed", seed, low=0)
        size = min(n, TRAIN_PER_LIST * n_lists)  # the sample IVFIndex draws
        rows = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
        sample = as_features(self.database[rows], "database")
        self.coarse = CoarseQuantizer.fit(sample, n_lists, pca_components, seed=seed,
                                          cluster=kmeans, metric=self.metric)  # fmt: skip
        self._set_labels(np.concatenate([self.coarse.assign(b) for _, b in self._blocks()]))

    def _set_labels(self, labels: np.ndarray) -> None:
        self.labels = labels.astype(np.int64)
        counts = np.bincount(self.labels, minlength=self.coarse.n_lists)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``"ivf"``: the index as :meth:`IVFIndex.to_arrays` gives it (a model file's)."""
        if self.coarse is None:
            raise ValueError("an exact StreamedIndex has no arrays to save")
        ids = np.argsort(self.labels, kind="stable").astype(row_dtype(len(self.labels)))
        return {**self.coarse.to_arrays(), "ids": ids, "offsets": self.offsets}

    # --- search ---------------------------------------------------------------------------

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database rows of every query, as :meth:`ExactIndex.search`
        (``"ivf"``: among the probed lists, as :meth:`IVFIndex.search`).

        Returns
        -------
        distances : ndarray of float64, shape (m, k)
        indices : ndarray of int64, shape (m, k)
            Database rows; ties go to the lower one.
        """
        k = check_int("k", k, low=1, high=len(self))
        queries = as_queries(queries, self._like)
        probes = None
        if self.coarse is not None:  # the whole index's lists, as IVFIndex picks them
            probes = self.coarse.probes(queries, self.n_probe, k, self.offsets)
        best = (np.empty((len(queries), 0)), np.empty((len(queries), 0), np.int64))
        for lo, block in self._blocks():
            best = topk.merge_sorted([best, self._search_block(lo, block, queries, k, probes)], k)
        return best

    def _search_block(self, lo: int, block: np.ndarray, queries, k: int, probes):
        """One block's top-k (ids global): exact, or in the probed lists (unfilled: inf, -1)."""
        if probes is None:
            dist, rows = ExactIndex(block, self.metric, **self._limits).search(
                queries, min(k, len(block))
            )
            return dist, rows + lo
        labels = self.labels[lo : lo + len(block)]
        index = IVFIndex.from_cells(block, self.coarse, labels, self.metric, **self._limits)
        dist, rows = index.search_lists(queries, k, probes)
        return dist, np.where(rows >= 0, rows + lo, -1)

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
