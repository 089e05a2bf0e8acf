"""KNNClassifier: memorise the training set, vote among the k nearest."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from imgclf._validation import check_choice, check_int, encoded_training_data, flat_images
from imgclf.neighbors import voting
from imgclf.neighbors.faiss_backend import FaissIndex, faiss_available
from imgclf.neighbors.search import METRICS, ExactIndex, as_features

__all__ = ["BACKENDS", "KNNClassifier"]

BACKENDS = ("auto", "imgclf", "faiss")


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
        Search engine. ``"auto"`` is imgclf's own, the fastest exact one.
    working_memory : int, optional
        Byte budget of the search's distance blocks (default 256 MiB).
    n_jobs : int, optional
        Search threads (default: every core).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Sorted labels seen in ``fit`` (any type, strings too).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [9, 9], [9, 8]], dtype=np.uint8)
    >>> KNNClassifier(k=1).fit(X, ["cat", "cat", "dog", "dog"]).predict([[8, 8]])
    array(['dog'], dtype='<U3')
    """

    def __init__(
        self,
        k=1,
        metric="l2",
        weights="uniform",
        tie_break="smallest",
        backend="auto",
        working_memory=None,
        n_jobs=None,
    ):
        self.k = k
        self.metric = metric
        self.weights = weights
        self.tie_break = tie_break
        self.backend = backend
        self.working_memory = working_memory
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Memorise ``X`` ``(n, d)`` or images ``(n, H, W, C)`` with labels ``y`` ``(n,)``."""
        self._check_params()
        X, self._y = encoded_training_data(self, X, y, dtype=None)
        if self.k > len(X):
            noun = "sample" if len(X) == 1 else "samples"
            raise ValueError(
                f"k must be <= the number of training samples ({len(X)} {noun}); got {self.k}"
            )
        self._fit_X = as_features(X, "X")  # uint8 stays uint8; other types float32
        self._rebuild()
        return self

    def _rebuild(self) -> None:
        """Prepare the search index from the memorised ``_fit_X`` (after fit or loading)."""
        self._index = self._make_index(self._fit_X)

    def _check_params(self) -> None:
        check_int("k", self.k, low=1)
        check_choice("metric", self.metric, METRICS)
        check_choice("weights", self.weights, voting.WEIGHTS)
        check_choice("tie_break", self.tie_break, voting.TIE_BREAKS)
        check_choice("backend", self.backend, BACKENDS)

    def _make_index(self, X: np.ndarray):
        if self.backend == "faiss" and not faiss_available():
            raise ImportError("backend='faiss' needs the faiss extra: pip install 'imgclf[faiss]'")
        engine = FaissIndex if self.backend == "faiss" else ExactIndex
        return engine(X, self.metric, working_memory=self.working_memory, n_jobs=self.n_jobs)

    def kneighbors(self, X, k=None, return_distance=True):
        """Distances and training indices of the ``k`` nearest, each ``(m, k)``."""
        check_is_fitted(self)
        k = self.k if k is None else k
        X = validate_data(self, flat_images(X), dtype=None, reset=False)
        dist, index = self._index.search(X, k)
        return (dist, index) if return_distance else index

    def _tally(self, X) -> tuple[np.ndarray, np.ndarray]:
        dist, index = self.kneighbors(X)
        labels = self._y[index]
        weights = voting.neighbor_weights(dist, self.weights)
        return voting.votes(labels, len(self.classes_), weights), labels

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
