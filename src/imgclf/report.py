"""A self-contained HTML report: every picture embedded, nothing fetched to view it.

:class:`Report` collects sections (headings, text, tables, figures) and renders
one HTML file; figures become base64 PNG ``data:`` URIs, styles are inline.
Text is escaped, so dataset or class names cannot inject markup.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

from imgclf._atomic import atomic_path

__all__ = ["Report", "experiment_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
.note { color: #555; }
"""


class Report:
    """An HTML document built section by section.

    Examples
    --------
    >>> r = Report("Demo")
    >>> r.heading("Results").text("k-NN <b>wins</b>").table(["model", "acc"], [["knn", 0.98]])
    ... # doctest: +ELLIPSIS
    <imgclf.report.Report object at ...>
    >>> "&lt;b&gt;wins&lt;/b&gt;" in r.render()
    True
    """

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> Report:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def text(self, text: str, css_class: str | None = None) -> Report:
        attr = f' class="{css_class}"' if css_class else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")
        return self

    def table(self, columns: list[str], rows: list[list]) -> Report:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def figure(self, figure, caption: str) -> Report:
        """Embed a matplotlib Figure as a PNG data URI."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        self.parts.append(
            f'<figure><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return self

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the HTML atomically; returns the path."""
        with atomic_path(path, suffix=".html") as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return Path(path)


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


# --- the experiment report ---------------------------------------------------------------


def experiment_report(title: str, splits: dict, runs: list, timings: dict) -> Report:
    """The report of :func:`imgclf.experiments.run_model` runs on one dataset.

    Sections: dataset summary with samples; for each model its hyperparameter
    search (table and curve), its single test evaluation (accuracy, top-5,
    per-class accuracy, confusion matrix) and what it learned (nearest
    neighbours or class templates); the run time of each stage.
    """
    report = Report(title)
    _dataset_section(report, splits)
    for run in runs:
        _search_section(report, run)
        if run.evaluation is not None:
            _test_section(report, run, splits["test"])
            _learned_section(report, run, splits)
    _timing_section(report, runs, timings)
    return report


def _dataset_section(report: Report, splits: dict) -> None:
    from imgclf import plots

    report.heading("Dataset")
    rows = [
        [name, len(ds), " x ".join(map(str, ds.image_shape or ds.X.shape[1:])), len(ds.classes)]
        for name, ds in splits.items()
    ]
    report.table(["split", "images", "shape", "classes"], rows)
    train = splits["train"]
    if train.images is not None:
        report.figure(
            plots.samples(train.images, train.labels, train.classes),
            "Random training images, one row per class",
        )
    else:
        report.figure(
            plots.knn_regions(train.points, train.labels, train.classes),
            "The training points and k-NN decision regions for k = 1 and 3",
        )


def _search_section(report: Report, run) -> None:
    from imgclf import plots

    selection, search = run.selection, run.selection.search
    report.heading(f"{selection.model}: hyperparameter search")
    report.text(
        f"{selection.protocol} on {selection.n_train:,} training images; the test "
        "split was not used to choose."
    )
    names = list(search.configs[0])
    rows = [
        [*map(str, c.values()), m, s]
        for c, m, s in zip(search.configs, search.mean, search.std, strict=True)
    ]
    report.table([*names, "mean accuracy", "std"], rows)
    x = "k" if "k" in names else names[0]
    report.figure(plots.cv_curve(search, x=x), f"Validation accuracy against {x}")
    chosen = ", ".join(f"{k}={v}" for k, v in selection.best_params.items())
    report.text(f"Chosen: {chosen} (validation accuracy {search.best_score:.4f}).")


def _test_section(report: Report, run, test) -> None:
    from imgclf import plots

    ev = run.evaluation
    report.heading(f"{run.selection.model}: final test (evaluated once)")
    top5 = "n/a" if ev.top5_accuracy is None else f"{ev.top5_accuracy:.4f}"
    report.table(["test images", "accuracy", "top-5 accuracy"], [[ev.n_test, ev.accuracy, top5]])
    report.table(
        ["class", "accuracy"],
        [[name, float(acc)] for name, acc in zip(test.classes, ev.per_class_accuracy, strict=True)],
    )
    report.figure(plots.confusion(ev.confusion, test.classes), "Confusion matrix on the test split")


def _learned_section(report: Report, run, splits: dict) -> None:
    """Nearest neighbours for k-NN; templates / first-layer weights and training curves
    for the trained models (weights are shown as images only when they see pixels)."""
    from imgclf import plots

    train, test = run.train, splits["test"]
    if train.images is None:
        return
    model, on_pixels = run.model, not run.selection.fixed.get("features")
    if run.selection.model == "knn":
        _neighbours_figure(report, model, train, test)
    elif run.selection.model == "linear":
        if on_pixels:
            report.figure(
                plots.templates(model, train.image_shape, train.classes),
                "What the linear classifier learned: one template per class",
            )
        report.figure(plots.loss_curve(model), "Training loss")
    else:
        if on_pixels:
            report.figure(
                plots.first_layer(model, train.image_shape),
                "First-layer weights of the network, as images",
            )
        report.figure(plots.training_curves(model), "Loss and accuracy per epoch")


def _neighbours_figure(report: Report, model, train, test) -> None:
    from imgclf import plots

    rows = np.random.default_rng(0).choice(len(test), min(8, len(test)), replace=False)
    k = min(10, len(train))
    queries = test.X[rows]
    if hasattr(model, "steps"):  # features first: neighbours are searched among features
        queries, model = model[:-1].transform(queries), model.steps[-1][1]
    _, neighbors = model.kneighbors(queries, k)
    figure = plots.neighbours(
        test.images[rows], test.labels[rows], train.images, train.labels, neighbors, train.classes
    )
    report.figure(figure, f"Test images and their {k} nearest training images")


def _timing_section(report: Report, runs: list, timings: dict) -> None:
    report.heading("Run time")
    rows = [[stage, seconds] for stage, seconds in timings.items()]
    for run in runs:
        rows += [
            [f"{run.selection.model}: {stage}", seconds]
            for stage, seconds in {**run.selection.search.timings, **run.timings}.items()
        ]
    report.table(["stage", "seconds"], rows)
