"""What the commands print: tables for people, JSON for scripts, notes on stderr.

``out`` prints for people and goes quiet with ``--quiet``; results (the
choice, the test accuracy, JSON) go through :func:`result` and are printed
even then. Notes (what was resized, carved, skipped) go to stderr.
"""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

__all__ = [
    "format_params",
    "note",
    "out",
    "print_evaluation",
    "print_json",
    "print_predictions",
    "print_run",
    "print_summary",
    "result",
]

out = Console(soft_wrap=True)  # no hard line breaks in piped output


def result(text: str) -> None:
    """A result line: printed even with ``--quiet``."""
    print(text)


def note(text: str) -> None:
    """A one-line note on stderr (what was resized, carved off, skipped)."""
    if not out.quiet:
        print(f"note: {text}", file=sys.stderr)


def print_json(payload) -> None:
    print(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value):
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def format_params(params: dict) -> str:
    """``"k=3, metric='l1'"``: hyperparameters as a user would type them."""
    return ", ".join(f"{name}={value!r}" for name, value in params.items())


def print_summary(splits: dict) -> None:
    for split, ds in splits.items():
        info = ds.summary()
        out.print(
            f"[bold]{split}[/]: {info['images']:,} images of shape "
            f"{tuple(info['image_shape'])}, {len(ds.classes)} classes"
        )
        table = Table("class", "images", box=None, padding=(0, 2))
        for name, count in info["per_class"].items():
            table.add_row(name, f"{count:,}")
        out.print(table)


def print_run(run) -> None:
    """A search's table of configurations, the choice and, if made, the one test."""
    selection, search = run.selection, run.selection.search
    out.print(
        f"[bold]{selection.model}[/]: {selection.protocol} on {selection.n_train:,} training images"
    )
    table = Table(*search.configs[0].keys(), "validation accuracy", box=None, padding=(0, 2))
    several = search.scores.shape[1] > 1  # a spread only where there are several folds
    for i, config in enumerate(search.configs):
        spread = f" ± {search.std[i]:.4f}" if several else ""
        mark = " *" if i == search.best_index else ""
        table.add_row(*map(str, config.values()), f"{search.mean[i]:.4f}{spread}{mark}")
    out.print(table)
    result(
        f"chosen: {format_params(search.best_params)} (validation accuracy "
        f"{search.best_score:.4f}); the test split was not used to choose"
    )
    if run.evaluation is not None:
        result(
            f"final test: fitted on all {selection.n_train:,} training images, evaluated "
            f"once on {run.evaluation.n_test:,} test images: accuracy "
            f"{run.evaluation.accuracy:.4f}"
        )


def print_evaluation(ev, classes) -> None:
    top5 = "" if ev.top5_accuracy is None else f", top-5 accuracy {ev.top5_accuracy:.4f}"
    result(f"accuracy {ev.accuracy:.4f} on {ev.n_test:,} test images{top5}")
    table = Table("class", "accuracy", box=None, padding=(0, 2))
    for name, acc in zip(classes, ev.per_class_accuracy, strict=True):
        table.add_row(name, "-" if acc != acc else f"{acc:.4f}")  # nan: no test image
    out.print(table)


def print_predictions(predictions: list[dict]) -> None:
    for prediction in predictions:
        if prediction["resized"]:
            note(f"{prediction['file']} resized to {prediction['resized']}")
        first, *rest = prediction["top"]
        ranked = ", ".join(
            [f"{first['class']} ({prediction['score']} {first['score']:.3f})"]
            + [f"{c['class']} ({c['score']:.3f})" for c in rest]
        )
        result(f"{prediction['file']}: {ranked}")
