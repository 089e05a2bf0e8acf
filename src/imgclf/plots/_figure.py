"""Figures without a window: every picture is a matplotlib ``Figure`` on the Agg canvas.

Building ``Figure`` objects directly (never ``pyplot``) means plotting works
on a headless machine, in threads and in tests, and never opens a window.
"""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from imgclf._atomic import atomic_path

__all__ = ["new_figure", "save"]


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """A figure of ``width`` x ``height`` inches attached to an Agg canvas."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | os.PathLike | None, dpi: int = 100) -> Figure:
    """Write ``figure`` as a PNG at ``path`` (atomically) when a path is given."""
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=dpi)
    return figure
