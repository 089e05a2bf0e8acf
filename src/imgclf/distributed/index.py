"""ShardedIndex: exact or IVF k-NN search over a database spread across Dask workers.

Placement. The database is cut into row shards (:mod:`~imgclf.distributed.shards`),
each sent to (or read by) one worker once, where the worker builds the engine's
own index over it (:class:`~imgclf.neighbors.ExactIndex`, or an
:class:`~imgclf.neighbors.IVFIndex` whose cells are the whole database's).

Search. Each block of queries is sent to every shard; each worker runs the
existing kernels and answers with its local top-k, rows named by their global
ids; the client merges the lists by ``(distance, id)``
(:func:`~imgclf.neighbors.kernels.topk.merge_sorted`). Every distance is exact
and ties go to the lower row in both engines, so the answer is the single
process's, element for element. For ``"ivf"`` the client computes each query's
probed lists from the whole index's list sizes (as :class:`IVFIndex` does) and
every shard scans its part of exactly those lists.

Faults. A shard whose worker died is put back from its source on a live
worker and the search runs again (``retries`` times); after that, or with no
worker left, a :class:`~imgclf.distributed.ClusterError` names the shard.
A search never returns a partial top-k.
"""

from __future__ import annotations

import time
from concurrent.futures import CancelledError

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.distributed import _tasks
from imgclf.distributed.errors import ClusterError
from imgclf.distributed.shards import Placement, live_workers, source_of
from imgclf.neighbors.coarse import checked_pca_components
from imgclf.neighbors.ivf import ProbedCells
from imgclf.neighbors.kernels import topk
from imgclf.neighbors.search import METRICS, as_queries

__all__ = ["ALGORITHMS", "ShardedIndex"]

ALGORITHMS = ("exact", "ivf")
QUERY_BLOCK_BYTES = 64 * 2**20  # queries sent to the shards at once
POLL_S = 0.5  # how often a wait checks that the cluster still has workers
NO_WORKER_GRACE_S = 20.0  # a cluster without workers this long: give up


class _Lost(Exception):
    """A shard's work failed because its worker (or its data) went away."""

    def __init__(self, shard, cause: BaseException):
        super().__init__(f"{shard}: {type(cause).__name__}: {cause}")
        self.shard, self.cause = shard, cause


