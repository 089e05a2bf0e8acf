"""Figures without a window: every picture is a matplotlib ``Figure`` on the Agg canvas.

Building ``Figure`` objects directly (never ``pyplot``) means plotting works
on a headless machine, in threads and in tests, and never opens a window.
Text that comes from data (class names, parameter values) goes through
:func:`literal` first, so that matplotlib draws it as written.
"""

from __future__ import annotations

import io
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from imgclf._atomic import atomic_path

__all__ = ["BESIDE", "PARAM_LABELS", "literal", "new_figure", "param_label", "save"]

# Legend placement right of the axes, top-aligned: it can never cover what is plotted.
BESIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}

# Hyperparameter names as a reader says them, for axes, legends and tables.
PARAM_LABELS = {
    "k": "k (neighbours that vote)",
    "metric": "distance",
    "weights": "vote weights",
    "learning_rate": "learning rate",
    "reg": "regularization strength",
    "hidden": "hidden units",
    "dropout": "dropout",
    "epochs": "epochs",
    "loss": "loss",
    "batch_size": "batch size",
}


def literal(text) -> str:
    r"""``text`` as a string matplotlib draws verbatim: every ``$`` escaped.

    An unescaped pair of dollar signs starts mathtext, and a class named
    ``$\undefinedcmd{x}$`` would make drawing fail.

    Examples
    --------
    >>> literal("cost in $") == "cost in \\$"
    True
    """
    return str(text).replace("$", r"\$")


def param_label(name: str, short: bool = False) -> str:
    """The words for hyperparameter ``name`` (unknown names: underscores become spaces).

    ``short`` drops the explanation in brackets: "k" rather than "k (neighbours that vote)".
    """
    words = PARAM_LABELS.get(name, name.replace("_", " "))
    return words.split(" (")[0] if short else words


class ShownFigure(Figure):
    """A ``Figure`` that a notebook shows as a picture (Jupyter asks ``_repr_png_``), without
    pyplot or ``%matplotlib inline``."""

    def _repr_png_(self) -> bytes:
        out = io.BytesIO()
        self.savefig(out, format="png", dpi=100)
        return out.getvalue()


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """A figure of ``width`` x ``height`` inches attached to an Agg canvas."""
    figure = ShownFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | os.PathLike | None, dpi: int = 100) -> Figure:
    """Write ``figure`` as a PNG at ``path`` (atomically) when a path is given."""
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=dpi)
    return figure
