"""The lecture's picture, made on a real image: different changes, the same L2 distance.

An original image beside a boxed (occluded), a shifted and a tinted version,
each calibrated by bisection on its severity to lie at the same L2 distance
from the original (:func:`imgclf.challenges.same_distance_versions`). Given a
k-NN model on pixels, a second row shows each version's nearest training image
and the class the model predicts; under the original, its own nearest training
image and the L2 distance to it, for scale.
"""

from __future__ import annotations

import os

import numpy as np

from imgclf.plots._figure import literal, new_figure, save
from imgclf.plots.images import _show as show_image  # greyscale or RGB, no ticks

__all__ = ["same_distance"]

KIND_WORDS = {"occlude": "boxed", "shift": "shifted", "tint": "tinted", "rotate": "rotated",
              "noise": "noisy", "elastic": "deformed", "brightness": "brighter"}  # fmt: skip


def _show(ax, image: np.ndarray, text: str) -> None:
    show_image(ax, image)
    ax.set_title(literal(text), fontsize="medium")


def _name(label, classes) -> str:
    if classes is None:
        return str(label)
    return str(classes[int(label)])


def same_distance(
    image,
    model=None,
    path: str | os.PathLike | None = None,
    *,
    label=None,
    classes=None,
    target: float | None = None,
    perturbations=("occlude", "shift", "tint"),
    seed: int = 0,
    title: str | None = None,
):
    """An image and versions of it at one L2 distance, with a k-NN model's view if given.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, C)
    model : fitted estimator, optional
        Its prediction is shown for every version. A
        :class:`~imgclf.neighbors.KNNClassifier` fitted on pixels also shows
        each version's nearest training image (by the model's distance) and the
        original's nearest training image at its L2 distance, for scale.
    path : path, optional
        Where to write the PNG.
    label : int, optional
        The image's true class.
    classes : sequence of str, optional
        Names of the labels.
    target : float, optional
        The common L2 distance (0-255 intensities). Default: what a shift by
        1/16 of the image side causes (2 pixels at 32x32).
    perturbations : sequence of str, default=("occlude", "shift", "tint")
    seed : int, default=0

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:32, :32]
    >>> image = np.stack([8 * x, 8 * y, 4 * (x + y)], axis=-1).astype(np.uint8)
    >>> figure = same_distance(image)
    >>> [ax.get_title().split(chr(10))[0] for ax in figure.axes]
    ['original', 'boxed: occlude 2.09 px', 'shifted: shift 2 px', 'tinted: tint 10.21 grey levels']
    """
    from imgclf.challenges import same_distance_versions
    from imgclf.challenges.perturbations import check_images

    image = check_images(np.asarray(image)[None], "image")[0]
    versions = same_distance_versions(image, target, names=tuple(perturbations), seed=seed)
    images = np.stack([image, *(v.image for v in versions)])
    predicted = None if model is None else model.predict(images.reshape(len(images), -1))
    training = _training_images(model, image.shape)
    figure = new_figure(2.6 * len(images) + 0.4, 3.3 if training is None else 6.2)
    grid = figure.subplots(1 if training is None else 2, len(images), squeeze=False)
    top = "original" + ("" if label is None else f"\nclass: {_name(label, classes)}")
    captions = [top] + [
        f"{KIND_WORDS.get(v.perturbation, v.perturbation)}: {v.label}\n"
        f"L2 distance {v.distance:,.0f}"
        for v in versions
    ]
    if predicted is not None:
        captions = [
            f"{c}\npredicted: {_name(p, classes)}" for c, p in zip(captions, predicted, strict=True)
        ]
    for ax, shown, caption in zip(grid[0], images, captions, strict=True):
        _show(ax, shown, caption)
    if training is not None:
        _neighbour_row(grid[1], model, images, training, classes)
    distance = np.mean([v.distance for v in versions])
    figure.suptitle(
        literal(title or f"Different changes, the same L2 distance ({distance:,.0f}) "
                "from the original"),
        fontsize="large",
    )  # fmt: skip
    return save(figure, path)


def _training_images(model, image_shape) -> tuple | None:
    """A pixel k-NN model's training images and labels, else None."""
    from imgclf.neighbors import KNNClassifier

    if not isinstance(model, KNNClassifier):
        return None
    rows = model._fit_X  # the memorised training rows: pixels when fitted on images
    if rows.shape[1] != int(np.prod(image_shape)):
        return None
    return rows.reshape(len(rows), *image_shape), model.classes_[model._y]


def _neighbour_row(axes, model, images: np.ndarray, training: tuple, classes) -> None:
    from imgclf.neighbors import search

    train_images, train_labels = training
    dist, index = model.kneighbors(images.reshape(len(images), -1), 1)
    metric = str(model.metric).upper()
    l2, nearest = search(images[:1].reshape(1, -1), train_images.reshape(len(train_images), -1),
                         1, "l2")  # fmt: skip
    axes[0].set_ylabel("nearest training images", fontsize="medium")
    _show(
        axes[0],
        train_images[nearest[0, 0]],
        f"the original's nearest\ntraining image: {_name(train_labels[nearest[0, 0]], classes)}\n"
        f"at L2 distance {l2[0, 0]:,.0f}",
    )
    for ax, d, i in zip(axes[1:], dist[1:, 0], index[1:, 0], strict=True):
        _show(
            ax,
            train_images[i],
            f"nearest training image\n{_name(train_labels[i], classes)} ({metric} {d:,.0f})",
        )
