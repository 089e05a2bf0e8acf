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

__all__ = ["Report", "experiment_report", "lecture_section"]

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

MODEL_NAMES = {"knn": "k-NN", "linear": "Linear classifier", "net": "Two-layer network"}

# Run-time keys (from run_model and the k-NN sweep) in words.
STAGE_NAMES = {
    "selection_s": "hyperparameter search",
    "fit_and_test_s": "fit and test",
    "vote_s": "voting",
    "cross_validate_s": "fitting and scoring every configuration",
}

# The share of the training images held out when the net is refitted to draw learning curves.
CURVE_VAL_FRACTION = 0.1


def experiment_report(
    title: str, splits: dict, runs: list, timings: dict, *, lecture: bool = False
) -> Report:
    """The report of :func:`imgclf.experiments.run_model` runs on one dataset.

    Sections: dataset summary with samples (or the 2D points); for each model
    its hyperparameter search (table, and accuracy against k for k-NN or a
    learning rate x regularization heat map for the trained models), its
    single test evaluation (accuracy, top-5, per-class accuracy, confusion
    matrix) and what it learned (nearest neighbours or decision regions,
    class templates or first-layer weights, training curves); the run time of
    each stage. With ``lecture``, a section "What the lecture says, on this data"
    (:func:`lecture_section`) comes before the run times.
    """
    report = Report(title)
    _dataset_section(report, splits)
    for run in runs:
        _search_section(report, run)
        if run.evaluation is not None:
            # labels by class name, as the run evaluated them (the splits may number them apart)
            test = splits["test"].with_classes(run.train.classes)
            _test_section(report, run, test)
            _learned_section(report, run, {**splits, "test": test})
    if lecture:
        lecture_section(report, splits, runs)
    _timing_section(report, runs, timings)
    return report


def _model_name(run) -> str:
    from imgclf._validation import final_estimator

    name = MODEL_NAMES.get(run.selection.model, run.selection.model)
    if run.selection.model != "linear":
        return name
    clf = None if run.model is None else final_estimator(run.model)
    loss = run.selection.fixed.get("loss", getattr(clf, "loss", None))
    solver = run.selection.fixed.get("solver", getattr(clf, "solver", None))
    details = ", ".join(str(part) for part in (loss, solver) if part)
    return f"{name} ({details})" if details else name


def _dataset_section(report: Report, splits: dict) -> None:
    from imgclf import plots

    report.heading("Dataset")
    rows = [
        [name, len(ds), " x ".join(map(str, ds.image_shape or ds.X.shape[1:])), len(ds.classes)]
        for name, ds in splits.items()
    ]
    train = splits["train"]
    report.table(
        ["split", "images" if train.images is not None else "points", "shape", "classes"], rows
    )
    if train.images is not None:
        report.figure(
            plots.samples(train.images, train.labels, train.classes),
            "Random training images, one row per class",
        )
    else:
        report.figure(
            plots.scatter_points(train.points, train.labels, train.classes),
            "The training points, coloured by class",
        )


def _search_section(report: Report, run) -> None:
    from imgclf.plots._figure import param_label

    selection, search = run.selection, run.selection.search
    report.heading(f"{_model_name(run)}: hyperparameter search")
    protocol = selection.protocol[:1].upper() + selection.protocol[1:]
    report.text(
        f"{protocol} on {selection.n_train:,} training examples; the test "
        "split was not used to choose."
    )
    names = list(search.configs[0])
    if search.scores.shape[1] > 1:
        scores = ["mean validation accuracy", "std over folds"]
        rows = [
            [*map(str, c.values()), m, s]
            for c, m, s in zip(search.configs, search.mean, search.std, strict=True)
        ]
    else:  # one validation set: a std of 0 would say nothing
        scores = ["validation accuracy"]
        rows = [
            [*map(str, c.values()), m] for c, m in zip(search.configs, search.mean, strict=True)
        ]
    report.table([*map(param_label, names), *scores], rows)
    picture = _search_figure(search) if len(search.configs) > 1 else None
    if picture is not None:
        report.figure(*picture)
    elif len(search.configs) == 1:
        report.text("One configuration was tried, so there is no search to draw.", "note")
    chosen = ", ".join(f"{param_label(k, short=True)} = {v}" for k, v in search.best_params.items())
    report.text(f"Chosen: {chosen} (validation accuracy {search.best_score:.4f}).")


def _search_figure(search) -> tuple | None:
    """The picture of a search and its caption: accuracy against k, or a heat map of
    learning rate x regularization; None when nothing varies that can be drawn."""
    from imgclf import plots

    names = list(search.configs[0])
    varying = [n for n in names if len({repr(c[n]) for c in search.configs}) > 1]
    if "k" in names:
        return (
            plots.cv_curve(search, x="k"),
            "Validation accuracy against k, each tried k a tick on the axis (line: mean "
            "accuracy; dots and bars, with several folds: each fold and ±1 standard "
            "deviation; star: the chosen configuration)",
        )
    if {"learning_rate", "reg"} <= set(names):
        return (
            plots.search_heatmap(search, x="learning_rate", y="reg"),
            "Validation accuracy of every learning rate and regularization strength "
            "tried (the chosen pair framed in red)",
        )
    numeric = [n for n in varying if all(isinstance(c[n], int | float) for c in search.configs)]
    if numeric:
        return plots.cv_curve(search, x=numeric[0]), f"Validation accuracy against {numeric[0]}"
    return None


