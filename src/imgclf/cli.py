"""The ``imgclf`` command line: parses, calls the library, prints.

User errors (any :class:`~imgclf.errors.ImgclfError`, a bad value) print
``Error: ...`` on stderr and exit with status 1; usage errors exit with 2
(typer's convention). ``--debug`` shows the traceback instead; ``--quiet``
prints only results.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imgclf import datasets, experiments, io, plots
from imgclf._atomic import atomic_path
from imgclf.errors import ImgclfError
from imgclf.report import experiment_report

__all__ = ["app", "main"]

app = typer.Typer(
    help="Data-driven image classification: load, train, validate, evaluate, look.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}
out = Console(soft_wrap=True)  # no hard line breaks in piped output

# --- shared options ----------------------------------------------------------------------

DataArg = Annotated[
    str,
    typer.Argument(
        help="Dataset spec: digits, toy:NAME, cifar10:PATH, cifar100:PATH, mnist:PATH or a PATH."
    ),
]
SizeOpt = Annotated[str | None, typer.Option(help="Resize folder images to HxW, e.g. 64x64.")]
ModeOpt = Annotated[str | None, typer.Option(help="Folder images as RGB or L (greyscale).")]
OnErrorOpt = Annotated[
    str | None, typer.Option("--on-error", help="Undecodable folder images: raise or skip.")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ModelOpt = Annotated[str, typer.Option(help="knn, linear or net (two-layer network).")]
FeaturesOpt = Annotated[
    str | None,
    typer.Option(
        help="Image features instead of pixels: hog, color, pixels or a list, e.g. hog,color."
    ),
]
HiddenOpt = Annotated[int | None, typer.Option(help="Hidden units (net).")]
DropoutOpt = Annotated[float | None, typer.Option(help="Dropout probability (net).")]
KOpt = Annotated[str | None, typer.Option(help="k values, e.g. 1,3,5,10.")]
MetricOpt = Annotated[str | None, typer.Option(help="l1, l2 or l1,l2.")]
WeightsOpt = Annotated[str | None, typer.Option(help="uniform, distance or both.")]
LossOpt = Annotated[str, typer.Option(help="Linear loss: softmax or svm.")]
LrOpt = Annotated[str | None, typer.Option(help="Learning rates (linear), e.g. 1e-2,1e-1.")]
RegOpt = Annotated[str | None, typer.Option(help="Regularization strengths (linear).")]
EpochsOpt = Annotated[int | None, typer.Option(help="Training epochs (linear).")]
FoldsOpt = Annotated[int, typer.Option(help="k-fold cross-validation folds.")]
ValSizeOpt = Annotated[
    float | None,
    typer.Option(help="Hold out this many training images (or this fraction) instead of folds."),
]
RepeatsOpt = Annotated[
    int, typer.Option(help="With --val-size: average over this many seeded held-out splits.")
]
TrainSizeOpt = Annotated[int | None, typer.Option(help="Use a subset of the training split.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of subsets, splits, folds and training.")]


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print results only.")] = False,
) -> None:
    _state["debug"] = debug
    out.quiet = quiet


# --- parsing helpers (no logic beyond turning text into values) --------------------------


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(
            f"expected HxW such as 64x64, got {text!r}", param_hint="--size"
        ) from None
    return height, width


def _numbers(text: str | None, option: str, kind=float) -> list | None:
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected {kind.__name__} values separated by commas, got {text!r}", param_hint=option
        ) from None


def _words(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _val_size(value: float | None) -> int | float | None:
    return None if value is None else (int(value) if value >= 1 else value)


def _grid(model: str, k, metric, weights, lr, reg) -> dict:
    """The search grid: the values given, the model's defaults for the rest."""
    given = {
        "k": _numbers(k, "--k", int),
        "metric": _words(metric),
        "weights": _words(weights),
        "learning_rate": _numbers(lr, "--lr"),
        "reg": _numbers(reg, "--reg"),
    }
    defaults = experiments.default_grid(model)
    return {name: given[name] or values for name, values in defaults.items()}


def _fixed(
    model: str, loss: str, epochs, seed: int, features=None, hidden=None, dropout=None
) -> dict:
    """Parameters held fixed while a search varies the grid (None: the model's default)."""
    given = {"features": _words(features)}
    if model == "linear":
        given |= {"loss": loss, "seed": seed, "epochs": epochs}
    elif model == "net":
        given |= {"seed": seed, "epochs": epochs, "hidden": hidden, "dropout": dropout}
    return {name: value for name, value in given.items() if value is not None}


def _load(data: str, size=None, mode=None, on_error=None) -> dict[str, datasets.Dataset]:
    return datasets.load(data, size=_parse_size(size), mode=mode, on_error=on_error)


def _write_json(path: str, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))


# --- printing ----------------------------------------------------------------------------


def _print_summary(splits: dict[str, datasets.Dataset]) -> None:
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