class ShardedIndex(ProbedCells):
    """k-nearest-neighbour search over a database sharded across a Dask cluster.

    Parameters
    ----------
    client : dask.distributed.Client
    database : array-like, shape (n, d) or (n, H, W, C), or a store-backed lazy array
        uint8 pixels or float features, as :class:`~imgclf.neighbors.ExactIndex`
        takes. A lazy array (``Dataset.images`` of a Zarr-backed set) is read by
        the workers themselves, shard by shard.
    metric : {"l2", "l1"}
    algorithm : {"exact", "ivf"}
        ``"ivf"``: :class:`~imgclf.neighbors.IVFIndex`'s inverted lists; with the
        same ``n_lists``, ``n_probe`` and ``seed``, the same answers as it.
    n_shards : int, optional
        Default: one per worker (more if a shard would pass 2 GiB).
    n_lists, n_probe, seed, pca_components : as :class:`~imgclf.neighbors.IVFIndex`.
    working_memory : int, optional
        Each shard's distance-block budget in bytes (default 256 MiB).
    n_jobs : int, optional
        Threads per shard search (default: the worker's threads).
    retries : int, default=2
        Searches repeated after putting lost shards back.
    timeout : float, optional
        Seconds one search attempt may take (default: no limit).
    layout : dict, optional
        ``"ivf"``: a built index's arrays (:meth:`IVFIndex.to_arrays`, as a model file
        keeps them) over this same database: its cells are used, not trained again.

    Examples
    --------
    >>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
    >>> cluster = LocalCluster(n_workers=2, processes=False)  # doctest: +SKIP
    >>> with Client(cluster) as client:  # doctest: +SKIP
    ...     index = ShardedIndex(client, train.images, "l1")
    ...     dist, idx = index.search(test.images[:100], k=10)  # = ExactIndex's answer
    """

    def __init__(
        self,
        client,
        database,
        metric: str = "l2",
        algorithm: str = "exact",
        *,
        n_shards: int | None = None,
        n_lists: int | None = None,
        n_probe: int | None = None,
        seed: int = 0,
        pca_components: int | str | None = "auto",
        working_memory: int | None = None,
        n_jobs: int | None = None,
        retries: int = 2,
        timeout: float | None = None,
        layout: dict | None = None,
    ):
        settings = _settings(n_lists, n_probe, seed, pca_components, working_memory, n_jobs)
        settings["layout"] = layout
        if n_shards is not None:
            check_int("n_shards", n_shards, low=1)
        placement = Placement(client, source_of(database), n_shards)
        self._owns_placement = True
        self._setup(placement, None, metric, algorithm, settings, retries, timeout)

    @classmethod
    def over_rows(
        cls,
        placement: Placement,
        rows: np.ndarray,
        metric: str,
        algorithm: str = "exact",
        *,
        retries: int = 2,
        timeout: float | None = None,
        **settings,
    ) -> ShardedIndex:
        """An index over rows ``rows`` (in that order) of data already placed: a fold's
        training rows. Its ids are positions in ``rows``, as a local index over
        ``database[rows]`` would number them; the placement stays its owner's."""
        index = cls.__new__(cls)
        index._owns_placement = False
        settings = _settings(**settings)
        index._setup(placement, _unique_rows(rows, len(placement)), metric, algorithm,
                     settings, retries, timeout)  # fmt: skip
        return index

    def _setup(self, placement, rows, metric, algorithm, settings, retries, timeout) -> None:
        self.metric = check_choice("metric", metric, METRICS)
        self.algorithm = check_choice("algorithm", algorithm, ALGORITHMS)
        self.client, self.placement, self.rows = placement.client, placement, rows
        self.retries = check_int("retries", retries, low=0)
        self.timeout = timeout
        self._settings = settings
        self._like = np.empty((0, placement.source.shape[1]), placement.source.dtype)
        self._where = None if rows is None else _positions(rows, len(placement))
        self.coarse, self._coarse_future, self._labels = None, None, None
        if self.algorithm == "ivf":
            self._fit_cells()
        self._shards = [self._build(shard) for shard in placement.shards]

    # --- facts -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.placement) if self.rows is None else len(self.rows)

    @property
    def n_features(self) -> int:
        return self._like.shape[1]

    @property
    def n_shards(self) -> int:
        return len(self.placement.shards)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``"ivf"``: the whole index as :meth:`IVFIndex.to_arrays` gives it (model files)."""
        if self.algorithm != "ivf":
            return {}
        return {**self.coarse.to_arrays(), "ids": self._list_ids, "offsets": self.offsets}

    def __repr__(self) -> str:
        return (
            f"ShardedIndex({self.algorithm}, {self.metric}: {len(self):,} rows x "
            f"{self.n_features} in {self.n_shards} shards)"
        )

    def __getstate__(self):
        raise TypeError("a ShardedIndex holds a Dask client and cannot be pickled")

    # --- building --------------------------------------------------------------------------

    def _ids(self, shard) -> np.ndarray | None:
        """What shard's rows answer with: None (their database rows) or positions / -1."""
        return None if self._where is None else self._where[shard.lo : shard.hi]

    def _fit_cells(self) -> None:
        """The coarse quantizer (fitted on a worker, from :class:`IVFIndex`'s own sample) and
        every row's list, computed by the shard holding it."""
        from imgclf.neighbors.ivf import TRAIN_PER_LIST, default_n_lists

        s, n = self._settings, len(self)
        if s.get("layout"):
            self._use_layout(s["layout"])
            return
        n_lists = check_int("n_lists", s["n_lists"] or default_n_lists(n), low=1)
        if n_lists > n:
            raise ValueError(f"the database has {n} samples, fewer than n_lists={n_lists}")
        size = min(n, TRAIN_PER_LIST * n_lists)
        sample = np.sort(np.random.default_rng(s["seed"]).choice(n, size, replace=False))
        sample_rows = self._rows_future(self._global(sample))
        fitted = self.client.submit(
            _tasks.fit_coarse,
            sample_rows,
            n_lists,
            s["pca_components"],
            s["seed"],
            self.metric,
            pure=False,
        )
        self.coarse = _result(fitted, "fitting the IVF cells", self.timeout)
        self._coarse_future = self._scatter(self.coarse)
        labels = np.empty(n, np.int64)
        parts = []
        for shard in self.placement.shards:
            local = self._local(shard)
            task = self.client.submit(
                _tasks.shard_labels, shard.data, self._coarse_future, local, pure=False,
                workers=[shard.worker], allow_other_workers=True,
            )  # fmt: skip
            parts.append((shard, local, task))
        for shard, local, task in parts:
            labels[self._answer(shard, local)] = _result(task, str(shard), self.timeout)
        self._set_labels(labels)

    def _set_labels(self, labels: np.ndarray) -> None:
        """Every row's list: the whole index's layout, and ``n_probe``."""
        n_lists, s = self.coarse.n_lists, self._settings
        self._labels = labels
        self._list_ids = np.argsort(labels, kind="stable").astype(np.int64)
        counts = np.bincount(labels, minlength=n_lists)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n_probe = s["n_probe"] if s["n_probe"] is not None else _default_probe(n_lists)

    def _use_layout(self, layout: dict) -> None:
        """Cells and lists from saved arrays, checked as :meth:`IVFIndex.from_arrays` checks."""
        from imgclf.neighbors.coarse import CoarseQuantizer
        from imgclf.neighbors.ivf import labels_from_layout

        self.coarse = CoarseQuantizer.from_arrays(layout, self.n_features)
        self._coarse_future = self._scatter(self.coarse)
        self._set_labels(labels_from_layout(layout, len(self), self.coarse.n_lists))

    def _local(self, shard) -> np.ndarray | None:
        """Local rows of ``shard`` that belong to the index (None: all of them)."""
        ids = self._ids(shard)
        return None if ids is None else np.flatnonzero(ids >= 0)

    def _answer(self, shard, local) -> np.ndarray:
        """Positions (in the index's order) of ``shard``'s rows ``local``."""
        if local is None:
            return np.arange(shard.lo, shard.hi)
        return self._ids(shard)[local]

    def _global(self, positions: np.ndarray) -> np.ndarray:
        return positions if self.rows is None else self.rows[positions]

    def _build(self, shard):
        """A future of ``shard``'s :class:`~imgclf.distributed._tasks.ShardIndex`."""
        s = self._settings
        cells = {}
        if self.algorithm == "ivf":
            labels = np.full(shard.hi - shard.lo, -1, np.int64)
            local = self._local(shard)
            labels[slice(None) if local is None else local] = self._labels[
                self._answer(shard, local)
            ]
            cells = {"coarse": self._coarse_future, "labels": labels}
        return self.client.submit(
            _tasks.build_shard, shard.data, shard.lo, self.metric, ids=self._ids(shard),
            working_memory=s["working_memory"], n_jobs=s["n_jobs"], **cells,
            workers=[shard.worker], allow_other_workers=True, pure=False,
        )  # fmt: skip

    def _scatter(self, value):
        """``value`` copied to every live worker that holds a shard."""
        alive = set(live_workers(self.client))
        workers = sorted({shard.worker for shard in self.placement.shards} & alive) or None
        try:
            return self.client.scatter(value, workers=workers, broadcast=True, hash=False)
        except KeyError as exc:  # a worker left between the question and the scatter
            raise _Lost("the queries", exc) from None

    def _rows_future(self, rows: np.ndarray):
        """A future of ``database[rows]`` (in that order), assembled on a worker from the
        shards holding them: the client never reads them."""
        unique, inverse = np.unique(rows, return_inverse=True)
        pieces = []
        for shard in self.placement.shards:
            lo, hi = np.searchsorted(unique, [shard.lo, shard.hi])
            if hi > lo:
                pieces.append(
                    self.client.submit(
                        _tasks.take_rows,
                        shard.data,
                        unique[lo:hi] - shard.lo,
                        pure=False,
                        workers=[shard.worker],
                        allow_other_workers=True,
                    )  # fmt: skip
                )
        return self.client.submit(_tasks.gather_rows, inverse, *pieces, pure=False)

    def _heal(self) -> None:
        """Put lost shards back from their source and rebuild what was lost with them."""
        for shard in self.placement.lost():
            self.placement.replace(shard)
        if self._coarse_future is not None and self._coarse_future.status != "finished":
            self._coarse_future = self._scatter(self.coarse)
        for i, shard in enumerate(self.placement.shards):
            if self._shards[i].status != "finished" or self._shards[i].key not in _held(
                self.client, shard.worker
            ):
                self._shards[i] = self._build(shard)

    # --- searching -------------------------------------------------------------------------

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database rows of every query, as the single-process index.

        Parameters
        ----------
        queries : array-like, shape (m, d) or (m, H, W, C)
        k : int, 1 <= k <= len(database)

        Returns
        -------
        distances : ndarray of float64, shape (m, k)
            Ascending; true Euclidean for ``"l2"``.
        indices : ndarray of int64, shape (m, k)
            Database rows (positions in ``rows`` for :meth:`over_rows`); ties go to
            the lower one.

        Raises
        ------
        ClusterError
            A shard was lost more than ``retries`` times, or no worker is left.
        """
        k = check_int("k", k, low=1, high=len(self))
        queries = as_queries(queries, self._like)
        step = max(1, QUERY_BLOCK_BYTES // max(1, queries[:1].nbytes))

        def blocks():
            for lo in range(0, len(queries), step):
                block = queries[lo : lo + step]
                probes = None
                if self.algorithm == "ivf":
                    probes = self.coarse.probes(block, self.n_probe, k, self.offsets)
                yield len(block), self._scatter(block), probes

        return self._with_retries(blocks, k)

    def search_rows(self, rows, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with queries ``database[rows]`` read on the cluster, not the client
        (a fold's validation rows of the placed data)."""
        k = check_int("k", k, low=1, high=len(self))
        rows = np.asarray(rows, np.int64)

        def blocks():
            queries = self._rows_future(rows)
            probes = None
            if self.algorithm == "ivf":
                probes = self.client.submit(
                    _tasks.ivf_probes, self._coarse_future, queries, self.n_probe, k,
                    self.offsets, pure=False,
                )  # fmt: skip
            yield len(rows), queries, probes

        return self._with_retries(blocks, k)

    def _with_retries(self, blocks, k: int):
        for attempt in range(self.retries + 1):
            try:
                if self.placement.lost():  # a worker left since the last search
                    self._heal()
                return self._search_once(blocks(), k)
            except _Lost as lost:
                if attempt == self.retries:
                    raise ClusterError(
                        f"{lost.shard} was lost with its worker and the search failed "
                        f"{attempt + 1} time(s) ({lost.cause}); no partial answer is returned"
                    ) from None
                self._heal()
        raise AssertionError("unreachable")

    def _search_once(self, blocks, k: int):
        pending = []
        for m, queries, probes in blocks:
            tasks = [
                self.client.submit(
                    _tasks.search_shard,
                    index,
                    queries,
                    k,
                    probes,
                    pure=False,
                    workers=[shard.worker],
                    allow_other_workers=True,
                )  # fmt: skip
                for shard, index in zip(self.placement.shards, self._shards, strict=True)
            ]
            pending.append((m, tasks))
        results = []
        for m, tasks in pending:
            parts = [_collect(task, shard, self) for shard, task in zip(
                self.placement.shards, tasks, strict=True)]  # fmt: skip
            results.append(topk.merge_sorted(parts, k) if m else _empty(k))
        return np.concatenate([d for d, _ in results]), np.concatenate([i for _, i in results])

    # --- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the shards' indexes (and data, if this index placed them)."""
        for future in self._shards:
            future.release()
        self._shards = []
        if self._coarse_future is not None:
            self._coarse_future.release()
        if self._owns_placement:
            self.placement.release()

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _settings(
    n_lists=None, n_probe=None, seed=0, pca_components="auto", working_memory=None, n_jobs=None
) -> dict:
    for name, value in (("n_lists", n_lists), ("n_probe", n_probe), ("n_jobs", n_jobs)):
        if value is not None:
            check_int(name, value, low=1)
    return {
        "n_lists": n_lists,
        "n_probe": n_probe,
        "seed": check_int("seed", seed, low=0),
        "pca_components": checked_pca_components(pca_components),
        "working_memory": working_memory,
        "n_jobs": n_jobs,
    }


