"""Every picture imgclf draws, as matplotlib Figures saved to PNG (Agg, no window).

Each function returns the Figure and writes a PNG when given a path.

``images``   samples, neighbours, confusion, distances
``regions``  knn_regions: k-NN decision regions on 2D points, ties white;
             scatter_points: 2D points coloured by class
``cv``       cv_curve: accuracy against k, one dot per fold, mean ± std, best marked;
             search_heatmap: accuracy of each pair of two hyperparameters, best framed

Text from data goes through ``_figure.literal`` (``$`` escaped), so a class
name is drawn as written and never parsed as mathtext.
``linear``   templates, loss_curve, lr_reg_grid, decision_regions (hyperplanes)
``nn``       training_curves (loss, train/val accuracy per epoch), first_layer (weights as tiles)
``centroids``  centroids: the patch centroids of k-means features, de-whitened, as colour tiles
``recall_speed``  recall_speed: approximate search's recall@k against queries/s, exact as reference
``robustness``  robustness: test accuracy against each perturbation's severity, a line per model
``same_distance``  same_distance: boxed, shifted, tinted versions at one L2 distance (+ k-NN view)
``dimensionality``  dimensionality: points needed to cover 1-3 dimensions; distance
             concentration and 1-NN accuracy as images are down-sampled
``embedding``  embedding: t-SNE maps of images as thumbnails, pixels beside features
"""

from imgclf.plots.centroids import centroids
from imgclf.plots.cv import cv_curve, search_heatmap
from imgclf.plots.dimensionality import dimensionality
from imgclf.plots.embedding import embedding
from imgclf.plots.images import confusion, distances, neighbours, samples
from imgclf.plots.linear import decision_regions, loss_curve, lr_reg_grid, templates
from imgclf.plots.nn import first_layer, training_curves
from imgclf.plots.recall_speed import recall_speed
from imgclf.plots.regions import knn_regions, scatter_points
from imgclf.plots.robustness import robustness
from imgclf.plots.same_distance import same_distance

__all__ = [
    "centroids",
    "confusion",
    "cv_curve",
    "decision_regions",
    "dimensionality",
    "distances",
    "embedding",
    "first_layer",
    "knn_regions",
    "loss_curve",
    "lr_reg_grid",
    "neighbours",
    "recall_speed",
    "robustness",
    "same_distance",
    "samples",
    "scatter_points",
    "search_heatmap",
    "templates",
    "training_curves",
]