def _print_run(run: experiments.ModelRun) -> None:
    selection, search = run.selection, run.selection.search
    out.print(
        f"[bold]{selection.model}[/]: {selection.protocol} on {selection.n_train:,} training images"
    )
    table = Table(*search.configs[0].keys(), "validation accuracy", box=None, padding=(0, 2))
    for i, config in enumerate(search.configs):
        mark = " *" if i == search.best_index else ""
        table.add_row(
            *map(str, config.values()), f"{search.mean[i]:.4f} ± {search.std[i]:.4f}{mark}"
        )
    out.print(table)
    best = ", ".join(f"{k}={v}" for k, v in search.best_params.items())
    # the results themselves: printed even with --quiet
    print(
        f"chosen: {best} (validation accuracy {search.best_score:.4f}); "
        "the test split was not used to choose"
    )
    if run.evaluation is not None:
        print(
            f"final test: fitted on all {selection.n_train:,} training images, evaluated "
            f"once on {run.evaluation.n_test:,} test images: accuracy "
            f"{run.evaluation.accuracy:.4f}"
        )


def _print_evaluation(ev: experiments.Evaluation, classes) -> None:
    top5 = "" if ev.top5_accuracy is None else f", top-5 accuracy {ev.top5_accuracy:.4f}"
    print(f"accuracy {ev.accuracy:.4f} on {ev.n_test:,} test images{top5}")
    table = Table("class", "accuracy", box=None, padding=(0, 2))
    for name, acc in zip(classes, ev.per_class_accuracy, strict=True):
        table.add_row(name, f"{acc:.4f}")
    out.print(table)


# --- commands ----------------------------------------------------------------------------


@app.command("datasets")
def datasets_command(
    data: DataArg,
    size: SizeOpt = None,
    mode: ModeOpt = None,
    on_error: OnErrorOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Print each split's size, image shape, classes and images per class."""
    splits = _load(data, size, mode, on_error)
    if as_json:
        print(json.dumps({split: ds.summary() for split, ds in splits.items()}, indent=2))
    else:
        _print_summary(splits)


@app.command()
def cv(
    data: DataArg,
    model: ModelOpt = "knn",
    features: FeaturesOpt = None,
    hidden: HiddenOpt = None,
    dropout: DropoutOpt = None,
    k: KOpt = None,
    metric: MetricOpt = None,
    weights: WeightsOpt = None,
    loss: LossOpt = "softmax",
    lr: LrOpt = None,
    reg: RegOpt = None,
    epochs: EpochsOpt = None,
    folds: FoldsOpt = 5,
    val_size: ValSizeOpt = None,
    repeats: RepeatsOpt = 1,
    train_size: TrainSizeOpt = None,
    seed: SeedOpt = 0,
    plot: Annotated[str | None, typer.Option(help="Write the accuracy curve (PNG).")] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Write results as JSON.")] = None,
    final_test: Annotated[
        bool, typer.Option(help="Fit the choice on all training data, then evaluate once on test.")
    ] = False,
    size: SizeOpt = None,
    mode: ModeOpt = None,
) -> None:
    """Choose hyperparameters on validation data (the test split is not touched)."""
    run = experiments.run_model(
        _load(data, size, mode),
        model,
        _grid(model, k, metric, weights, lr, reg),
        folds=folds,
        val_size=_val_size(val_size),
        repeats=repeats,
        train_size=train_size,
        seed=seed,
        final_test=final_test,
        fixed=_fixed(model, loss, epochs, seed, features, hidden, dropout),
    )
    _print_run(run)
    if plot:
        plots.cv_curve(run.selection.search, plot, x="k" if model == "knn" else "learning_rate")
        out.print(f"wrote {plot}")
    if json_path:
        _write_json(json_path, run.to_dict())
        out.print(f"wrote {json_path}")


@app.command()
def train(
    data: DataArg,
    output: Annotated[str, typer.Option("-o", "--output", help="Model file to write.")],
    model: ModelOpt = "knn",
    features: FeaturesOpt = None,
    hidden: HiddenOpt = None,
    dropout: DropoutOpt = None,
    k: Annotated[int, typer.Option(help="Neighbours (knn).")] = 1,
    metric: Annotated[str, typer.Option(help="l1 or l2 (knn).")] = "l2",
    weights: Annotated[str, typer.Option(help="uniform or distance (knn).")] = "uniform",
    loss: LossOpt = "softmax",
    lr: Annotated[float | None, typer.Option(help="Learning rate (linear, net).")] = None,
    reg: Annotated[float | None, typer.Option(help="Regularization (linear, net).")] = None,
    epochs: EpochsOpt = None,
    train_size: TrainSizeOpt = None,
    seed: SeedOpt = 0,
    size: SizeOpt = None,
    mode: ModeOpt = None,
) -> None:
    """Fit a model on the training split and save it (npz + JSON header, no pickle)."""
    fixed = _fixed(model, loss, epochs, seed, features, hidden, dropout)
    chosen = {"k": k, "metric": metric, "weights": weights, "learning_rate": lr, "reg": reg}
    defaults = experiments.default_grid(model)
    params = {**fixed, **{name: chosen[name] or values[0] for name, values in defaults.items()}}
    start = time.perf_counter()
    fitted, train_set = experiments.train_model(
        _load(data, size, mode), model, params, train_size=train_size, seed=seed
    )
    io.save(
        fitted,
        output,
        model_type=model,
        class_names=train_set.classes,
        image_shape=train_set.image_shape,
        preprocessing=",".join(fixed.get("features", ["pixels"])),
    )
    out.print(
        f"trained {model} on {len(train_set):,} images in "
        f"{time.perf_counter() - start:.1f} s; wrote {output}"
    )


@app.command()
def evaluate(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="A saved model file.")],
    data: DataArg,
    as_json: JsonFlag = False,
    size: SizeOpt = None,
    mode: ModeOpt = None,
) -> None:
    """Evaluate a saved model once on a dataset's test split."""
    saved = io.load(model_path)
    test = experiments.test_split(_load(data, size, mode))
    ev = experiments.evaluate(saved.model, test)
    if as_json:
        print(
            json.dumps(
                {
                    "accuracy": ev.accuracy,
                    "top5_accuracy": ev.top5_accuracy,
                    "n_test": ev.n_test,
                    "per_class_accuracy": dict(
                        zip(test.classes, ev.per_class_accuracy.tolist(), strict=True)
                    ),
                },
                indent=2,
            )
        )
    else:
        _print_evaluation(ev, test.classes)