def _default_probe(n_lists: int) -> int:
    from imgclf.neighbors.ivf import default_n_probe

    return default_n_probe(n_lists)


def _unique_rows(rows, n: int) -> np.ndarray:
    rows = np.asarray(rows, np.int64)
    if rows.ndim != 1 or not len(rows):
        raise ValueError("rows must be a non-empty 1D array of database rows")
    if rows.min() < 0 or rows.max() >= n:
        raise ValueError(f"rows must lie in 0..{n - 1}; got {rows.min()}..{rows.max()}")
    if len(np.unique(rows)) != len(rows):
        raise ValueError("rows repeat a database row; an index holds each row once")
    return rows


def _positions(rows: np.ndarray, n: int) -> np.ndarray:
    """``where[r]``: the position of database row ``r`` in ``rows``, -1 if absent."""
    where = np.full(n, -1, np.int64)
    where[rows] = np.arange(len(rows))
    return where


def _empty(k: int):
    return np.empty((0, k)), np.empty((0, k), np.int64)


def _held(client, worker: str) -> set:
    """Keys ``worker`` holds now."""
    return set(client.has_what([worker]).get(worker, ()))


# what a worker's death looks like from the client: lost data, a killed task, a closed link
# (an error a task raises itself, such as a store's OSError, is raised as it is)
def _lost_errors() -> tuple[type, ...]:
    from distributed.comm.core import CommClosedError

    from distributed import KilledWorker

    return (CancelledError, KilledWorker, CommClosedError)


