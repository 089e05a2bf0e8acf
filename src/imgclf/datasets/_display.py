"""How a :class:`~imgclf.datasets.Dataset` shows itself in a notebook.

Jupyter calls ``Dataset._repr_html_`` for the last expression of a cell: the
dataset answers with its name, its size, its classes and a row of sample
images (one per class in turn, each an inline PNG under its class name), so a
student sees what was loaded without writing a plotting line. The text repr
stays what scripts and doctests print. Pillow is imported only when a
picture is drawn, and a lazy (on-disk) set reads only the rows it shows.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from imgclf.datasets._dataset import Dataset

__all__ = ["dataset_html", "sample_rows"]

SAMPLES = 10  # images in the row
SHOWN_PIXELS = 64  # each sample is drawn this many pixels high (tiny ones scaled up crisply)
SHOWN_CLASSES = 20  # class names listed before "and N more"


def dataset_html(dataset: Dataset) -> str:
    """The HTML a notebook shows for ``dataset``: a heading, its classes, a row of samples.

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    str
        One ``<div>``; every name from the data is HTML-escaped.

    Examples
    --------
    >>> from imgclf.datasets import load_digits
    >>> page = dataset_html(load_digits()["test"])
    >>> "360 images 8x8x1" in page, page.count("<img ")
    (True, 10)
    """
    parts = [f"<b>{html.escape(repr(dataset))}</b>", _classes_line(dataset)]
    if dataset.images is not None and len(dataset):
        parts.append(_sample_table(dataset))
    return "<div>" + "".join(f"<div>{part}</div>" for part in parts) + "</div>"


def _classes_line(dataset: Dataset) -> str:
    """Class names with their counts, the first ``SHOWN_CLASSES`` of them."""
    counts = dataset.class_counts()
    named = [f"{html.escape(name)} ({count:,})" for name, count in counts.items()]
    more = len(named) - SHOWN_CLASSES
    text = ", ".join(named[:SHOWN_CLASSES]) + (f", and {more:,} more" if more > 0 else "")
    where = " Images on disk, read in chunks." if dataset.lazy else ""
    return f"Classes ({'points' if dataset.images is None else 'images'}): {text}.{where}"


def sample_rows(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` rows: the first image of every class in class order, then the second...

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
    n : int

    Returns
    -------
    ndarray of int64, shape (min(n, N),)

    Examples
    --------
    >>> sample_rows(np.array([1, 1, 0, 1, 0]), 4).tolist()
    [2, 0, 4, 1]
    """
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    rank = np.arange(len(labels)) - np.searchsorted(ordered, ordered)  # place within its class
    return order[np.lexsort((ordered, rank))[:n]].astype(np.int64)


def _sample_table(dataset: Dataset) -> str:
    """A one-row table of sample images with their class names below them."""
    rows = sample_rows(dataset.labels, SAMPLES)
    images = dataset.images[rows]  # a lazy set reads these rows only
    cells = "".join(f"<td>{_img_tag(image)}</td>" for image in images)
    names = "".join(
        f'<td style="text-align: center">{html.escape(dataset.classes[label])}</td>'
        for label in dataset.labels[rows]
    )
    return f"<table><tr>{cells}</tr><tr>{names}</tr></table>"


def _img_tag(image: np.ndarray) -> str:
    """``image`` ``(H, W, C)`` uint8 as an ``<img>`` with its PNG inline, ``SHOWN_PIXELS`` high."""
    png = base64.b64encode(_png(image)).decode("ascii")
    height, width = image.shape[:2]
    shown_width = max(1, round(width * SHOWN_PIXELS / height))
    return (
        f'<img src="data:image/png;base64,{png}" width="{shown_width}" height="{SHOWN_PIXELS}" '
        'style="image-rendering: pixelated">'
    )


def _png(image: np.ndarray) -> bytes:
    """PNG bytes of ``image``; a large one is shrunk first so that the page stays small."""
    from PIL import Image

    channels = image.shape[2]
    picture = Image.fromarray(image[:, :, 0] if channels not in (3, 4) else image)
    picture.thumbnail((4 * SHOWN_PIXELS, SHOWN_PIXELS))  # only ever shrinks
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()