@app.command()
def predict(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="A saved model file.")],
    images: Annotated[list[str], typer.Argument(help="Image files (any format Pillow reads).")],
    top: Annotated[int, typer.Option(help="How many classes to list per image.")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Classify image files with a saved model."""
    saved = io.load(model_path)
    results = experiments.predict_files(saved, images, top=top)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        if result["resized"]:
            out.print(f"note: {result['file']} resized to {result['resized']}", style="dim")
        ranked = ", ".join(f"{c['class']} ({c['score']:.3f})" for c in result["top"])
        print(f"{result['file']}: {ranked}")


@app.command()
def report(
    data: DataArg,
    output: Annotated[
        str, typer.Option("-o", "--output", help="HTML file to write.")
    ] = "report.html",
    model: ModelOpt = "knn",
    features: FeaturesOpt = None,
    hidden: HiddenOpt = None,
    dropout: DropoutOpt = None,
    k: KOpt = None,
    metric: MetricOpt = None,
    weights: WeightsOpt = None,
    loss: LossOpt = "softmax",
    lr: LrOpt = None,
    reg: RegOpt = None,
    epochs: EpochsOpt = None,
    folds: FoldsOpt = 5,
    val_size: ValSizeOpt = None,
    repeats: RepeatsOpt = 1,
    train_size: TrainSizeOpt = None,
    seed: SeedOpt = 0,
    size: SizeOpt = None,
    mode: ModeOpt = None,
) -> None:
    """Search, fit, test once and write a self-contained HTML report."""
    start = time.perf_counter()
    splits = _load(data, size, mode)
    timings = {"load data": time.perf_counter() - start}
    grid = _grid(model, k or "1,3,5,10,20", metric or "l1,l2", weights, lr, reg)
    run = experiments.run_model(
        splits,
        model,
        grid,
        folds=folds,
        val_size=_val_size(val_size),
        repeats=repeats,
        train_size=train_size,
        seed=seed,
        fixed=_fixed(model, loss, epochs, seed, features, hidden, dropout),
    )
    _print_run(run)
    experiment_report(f"imgclf report: {data}", splits, [run], timings).write(output)
    out.print(f"wrote {output}")


@app.command()
def demo(
    output: Annotated[
        str, typer.Option("-o", "--output", help="HTML report to write.")
    ] = "report.html",
) -> None:
    """The main job on the built-in digits: choose, train and test k-NN and a linear model."""
    start = time.perf_counter()
    splits = datasets.load("digits")
    runs = experiments.run_demo(splits)
    for run in runs:
        _print_run(run)
    summary = Table(
        "model",
        "chosen",
        "validation",
        "test",
        box=None,
        padding=(0, 2),
        title="imgclf demo: digits",
    )
    for run in runs:
        chosen = ", ".join(f"{k}={v}" for k, v in run.selection.search.best_params.items())
        summary.add_row(
            run.selection.model,
            chosen,
            f"{run.selection.search.best_score:.4f}",
            f"{run.evaluation.accuracy:.4f}",
        )
    out.print(summary)
    experiment_report(
        "imgclf demo: digits", splits, runs, {"total before report": time.perf_counter() - start}
    ).write(output)
    out.print(f"wrote {output} in {time.perf_counter() - start:.1f} s")


# --- entry point -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``imgclf`` console script."""
    try:
        code = app(args=argv, prog_name="imgclf", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # usage errors: typer's message, status 2
        exc.show()
        code = exc.exit_code
    except typer.Abort:
        code = _fail("aborted", 1)
    except KeyboardInterrupt:
        code = _fail("interrupted", 130)
    except (ImgclfError, ValueError, OSError, ImportError) as exc:
        code = _fail(exc, 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(exc: BaseException | str, code: int) -> int:
    if _state["debug"] and isinstance(exc, BaseException):
        raise exc
    print(f"Error: {exc}", file=sys.stderr)
    return code