def _collect(task, shard, index: ShardedIndex):
    """``task``'s result; a :class:`_Lost` if the cluster lost it (or has no worker left)."""
    try:
        return _await(task, shard, index.client, index.timeout)
    except _lost_errors() as exc:
        raise _Lost(shard, exc) from None


def _await(task, what, client, timeout: float | None):
    """``task``'s result, checking while it runs that some worker is left (else it would
    wait forever) and that ``timeout`` seconds have not passed."""
    start = time.monotonic()
    no_workers_since = None
    while True:
        try:
            return task.result(timeout=POLL_S)
        except TimeoutError:
            # the task itself raised it; "finished" means its result is ready but
            # fetching it took longer than the poll (a busy machine): wait on
            if task.status == "error":
                raise
        now = time.monotonic()
        if timeout is not None and now - start > timeout:
            raise ClusterError(f"{what}: the work took longer than timeout={timeout:g} s")
        if live_workers(client, allow_none=True):
            no_workers_since = None
        elif now - (no_workers_since := no_workers_since or now) > NO_WORKER_GRACE_S:
            raise _Lost(what, ClusterError("the cluster has no workers left"))


def _result(task, what: str, timeout: float | None):
    """A build step's result, or a ClusterError saying which step the cluster lost."""
    try:
        return _await(task, what, task.client, timeout)
    except (_Lost, *_lost_errors()) as exc:
        raise ClusterError(f"{what}: lost on the cluster ({exc})") from None
