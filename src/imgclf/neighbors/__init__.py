"""k-nearest neighbours: an exact search engine and a scikit-learn classifier.

``search`` / ``ExactIndex``  exact top-k under L1 or L2, blocked, multi-threaded
``KNNClassifier``           scikit-learn estimator on top of it
``kernels/``                distance kernels (one module per family) and top-k
``faiss_backend``           the same search through faiss, when installed
``voting``                  neighbour lists to votes, shares and winners
"""

from imgclf.neighbors.classifier import KNNClassifier
from imgclf.neighbors.search import METRICS, ExactIndex, pairwise_distances, search

__all__ = ["METRICS", "ExactIndex", "KNNClassifier", "pairwise_distances", "search"]
