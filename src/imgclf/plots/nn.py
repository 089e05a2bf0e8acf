"""Pictures of a two-layer network: training curves and first-layer weights as images.

Every function returns a matplotlib ``Figure`` built without pyplot (so no
window ever opens) and writes it as a PNG when ``path`` is given. A fitted
:class:`~sklearn.pipeline.Pipeline` is accepted wherever a network is: its
last step is the network.
"""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.ticker import MaxNLocator

from imgclf._validation import final_estimator
from imgclf.plots._figure import new_figure, save
from imgclf.plots.linear import _draw_losses, _show_tile

__all__ = ["first_layer", "training_curves"]

Path = str | os.PathLike | None


def training_curves(net, path: Path = None):
    """Loss at every step, and training and validation accuracy after every epoch.

    Parameters
    ----------
    net : fitted TwoLayerNet or Pipeline ending in one
        Uses ``loss_history_``, ``train_acc_history_`` and
        ``val_acc_history_`` (the last is drawn only if the network held out
        a validation share, ``val_fraction``).
    path : path, optional
        Where to write the PNG.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: the loss (with its moving average), the accuracies. A
        training curve far above the validation one means overfitting
        (raise ``reg`` or ``dropout``); both low means underfitting.
    """
    model = final_estimator(net)
    figure = new_figure(10.5, 4.0)
    loss_ax, acc_ax = figure.subplots(1, 2)
    _draw_losses(loss_ax, np.asarray(model.loss_history_, dtype=np.float64))
    _draw_accuracies(acc_ax, model)
    figure.suptitle(f"How the network learned, epoch by epoch ({model.W1_.shape[1]} hidden units)")
    return save(figure, path)


def _draw_accuracies(ax, model) -> None:
    """Training and (if held out) validation accuracy against the epoch."""
    curves = (("train_acc_history_", "training", "o"), ("val_acc_history_", "validation", "s"))
    for name, label, marker in curves:
        history = np.asarray(getattr(model, name, []), dtype=np.float64)
        if len(history):
            ax.plot(np.arange(1, len(history) + 1), history, marker=marker, label=label)
    ax.set(title="Accuracy after each epoch", xlabel="epoch", ylabel="accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()


def first_layer(net, image_shape, path: Path = None, max_units: int = 100):
    """Each hidden unit's input weights (a column of ``W1_``) seen as an image.

    Every tile is rescaled to 0-255 on its own (its smallest weight black,
    its largest white), as CS231n's ``visualize_grid``: units differ in scale,
    and what shows is each unit's pattern. Units trained on raw pixels often
    look like colour blobs and edges; noisy tiles suggest too little
    regularization or training.

    Parameters
    ----------
    net : fitted TwoLayerNet or Pipeline ending in one
        Fitted on pixels (after standardization is fine), not on features.
    image_shape : tuple of int
        ``(H, W, C)`` (or ``(H, W)``) of the input images.
    path : path, optional
    max_units : int, default=100
        Draw at most this many units (the first ones).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``W1_`` has not ``H * W * C`` rows (e.g. a network on HOG features).
    """
    weights = np.asarray(final_estimator(net).W1_, dtype=np.float64)
    if weights.shape[0] != math.prod(image_shape):
        raise ValueError(
            f"the first layer takes {weights.shape[0]} inputs, not images of "
            f"shape {tuple(image_shape)} ({math.prod(image_shape)} values); "
            f"first_layer needs a network trained on pixels"
        )
    tiles = _rescaled(weights[:, :max_units].T.reshape(-1, *image_shape))
    figure = _tile_grid(tiles, [f"unit {unit}" for unit in range(len(tiles))])
    figure.suptitle(
        f"What the hidden units look for: the input weights of {len(tiles)} of "
        f"{weights.shape[1]} units, each rescaled to 0-255"
    )
    return save(figure, path)


def _tile_grid(tiles: np.ndarray, titles: list[str]):
    """A figure with one titled tile per image, ten to a row."""
    columns = min(len(tiles), 10)
    rows = math.ceil(len(tiles) / columns)
    figure = new_figure(1.0 * columns + 0.6, 1.1 * rows + 0.8)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, tile, title in zip(axes.flat, tiles, titles, strict=False):
        _show_tile(ax, tile, title)
    for ax in axes.flat[len(tiles) :]:
        ax.set_axis_off()
    return figure


def _rescaled(tiles: np.ndarray) -> np.ndarray:
    """Each tile mapped to uint8 0-255 by its own minimum and maximum."""
    axes = tuple(range(1, tiles.ndim))
    low = tiles.min(axis=axes, keepdims=True)
    span = tiles.max(axis=axes, keepdims=True) - low
    return (255 * (tiles - low) / np.where(span > 0, span, 1)).astype(np.uint8)
