"""k-nearest neighbours: exact and approximate search, and a scikit-learn classifier.

``search`` / ``ExactIndex``  exact top-k under L1 or L2, blocked, multi-threaded
``pruning/``                exact single queries: a cascade of lower bounds skips most rows
``IVFIndex`` (``ivf``)      approximate: inverted lists over a coarse quantizer (``coarse``)
``faiss_backend``,          the same contract through faiss (any factory string) and
``hnsw_backend``            hnswlib, when installed; candidates re-ranked exactly
``algorithms``              the name -> index table ``KNNClassifier(algorithm=...)`` uses
``recall``                  recall@k of an approximate search against the exact one
``StreamedIndex``           exact search over a database larger than memory (``streamed``),
                            read from disk block by block
``KNNClassifier``           scikit-learn estimator on top of any of them
``kernels/``                distance kernels (one module per family) and top-k
``voting``                  neighbour lists to votes, shares and winners
"""

from imgclf.neighbors.classifier import KNNClassifier
from imgclf.neighbors.ivf import IVFIndex
from imgclf.neighbors.recall import recall
from imgclf.neighbors.search import METRICS, ExactIndex, pairwise_distances, search
from imgclf.neighbors.streamed import StreamedIndex

__all__ = [
    "METRICS",
    "ExactIndex",
    "IVFIndex",
    "KNNClassifier",
    "StreamedIndex",
    "pairwise_distances",
    "recall",
    "search",
]
