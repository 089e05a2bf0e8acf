"""KNNClassifier: memorise the training set, vote among the k nearest."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from imgclf._validation import check_choice, check_int, encoded_training_data, flat_images
from imgclf.defaults import KNN
from imgclf.neighbors import algorithms, voting
from imgclf.neighbors.search import DEFAULT_WORKING_MEMORY, METRICS, as_features

__all__ = ["BACKENDS", "KNNClassifier"]

BACKENDS = ("auto", "imgclf", "faiss")
# rank_classes searches max(k, RANK_DEPTH_PER_CLASS * top) neighbours at first. On
# CIFAR-10 (50,000 training images) 100 neighbours hold 5 distinct classes for 98% of
# queries and cost about as much to find as 10 (the distance blocks dominate); the
# other rows are searched again, RANK_DEEPER times deeper each time: every search reads
# the whole database, at nearly the same cost for depths up to about 1,000, so few
# passes beat small steps.
RANK_DEPTH_PER_CLASS = 20
RANK_DEEPER = 4
# A few queries pruned one at a time (search.prunes) cost more the deeper they go (each
# neighbour more is measured exactly): on CIFAR-10 by IVF, 40 neighbours take 0.62 ms and
# hold 5 classes for 74% of queries, 100 take 0.86 ms (92%); the median answer is faster
# at 8 per class, and the mean the same.
PRUNED_RANK_DEPTH_PER_CLASS = 8
INDEX_ARRAYS = "_index_"  # model files store an approximate index's arrays under this prefix


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier with exact L1/L2 search.

    Parameters
    ----------
    k : int, default=1
        Neighbours that vote.
    metric : {"l2", "l1"}, default="l2"
    weights : {"uniform", "distance"}, default="uniform"
        ``"distance"`` weighs each vote by 1/d; an exact match wins outright.
    tie_break : {"smallest", "nearest"}, default="smallest"
        A tied vote goes to the smallest label, or to the tied class whose
        nearest member is closest.
    backend : {"auto", "imgclf", "faiss"}, default="auto"
        Engine of exact search. ``"auto"`` is imgclf's own, the fastest.
    algorithm : str, default="exact"
        ``"exact"``; ``"ivf"`` (imgclf's inverted lists, L1 and L2); ``"hnsw"``
        (hnswlib, L2); or ``"faiss:<factory>"`` with any faiss factory string,
        e.g. ``"faiss:IVF1024,Flat"``. Approximate indexes may miss neighbours
        (see :func:`imgclf.neighbors.recall`) but always report true distances.
        See :mod:`imgclf.neighbors.algorithms`.
    n_lists : int, optional
        ``"ivf"``: lists of the index (default ``4 sqrt(n)``).
    n_probe : int, optional
        ``"ivf"`` and faiss IVF factories: lists searched per query (default:
        ``n_lists / 28`` for ``"ivf"``, faiss's 1 otherwise).
    ef_search : int, optional
        ``"hnsw"`` and faiss HNSW factories: the graph search's breadth.
    seed : int, default=0
        Seeds an approximate index's build (k-means, graph levels).
    working_memory : int, optional
        Byte budget of the search's distance blocks (default 256 MiB).
    n_jobs : int, optional
        Search threads (default: every core).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Sorted labels seen in ``fit`` (any type, strings too).
    n_features_in_ : int

    Notes
    -----
    Fitted (or loaded) inside :func:`imgclf.distributed.use_cluster`, the
    classifier searches a :class:`~imgclf.distributed.ShardedIndex` on that Dask
    cluster (``"exact"`` or ``"ivf"``), with the same answers.

    :meth:`predict_proba` gives vote shares, which are zero for every class
    without a voter, so they cannot rank such classes (with ``k=1`` all but one
    class would tie). :meth:`rank_classes` ranks them by nearness instead; use it
    for top-k answers and top-k accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [9, 9], [9, 8]], dtype=np.uint8)
    >>> KNNClassifier(k=1).fit(X, ["cat", "cat", "dog", "dog"]).predict([[8, 8]])
    array(['dog'], dtype='<U3')
    """

    def __init__(
        self,
        k=KNN["k"],
        metric=KNN["metric"],
        weights=KNN["weights"],
        tie_break="smallest",
        backend="auto",
        algorithm="exact",
        n_lists=None,
        n_probe=None,
        ef_search=None,
        seed=0,
        working_memory=None,
        n_jobs=None,
    ):
        self.k = k
        self.metric = metric
        self.weights = weights
        self.tie_break = tie_break
        self.backend = backend
        self.algorithm = algorithm
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.ef_search = ef_search
        self.seed = seed
        self.working_memory = working_memory
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Memorise ``X`` ``(n, d)`` or images ``(n, H, W, C)`` with labels ``y`` ``(n,)``."""
        self._check_params()
        if _stays_on_disk(X):  # larger than the in-memory limit: searched block by block
            X, self._y = self._lazy_training_data(X, y)
        else:
            X, self._y = encoded_training_data(self, X, y, dtype=None)
        if self.k > len(X):
            noun = "sample" if len(X) == 1 else "samples"
            raise ValueError(
                f"k must be <= the number of training samples ({len(X)} {noun}); got {self.k}"
            )
        self._fit_X = X if _stays_on_disk(X) else as_features(X, "X")  # uint8 stays uint8
        self._rebuild()
        return self

    def _lazy_training_data(self, X, y) -> tuple:
        """Flat lazy rows ``(n, d)`` and label indices, checked without reading the rows.

        Exact and IVF search stream the database from disk
        (:class:`~imgclf.neighbors.StreamedIndex`); faiss and HNSW indexes are built
        in memory, so they are refused here rather than failing on the limit later.
        """
        if self.algorithm not in ("exact", "ivf") or self.backend == "faiss":
            raise ValueError(
                f"algorithm={self.algorithm!r}, backend={self.backend!r}: a training set "
                f"larger than the in-memory limit ({X.nbytes:,} bytes) is searched from disk "
                "by exact or IVF search only; use algorithm='exact' or 'ivf' and "
                "backend='auto', a subset (--train-size), or a higher $IMGCLF_IN_MEMORY_BYTES"
            )
        from sklearn.utils.multiclass import check_classification_targets

        X = X.reshape_rows()
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must hold one label per row of X ({len(X)}); got shape {y.shape}")
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        return X, y_index

    def _rebuild(self, trusted: bool = True) -> None:
        """Prepare the search index from the memorised ``_fit_X`` (after fit or loading).

        A loaded model's index arrays (``_index_*``) become the index without a
        new build; ``trusted``: the model file's signature was verified.
        """
        saved = {
            name[len(INDEX_ARRAYS) :]: vars(self).pop(name)
            for name in list(vars(self))
            if name.startswith(INDEX_ARRAYS)
        }
        settings = self._index_settings()
        client = _cluster_client()
        if client is not None:  # inside imgclf.distributed.use_cluster: shards on its workers
            from imgclf.distributed.classifier import sharded_index

            self._index = sharded_index(client, self._fit_X, self.algorithm, self.metric,
                                        saved, settings)  # fmt: skip
        elif _stays_on_disk(self._fit_X):  # read from disk at every search, block by block
            from imgclf.neighbors.streamed import StreamedIndex, budget_block_bytes

            names = ("algorithm", "n_lists", "n_probe", "seed", "working_memory", "n_jobs")
            settings = {name: getattr(self, name) for name in names}
            self._index = StreamedIndex(self._fit_X, self.metric, layout=saved or None,
                                        block_bytes=budget_block_bytes(), **settings)  # fmt: skip
        elif saved and algorithms.is_approximate(self.algorithm):
            self._index = algorithms.load_index(
                self._fit_X, saved, self.algorithm, self.metric, trusted=trusted, **settings
            )
        else:
            self._index = algorithms.build_index(
                self._fit_X, self.algorithm, self.metric, **settings
            )

    def _index_settings(self) -> dict:
        names = ("backend", "n_lists", "n_probe", "ef_search", "seed", "working_memory", "n_jobs")
        return {name: getattr(self, name) for name in names}

    def _saved_arrays(self) -> dict:
        """Arrays a model file stores besides the fitted attributes: the built index."""
        if not algorithms.is_approximate(self.algorithm):
            return {}
        return {INDEX_ARRAYS + name: a for name, a in self._index.to_arrays().items()}

    def _check_params(self) -> None:
        check_int("k", self.k, low=1)
        check_choice("metric", self.metric, METRICS)
        check_choice("weights", self.weights, voting.WEIGHTS)
        check_choice("tie_break", self.tie_break, voting.TIE_BREAKS)
        check_choice("backend", self.backend, BACKENDS)
        algorithms.check_algorithm(self.algorithm)
        for name in ("n_lists", "n_probe", "ef_search"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        check_int("seed", self.seed, low=0)

    def kneighbors(self, X, k=None, return_distance=True):
        """Distances and training indices of the ``k`` nearest, each ``(m, k)``."""
        check_is_fitted(self)
        k = self.k if k is None else k
        X = validate_data(self, flat_images(X), dtype=None, reset=False)
        dist, index = self._index.search(X, k)
        return (dist, index) if return_distance else index

    def _tally(self, X) -> tuple[np.ndarray, np.ndarray]:
        dist, index = self.kneighbors(X)
        return self._votes(dist, index), self._y[index]

    def _votes(self, dist: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Votes ``(m, n_classes)`` of the first ``k`` columns of a neighbour list."""
        dist, labels = dist[:, : self.k], self._y[index[:, : self.k]]
        weights = voting.neighbor_weights(dist, self.weights)
        return voting.votes(labels, len(self.classes_), weights)

    def rank_classes(self, X, top=5, return_shares=False, return_neighbors=False):
        """The ``top`` best classes of each row of ``X``, best first.

        Classes are ranked by their votes among the ``k`` nearest (weighted as
        ``weights`` says), then as ``tie_break`` breaks vote ties, so column 0
        is what :meth:`predict` returns. Classes without a vote rank below every
        voted class, in the order of the distance to their nearest training
        sample: the search goes beyond the ``k`` voters, as deep as needed, to
        find ``top`` classes. Precisely, equal votes are ordered

        - ``tie_break="nearest"``: by the distance to the class's nearest
          training sample (equal distances: the lower training index, the
          search's own tie rule);
        - ``tie_break="smallest"``: equal positive votes by class index; classes
          with zero votes by the distance to their nearest sample, as above.

        Parameters
        ----------
        X : array-like, shape (m, n_features) or (m, H, W, C)
        top : int, default=5
            Classes to rank; more than ``len(classes_)`` gives all of them.
        return_shares : bool, default=False
            Also return the vote shares, which :meth:`predict_proba` would give,
            from the same search.
        return_neighbors : bool, default=False
            Also return ``(distances, indices)`` of the ``k`` voters, each
            ``(m, k)``, from the same search (what :meth:`kneighbors` gives for
            an exact index; a server shows them without a second search).

        Returns
        -------
        ranking : ndarray of int64, shape (m, min(top, n_classes))
            Indices into ``classes_``; ``classes_[ranking[:, 0]]`` equals
            ``predict(X)``.
        shares : ndarray of float64, shape (m, n_classes)
            Only with ``return_shares``: vote shares in ``classes_`` order.
        neighbors : tuple of ndarray, shapes (m, k)
            Only with ``return_neighbors``: the voters' distances (float64) and
            training indices (int64), nearest first.

        Notes
        -----
        One search of depth ``max(k, 20 * top)`` serves most rows (``k`` for
        ``top=1``); the rows whose list holds fewer than ``top`` classes are
        searched again, each time 4 times deeper, until they do or the whole
        training set was searched (in row chunks that fit ``working_memory``).
        A few uint8 rows that the index prunes (exact or IVF) go one by one: one
        cascade a row finds its ``k`` voters and then the nearest other classes
        (``search_classes``), the same ranking.

        Examples
        --------
        >>> X = np.array([[0], [1], [5], [9]], dtype=np.uint8)
        >>> clf = KNNClassifier(k=1).fit(X, ["a", "a", "b", "c"])
        >>> clf.classes_[clf.rank_classes([[2], [8]], top=3)].tolist()
        [['a', 'b', 'c'], ['c', 'b', 'a']]
        """
        check_is_fitted(self)
        top = check_int("top", top, low=1)
        X = validate_data(self, flat_images(X), dtype=None, reset=False)
        ranking, shares, neighbors = self._rank(X, top)
        extras = (shares,) * bool(return_shares) + (neighbors,) * bool(return_neighbors)
        return (ranking, *extras) if extras else ranking

    def _rank(self, X: np.ndarray, top: int):
        """:meth:`rank_classes` of checked rows ``X`` ``(m, d)``: (ranking, shares, neighbors).

        (No checks: :func:`imgclf.predict.rank_top` calls it directly with rows it
        decoded itself, which saves scikit-learn's ~0.3 ms of checks a call.)
        """
        n_top = min(top, len(self.classes_))
        if self._ranks_alone(len(X)):
            return self._rank_each(X, n_top)
        depth = self._rank_depth(n_top, len(X))
        dist, index = self._index.search(X, depth)
        tally = self._votes(dist, index)
        voters = (dist[:, : self.k], index[:, : self.k])
        if n_top == 1:  # the winner: class_ranking's first column, without ordering the rest
            ranking = voting.winners(tally, self._y[voters[1]], self.tie_break)[:, None]
            return ranking, voting.vote_shares(tally), voters
        ranks = voting.first_ranks(self._y[index], len(self.classes_))
        short = (ranks < depth).sum(axis=1) < n_top
        if short.any():
            ranks[short] = self._deeper_ranks(X[short], ranks[short], depth, n_top)
        ranking = voting.class_ranking(tally, ranks, n_top, self.tie_break)
        return ranking, voting.vote_shares(tally), voters

    def _rank_each(self, X: np.ndarray, n_top: int):
        """:meth:`_rank` of a few rows that the index prunes, one by one: each row's voters
        and the nearest classes past theirs from one cascade
        (:meth:`ExactIndex.search_classes`), its votes and ranking in plain Python
        (:func:`voting.rank_one`), the same numbers as a batch's."""
        depth, n_classes = min(self.k, len(self._fit_X)), len(self.classes_)
        ranking = np.empty((len(X), n_top), np.int64)
        tally = np.empty((len(X), n_classes))
        dist = np.empty((len(X), depth))
        index = np.empty((len(X), depth), np.int64)
        for i, row in enumerate(X):
            if n_top > 1:
                dist[i], index[i], after, _, _ = self._index.search_classes(
                    row, depth, self._y, n_top
                )
            else:
                (dist[i],), (index[i],), after = *self._index.search(row[None], depth), ()
            labels = self._y[index[i]].tolist()
            order, tally[i] = voting.rank_one(labels, dist[i].tolist(), n_classes, n_top,
                                              self.weights, self.tie_break, after)  # fmt: skip
            if len(set(labels)) + len(after) < n_top:  # (an IVF's lists hold too few classes)
                order = self._deeper_ranking(row, dist[i], index[i], n_top)
            ranking[i] = order
        return ranking, voting.vote_shares(tally), (dist, index)

    def _deeper_ranking(self, row, dist, index, n_top: int) -> np.ndarray:
        """The ranking of a row whose voters and probed lists hold fewer than ``n_top``
        classes: the classes past the voters from deeper searches (:meth:`_deeper_ranks`)."""
        depth = len(index)
        ranks = voting.first_ranks(self._y[index][None], len(self.classes_))
        ranks = self._deeper_ranks(row[None], ranks, depth, n_top)
        tally = self._votes(dist[None], index[None])
        return voting.class_ranking(tally, ranks, n_top, self.tie_break)[0]

    def single_query_threads(self, n_jobs: int | None) -> KNNClassifier:
        """Threads that share one single query's search from now on (None: the index's
        rule; a server running one query per worker wants 1). Indexes without a
        single-query path (faiss, HNSW, a cluster's) ignore it. Returns self."""
        check_is_fitted(self)
        if hasattr(self._index, "single_query_threads"):
            self._index.single_query_threads(n_jobs)
        return self

    def release_batch_copy(self) -> None:
        """Free the index's copy of the training rows that batch searches read (made again
        by the next batch): a model that answers one image at a time holds them once."""
        check_is_fitted(self)
        if hasattr(self._index, "release_batch_copy"):
            self._index.release_batch_copy()

    def _rank_depth(self, n_top: int, n_rows: int) -> int:
        """The first search's depth for ``n_rows`` queries: the voters, and usually
        ``n_top`` classes."""
        if n_top == 1:
            return min(self.k, len(self._fit_X))
        per_class = PRUNED_RANK_DEPTH_PER_CLASS
        index_prunes = getattr(self._index, "prunes", None)  # (exact and IVF indexes)
        if index_prunes is None or not index_prunes(n_rows, per_class * n_top):
            per_class = RANK_DEPTH_PER_CLASS
        return min(max(self.k, per_class * n_top), len(self._fit_X))

    def _ranks_alone(self, n_rows: int) -> bool:
        """Whether ``n_rows`` rows are ranked one by one, each from one cascade of the
        index (:meth:`_rank_each`: exact and IVF indexes, few uint8 rows), not as a batch."""
        return hasattr(self._index, "search_classes") and self._index.prunes(n_rows, self.k)

    def _deeper_ranks(self, X, ranks: np.ndarray, depth: int, n_top: int) -> np.ndarray:
        """``ranks`` of rows whose first ``depth`` neighbours hold fewer than ``n_top`` classes.

        Deepens the search ``RANK_DEEPER``-fold until every row has ``n_top`` classes
        or the whole training set was searched. Classes found in the first search keep
        their place; new ones follow them in the order of the deeper search.
        """
        ranks, first_depth, n_train = ranks.copy(), depth, len(self._fit_X)
        todo = np.arange(len(X))
        while len(todo) and depth < n_train:
            depth = min(RANK_DEEPER * depth, n_train)
            found = np.zeros(len(todo), dtype=bool)
            for part in self._row_chunks(len(todo), depth):
                rows = todo[part]
                deeper = voting.first_ranks(
                    self._y[self._index.search(X[rows], depth)[1]], len(self.classes_)
                )
                known = ranks[rows] < first_depth
                ranks[rows] = np.where(known, ranks[rows], first_depth + deeper)
                found[part] = (known | (deeper < depth)).sum(axis=1) >= n_top
            todo = todo[~found]
        return ranks

    def _row_chunks(self, n_rows: int, depth: int):
        """Slices of rows whose ``(rows, depth)`` neighbour lists fit the working memory."""
        budget = self.working_memory or DEFAULT_WORKING_MEMORY
        step = max(1, budget // (16 * depth))  # float64 distances + int64 indices
        return [slice(lo, lo + step) for lo in range(0, n_rows, step)]

    def predict_proba(self, X):
        """Vote shares ``(m, n_classes)`` in ``classes_`` order; ties stay visible."""
        return voting.vote_shares(self._tally(X)[0])

    def predict(self, X):
        """The winning label of each row of ``X``, shape ``(m,)``."""
        tally, labels = self._tally(X)
        return self.classes_[voting.winners(tally, labels, self.tie_break)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _stays_on_disk(X) -> bool:
    """Whether ``X`` is a lazy (store-backed) array larger than the in-memory limit."""
    if not getattr(X, "lazy", False):
        return False
    from imgclf.datasets.chunked import fits_in_memory

    return not fits_in_memory(X)


def _cluster_client():
    """The client of an enclosing :func:`imgclf.distributed.use_cluster`, or None."""
    from imgclf.distributed._context import active_client

    return active_client()
