"""Choosing hyperparameters on validation data, never on the test set.

``splits``            seeded, stratified train/val(/test) splits, repeated hold-out, k-fold
``cross_validation``  any classifier over a parameter grid
``knn_sweep``         every k, metric and weighting of k-NN from one search per fold
``result``            SearchResult: per-fold scores, mean, std, best, tidy records
"""

from imgclf.model_selection.cross_validation import cross_validate
from imgclf.model_selection.knn_sweep import sweep_knn
from imgclf.model_selection.result import SearchResult
from imgclf.model_selection.splits import (
    kfold,
    repeated_train_val_split,
    train_val_split,
    train_val_test_split,
)

__all__ = [
    "SearchResult",
    "cross_validate",
    "kfold",
    "repeated_train_val_split",
    "sweep_knn",
    "train_val_split",
    "train_val_test_split",
]
