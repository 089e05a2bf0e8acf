"""Accuracy against the severity of each perturbation: which model survives a 2-pixel shift?

One panel per perturbation, severity across (in its unit, in words), test
accuracy up; one line per model, every line starting from the model's accuracy
on the clean test images (severity 0). Chance accuracy is a dotted line when
the number of classes is given.
"""

from __future__ import annotations

import math
import os

from imgclf.plots._figure import literal, new_figure, save

__all__ = ["AXIS_WORDS", "robustness"]

# What each perturbation's severity means, for the x axes.
AXIS_WORDS = {
    "shift": "shift (pixels)",
    "flip": "share of images mirrored left-right",
    "rotate": "rotation (degrees)",
    "brightness": "brightness change (%)",
    "contrast": "share of contrast removed",
    "tint": "colour tint (grey levels)",
    "occlude": "side of a black box (pixels)",
    "noise": "noise standard deviation (grey levels)",
    "elastic": "elastic displacement (pixels)",
    "background": "share of background replaced by clutter",
}

MARKERS = "osD^vP<>Xh"


def robustness(results, path: str | os.PathLike | None = None, *, n_classes=None, title=None):
    """Test accuracy against severity, a panel per perturbation, a line per model.

    Parameters
    ----------
    results : RobustnessResult or list of RobustnessResult
        From :func:`imgclf.challenges.robustness`, one per model (named by
        their ``model`` field in the legend).
    path : path, optional
        Where to write the PNG.
    n_classes : int, optional
        Draws chance accuracy (1 / n_classes) as a dotted line.
    title : str, optional
        Default: "Test accuracy as the test images are perturbed".

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from imgclf.challenges import RobustnessResult
    >>> r = RobustnessResult("k-NN", 0.9, ["shift", "shift"], [1.0, 2.0],
    ...                      np.array([0.6, 0.3]), np.array([900.0, 1400.0]), n_test=100)
    >>> robustness(r).axes[0].get_xlabel()
    'shift (pixels)'
    """
    results = _checked(results)
    names = list(dict.fromkeys(n for r in results for n in r.perturbations))
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = new_figure(3.4 * columns + 0.4, 2.9 * rows + 1.3)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for ax, name in zip(axes, names, strict=False):
        _panel(ax, name, results, n_classes)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("test accuracy")
    n_test = ", ".join(sorted({f"{r.n_test:,}" for r in results}))
    figure.suptitle(
        literal(title or f"Test accuracy as the test images are perturbed ({n_test} images)"),
        fontsize="x-large",
    )
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(5, len(labels)))
    return save(figure, path)


def _checked(results) -> list:
    items = list(results) if isinstance(results, list | tuple) else [results]
    if not items:
        raise ValueError("results is empty: give one RobustnessResult per model")
    for i, item in enumerate(items):
        if not hasattr(item, "curve") or not hasattr(item, "perturbations"):
            raise ValueError(
                f"results[{i}] must be a RobustnessResult (imgclf.challenges.robustness); "
                f"got {type(item).__name__}"
            )
    return items


def _panel(ax, name: str, results: list, n_classes) -> None:
    percent = name == "brightness"
    for i, result in enumerate(results):
        if name not in result.perturbations:
            continue
        severity, accuracy = result.curve(name)
        x = severity * 100 if percent else severity
        ax.plot(x, accuracy, marker=MARKERS[i % len(MARKERS)], color=f"C{i}",
                label=literal(result.model))  # fmt: skip
    if n_classes:
        ax.axhline(1 / n_classes, color="grey", linestyle=":", label="chance")
    ax.set_xlabel(AXIS_WORDS.get(name, name))
    ax.set_title(name, fontweight="bold")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
