"""Every picture imgclf draws, as matplotlib Figures saved to PNG (Agg, no window).

Each function returns the Figure and writes a PNG when given a path.

``images``   samples, neighbours, confusion, distances
``regions``  knn_regions: k-NN decision regions on 2D points, ties white
``cv``       cv_curve: accuracy against k, one dot per fold, mean ± std, best marked
``linear``   templates, loss_curve, lr_reg_grid, decision_regions (hyperplanes)
``nn``       training_curves (loss, train/val accuracy per epoch), first_layer (weights as tiles)
"""

from imgclf.plots.cv import cv_curve
from imgclf.plots.images import confusion, distances, neighbours, samples
from imgclf.plots.linear import decision_regions, loss_curve, lr_reg_grid, templates
from imgclf.plots.nn import first_layer, training_curves
from imgclf.plots.regions import knn_regions

__all__ = [
    "confusion",
    "cv_curve",
    "decision_regions",
    "distances",
    "first_layer",
    "knn_regions",
    "loss_curve",
    "lr_reg_grid",
    "neighbours",
    "samples",
    "templates",
    "training_curves",
]
