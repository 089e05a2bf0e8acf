"""Checks shared by the picture tests."""

from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection, PathCollection
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A class name that is broken mathtext: drawn unescaped, matplotlib raises.
BAD_MATHTEXT = r"$\undefinedcmd{x}$"


def assert_png(path: Path, min_size=(200, 150)) -> tuple[int, int]:
    """``path`` is a complete, decodable PNG at least ``min_size`` pixels; returns its size."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()  # decodes every byte: a truncated file fails here
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        return image.size


def data_in_display(ax) -> np.ndarray:
    """Every plotted point of ``ax`` (line vertices, scatter offsets, bar ends) in pixels."""
    chunks = [line.get_xydata() for line in ax.lines]
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            chunks += [np.asarray(segment) for segment in collection.get_segments()]
        elif isinstance(collection, PathCollection):
            chunks.append(np.asarray(collection.get_offsets()))
    xy = np.vstack([c for c in chunks if len(c)]).astype(float)
    return ax.transData.transform(xy[np.isfinite(xy).all(axis=1)])


def legend_boxes(figure) -> list:
    """Display-space bounding boxes of every legend of ``figure`` (after drawing it)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    assert legends, "the figure has no legend"
    return [legend.get_window_extent(renderer) for legend in legends]


def assert_legend_covers_no_data(figure) -> None:
    """No plotted point of any axes lies inside any legend's box (display coordinates)."""
    for box in legend_boxes(figure):
        for ax in figure.axes:
            if not ax.has_data():
                continue
            xy = data_in_display(ax)
            inside = (
                (xy[:, 0] >= box.x0)
                & (xy[:, 0] <= box.x1)
                & (xy[:, 1] >= box.y0)
                & (xy[:, 1] <= box.y1)
            )
            assert not inside.any(), f"legend {box} covers {xy[inside][:3]}"