def _test_section(report: Report, run, test) -> None:
    from imgclf import plots

    ev = run.evaluation
    report.heading(f"{_model_name(run)}: final test (evaluated once)")
    top5 = "n/a" if ev.top5_accuracy is None else f"{ev.top5_accuracy:.4f}"
    report.table(["test images", "accuracy", "top-5 accuracy"], [[ev.n_test, ev.accuracy, top5]])
    report.table(
        ["class", "accuracy"],
        [[name, float(acc)] for name, acc in zip(test.classes, ev.per_class_accuracy, strict=True)],
    )
    report.figure(plots.confusion(ev.confusion, test.classes), "Confusion matrix on the test split")


def _learned_section(report: Report, run, splits: dict) -> None:
    """What the fitted model learned, in the pictures that suit the model and the data."""
    learned = "how it decides" if run.selection.model == "knn" else "what it learned"
    report.heading(f"{_model_name(run)}: {learned}")
    if run.train.images is None:
        _regions_figure(report, run)
    model_kind = run.selection.model
    if model_kind == "knn":
        if run.train.images is not None:
            _neighbours_figure(report, run.model, run.train, splits["test"])
    elif model_kind == "linear":
        _linear_figures(report, run)
    else:
        _net_figures(report, run)
    _centroids_figure(report, run)


def _centroids_figure(report: Report, run) -> None:
    """With k-means patch features: the dictionary they learned, without labels."""
    from imgclf import plots
    from imgclf.features import learned_patches

    kmeans = learned_patches(run.model)
    if kmeans is None:
        return
    report.figure(
        plots.centroids(kmeans),
        f"The k-means features' dictionary: {len(kmeans.centroids_):,} centroids of "
        f"{kmeans.patch_size}x{kmeans.patch_size} whitened patches ("
        + ("all" if len(kmeans.centroids_) <= 400 else "the first 400")
        + " shown, de-whitened), learned from the training images without their labels; "
        "every patch of an image is encoded by its distances to them",
    )


def _regions_figure(report: Report, run) -> None:
    """2D points: where each class is predicted (k-NN for k = 1 and the chosen k;
    the trained models with their class lines when they have them)."""
    from imgclf import plots

    train, chosen = run.train, run.selection.best_params
    if run.selection.model == "knn":
        ks = sorted({1, int(chosen.get("k", 1))})
        metric, weights = chosen.get("metric", "l2"), chosen.get("weights", "uniform")
        figure = plots.knn_regions(
            train.points, train.labels, train.classes, ks=ks, metric=metric, weights=weights
        )
        which = " and ".join(f"k = {k}" for k in ks)
        report.figure(
            figure,
            f"Which class k-NN predicts at each point of the plane, for {which} "
            f"({metric.upper()} distance, {weights} votes; the chosen k is {chosen.get('k')}), "
            "with the training points",
        )
        return
    lines = run.selection.model == "linear"
    report.figure(
        plots.decision_regions(run.model, train.points, train.labels, classes=train.classes),
        "Which class the model predicts at each point of the plane, with the training points"
        + ("; dashed: each class's line where its score w·x + b is zero" if lines else ""),
    )


def _linear_figures(report: Report, run) -> None:
    from imgclf import plots

    train = run.train
    if train.images is not None and not run.selection.fixed.get("features"):
        report.figure(
            plots.templates(run.model, train.image_shape, train.classes),
            "What the linear classifier learned: one template per class (its weights "
            "shown as an image; bright where a high pixel value raises the class score)",
        )
    report.figure(plots.loss_curve(run.model), "Training loss of the tested model, step by step")


def _net_figures(report: Report, run) -> None:
    from imgclf import plots

    train = run.train
    if train.images is not None and not run.selection.fixed.get("features"):
        report.figure(
            plots.first_layer(run.model, train.image_shape),
            "First-layer weights of the network, one tile per hidden unit",
        )
    net, caption = _net_with_curves(run)
    report.figure(plots.training_curves(net), caption)


