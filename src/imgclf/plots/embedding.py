"""Test images drawn as thumbnails on a 2D t-SNE map, in pixel space and in a feature space.

Images close on a pixel map share colours and backgrounds (blue skies, green
fields) more than classes; on a map of HOG + colour features, classes gather
more. Each thumbnail has a frame in its class's colour, so mixing is visible.
"""

from __future__ import annotations

import os

import numpy as np

from imgclf.plots._figure import BESIDE, literal, new_figure, save

__all__ = ["embedding"]

CANVAS = 960  # pixels of each map's side: thumbnails are pasted into one array, fast to draw
THUMB = 32  # thumbnail side on the canvas


def embedding(
    dataset,
    features=("hog", "color"),
    path: str | os.PathLike | None = None,
    *,
    n: int = 2000,
    seed: int = 0,
    title: str | None = None,
):
    """Two t-SNE maps of ``n`` images of ``dataset``: by their pixels and by ``features``.

    Parameters
    ----------
    dataset : Dataset
        Images uint8 ``(N, H, W, C)`` with labels and class names; a seeded,
        stratified subset of ``n`` is drawn (all if fewer).
    features : str or sequence of str or None, default=("hog", "color")
        Names for :func:`imgclf.features.make_features`; None draws the pixel map only.
    path : path, optional
        Where to write the PNG.
    n : int, default=2000
    seed : int, default=0

    Returns
    -------
    matplotlib.figure.Figure
    """
    from imgclf._validation import check_int
    from imgclf.challenges import tsne

    n = check_int("n", n, low=5)
    if dataset.images is None:
        raise ValueError("embedding draws images; this dataset holds 2D points")
    shown = dataset if len(dataset) <= n else dataset.subset(n, seed=seed)
    spaces = [("pixels", shown.X)]
    if features:
        from imgclf.features import make_features

        extractor = make_features(features, image_shape=shown.image_shape)
        spaces.append((_feature_words(extractor.names), extractor.fit_transform(shown.images)))
    figure = new_figure(7.0 * len(spaces) + 1.6, 7.6)
    axes = figure.subplots(1, len(spaces), squeeze=False)[0]
    for ax, (name, X) in zip(axes, spaces, strict=True):
        ax.imshow(_canvas(tsne(X, seed=seed), shown.images, shown.labels))
        ax.set_title(f"t-SNE of the {name} of {len(shown):,} images")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE axis 1 (no unit: only nearness means something)")
        ax.set_ylabel("t-SNE axis 2")
    _class_legend(axes[-1], shown.classes)
    figure.suptitle(
        literal(title or "Neighbours in pixel space share colour and background, not class"),
        fontsize="x-large",
    )
    return save(figure, path)


FEATURE_WORDS = {"hog": "HOG", "color": "colour histograms", "pixels": "pixels"}


def _feature_words(names) -> str:
    """``["hog", "color"]`` -> ``"HOG + colour histograms features"``."""
    return " + ".join(FEATURE_WORDS.get(n, n) for n in names) + " features"


def _canvas(xy: np.ndarray, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """An RGB canvas with each image pasted at its position, framed in its class colour."""
    from matplotlib import colormaps

    colours = (np.asarray(colormaps["tab10"].colors) * 255).astype(np.uint8)
    canvas = np.full((CANVAS, CANVAS, 3), 255, np.uint8)
    corners = np.rint(xy * (CANVAS - THUMB)).astype(int)
    for (x, y), image, label in zip(corners, _thumbnails(images), labels, strict=True):
        tile = canvas[CANVAS - THUMB - y : CANVAS - y, x : x + THUMB]  # y up, as on a plot
        tile[:] = colours[label % len(colours)]
        tile[2:-2, 2:-2] = image
    return canvas


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """RGB images resized to the thumbnail's inside (nearest neighbour)."""
    inner = THUMB - 4
    rows = np.arange(inner) * images.shape[1] // inner
    cols = np.arange(inner) * images.shape[2] // inner
    small = images[:, rows][:, :, cols]
    return np.repeat(small, 3, axis=-1) if small.shape[-1] == 1 else small[..., :3]


def _class_legend(ax, classes) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=f"C{i % 10}", label=literal(name)) for i, name in enumerate(classes)]
    ax.legend(handles=handles, title="frame colour: class", **BESIDE)