def _net_with_curves(run) -> tuple:
    """A network with a validation curve to draw, and the caption that says where it came from.

    The tested network learned from every training image, so it has no
    validation curve; the chosen configuration is fitted once more, holding
    out a share of the training images, only to draw one.
    """
    from imgclf import experiments
    from imgclf._validation import final_estimator

    if len(getattr(final_estimator(run.model), "val_acc_history_", [])):
        return run.model, "Loss, training and validation accuracy of the tested network"
    params = {**run.selection.best_params, "val_fraction": CURVE_VAL_FRACTION}
    net = experiments.make_model("net", **params).fit(run.train.X, run.train.labels)
    share = f"{CURVE_VAL_FRACTION:.0%}"
    return net, (
        "Loss per step and accuracy after each epoch. The tested network learned from all "
        "training images and so has no validation curve; these curves come from a second fit "
        f"of the chosen configuration that held out {share} of them for validation (its "
        "numbers can differ a little from the tested network's)."
    )


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
    rows = [[_stage(stage), seconds] for stage, seconds in timings.items()]
    for run in runs:
        name = _model_name(run)
        rows += [[f"{name}: {_stage(key)}", seconds] for key, seconds in run.timings.items()]
        # the k-NN sweep times its parts; they are inside the search above, not extra
        parts = {**STAGE_NAMES, "search_s": "nearest-neighbour search"}
        rows += [
            [f"{name}: {parts.get(key, _stage(key))} (part of the hyperparameter search)", seconds]
            for key, seconds in run.selection.search.timings.items()
        ]
    report.table(["stage", "seconds"], rows)


def _stage(key: str) -> str:
    """A timing key in words: known keys by name, else without ``_s`` and underscores."""
    return STAGE_NAMES.get(key, key.removesuffix("_s").replace("_", " "))


# --- what the lecture says, on this data (imgclf report --lecture) -------------------------

# Test images the robustness curves are measured on (a seeded, stratified subset): every
# perturbation at three severities is 30 passes over them.
LECTURE_TEST_IMAGES = 1000


def lecture_section(report: Report, splits: dict, runs: list, *, seed: int = 0) -> None:
    """The lecture's arguments made on this data: the same-distance picture, the robustness
    curves of each tested model, and the curse of dimensionality (coverage, then measured)."""
    report.heading("What the lecture says, on this data")
    train, test = splits["train"], splits.get("test")
    tested = [run for run in runs if run.model is not None]
    if train.images is None or test is None or not tested:
        report.text(
            "These pictures need images, a test split and a tested model; this run has "
            "2D points or no test.",
            "note",
        )
        return
    test = test.with_classes(tested[0].train.classes)
    _same_distance_figure(report, test, tested, seed)
    _robustness_figure(report, test, tested, seed)
    _dimensionality_figure(report, train, test, seed)


def _same_distance_figure(report: Report, test, runs: list, seed: int) -> None:
    from imgclf import plots

    knn = [run for run in runs if run.selection.model == "knn"]
    run = (knn or runs)[0]
    row = int(np.random.default_rng(seed).integers(len(test)))
    report.text(
        "Pixel distance is not informative: the boxed, shifted and tinted versions of a "
        "test image below are made (by bisection on how strong each change is) to lie at "
        "the same L2 distance from it, yet a person sees three different changes, and "
        f"the {_model_name(run)} predicts each version's class as shown."
    )
    report.figure(
        plots.same_distance(
            test.images[row], run.model, label=test.labels[row], classes=test.classes, seed=seed
        ),
        "A test image and three versions at one L2 distance, each with the model's "
        "prediction"
        + (
            "; below, each one's nearest training image and, under the original, its own "
            "nearest training image with its L2 distance for scale"
            if run.selection.model == "knn" and not run.selection.fixed.get("features")
            else ""
        ),
    )


def _robustness_figure(report: Report, test, runs: list, seed: int) -> None:
    from imgclf import plots
    from imgclf.challenges import robustness

    n = LECTURE_TEST_IMAGES
    sample = test if len(test) <= n else test.subset(n, seed=seed)
    results = [robustness(run.model, sample, seed=seed, name=_model_name(run)) for run in runs]
    report.text(
        "The challenges (viewpoint, illumination, occlusion, deformation, background "
        f"clutter): each perturbation at three strengths on {len(sample):,} test images."
    )
    report.figure(
        plots.robustness(results, n_classes=len(test.classes)),
        "Test accuracy against the strength of each perturbation (0: the clean test images; "
        "dotted: chance)",
    )


def _dimensionality_figure(report: Report, train, test, seed: int) -> None:
    from imgclf import plots

    height, width = train.image_shape[:2]
    square = height == width and height % 2 == 0
    report.text(
        "The curse of dimensionality: covering space with points needs exponentially many "
        "of them; " + (
            "as the images are down-sampled, the nearest training image is measured against "
            "the farthest, beside uniform random points of the same dimension."
            if square else "(this data's images are not square with an even side, so only "
            "the lecture's picture is drawn)."
        )
    )  # fmt: skip
    figure = plots.dimensionality(train, test, seed=seed) if square else plots.dimensionality()
    report.figure(
        figure,
        "Top: points a quarter apart needed to cover 1, 2, 3 dimensions"
        + (
            "; bottom: mean ratio of the nearest to the farthest training image (L2) and 1-NN "
            "accuracy at each image size"
            if square
            else ""
        ),
    )
