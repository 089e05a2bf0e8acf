"""The typer app: one function per command, each parsing, calling the library, printing.

The library is imported inside the commands, so ``imgclf --help`` and a usage
error answer before NumPy, scikit-learn or matplotlib are loaded.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from imgclf import defaults
from imgclf.cli import INTERRUPTED
from imgclf.cli import _options as opt
from imgclf.cli._output import (
    format_params,
    note,
    out,
    print_evaluation,
    print_json,
    print_predictions,
    print_run,
    print_summary,
    result,
)

__all__ = ["app", "run"]

app = typer.Typer(
    help="Data-driven image classification: load, train, validate, evaluate, look.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from imgclf import __version__

        print(f"imgclf {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print results only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug
    out.quiet = quiet


# --- helpers: data in, files out -----------------------------------------------------------


def _load(data: str, options: opt.DataOptions, *, seed: int = 0) -> dict:
    """The dataset's splits; with ``--test-size``, a test split carved off the training one."""
    from imgclf import datasets, experiments

    splits = datasets.load(data, **options.folder_options())
    if options.test_size is not None:
        splits = experiments.carve_test_split(splits, options.test_size, seed=seed)
        note(
            f"held out {len(splits['test']):,} of the training images as the test split "
            f"(--test-size, seed {seed}); training uses the other {len(splits['train']):,}"
        )
    return splits


def _outputs(*paths: str | None) -> None:
    """Check every output path before the work starts: a typo costs a second, not a run."""
    from imgclf._atomic import check_writable

    for path in paths:
        if path:
            check_writable(path)


def _cluster(scheduler: str | None):
    """``--scheduler``: a context in which k-NN search and cross-validation run on a Dask
    cluster (:func:`imgclf.distributed.cluster.running_on`); nothing without it."""
    if scheduler is None:
        import contextlib

        return contextlib.nullcontext()
    from imgclf.distributed.cluster import running_on

    return running_on(scheduler, say=note)


def _write_json(path: str, payload: dict) -> None:
    import json

    from imgclf._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))
    out.print(f"wrote {path}")


# --- commands ------------------------------------------------------------------------------


@app.command("datasets")
def datasets_command(
    data: opt.DataArg,
    as_json: opt.JsonFlag = False,
    size: opt.SizeOpt = None,
    mode: opt.ModeOpt = None,
    on_error: opt.OnErrorOpt = None,
    test_size: opt.TestSizeOpt = None,
) -> None:
    """Print each split's size, image shape, classes and images per class."""
    splits = _load(data, opt.DataOptions(size, mode, on_error, test_size))
    if as_json:
        print_json({split: ds.summary() for split, ds in splits.items()})
    else:
        print_summary(splits)


@app.command()
def cv(
    data: opt.DataArg,
    model: opt.ModelArg = "knn",
    features: opt.FeaturesOpt = None,
    k: opt.KsOpt = None,
    metric: opt.MetricsOpt = None,
    weights: opt.WeightingsOpt = None,
    algorithm: opt.AlgorithmOpt = "exact",
    n_lists: opt.NListsOpt = None,
    n_probe: opt.NProbesOpt = None,
    loss: opt.LossOpt = defaults.LINEAR["loss"],
    solver: opt.SolverOpt = None,
    lr: opt.LrsOpt = None,
    reg: opt.RegsOpt = None,
    epochs: opt.EpochsOpt = None,
    hidden: opt.HiddenOpt = None,
    dropout: opt.DropoutOpt = None,
    folds: opt.FoldsOpt = 5,
    val_size: opt.ValSizeOpt = None,
    repeats: opt.RepeatsOpt = 1,
    train_size: opt.TrainSizeOpt = None,
    seed: opt.SeedOpt = 0,
    final_test: Annotated[
        bool, typer.Option(help="Fit the choice on all training data, then evaluate once on test.")
    ] = False,
    plot: Annotated[str | None, typer.Option(help="Write the accuracy picture (PNG).")] = None,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write the results as JSON.")
    ] = None,
    as_json: opt.JsonFlag = False,
    size: opt.SizeOpt = None,
    mode: opt.ModeOpt = None,
    on_error: opt.OnErrorOpt = None,
    test_size: opt.TestSizeOpt = None,
    scheduler: opt.SchedulerOpt = None,
) -> None:
    """Choose hyperparameters on validation data (the test split is not touched)."""
    _outputs(plot, output)  # before the slow imports and the work
    opt.check_scheduler(scheduler)
    from imgclf import experiments, plots

    splits = _load(data, opt.DataOptions(size, mode, on_error, test_size), seed=seed)
    fixed = opt.model_settings(
        model, loss, epochs, seed, features, hidden, dropout, algorithm, n_lists, solver, lr
    )
    with _cluster(scheduler):
        run = experiments.run_model(
            splits,
            model,
            opt.metrics_for(
                opt.search_grid(model, loss, k, metric, weights, lr, reg, n_probe, fixed=fixed),
                metric,
                algorithm,
            ),
            folds=folds,
            val_size=opt.size_or_fraction(val_size, "--val-size"),
            repeats=repeats,
            train_size=train_size,
            seed=seed,
            final_test=final_test,
            fixed=fixed,
        )
    if as_json:
        print_json(run.to_dict())
    else:
        print_run(run)
    if plot:
        plots.cv_curve(run.selection.search, plot, x=_swept(run.selection.search, model))
        out.print(f"wrote {plot}")
    if output:
        _write_json(output, run.to_dict())


def _swept(search, model: str) -> str:
    """The cv picture's x axis: k (or n_probe, when only it varies), or the learning rate."""
    if model != "knn":
        return "learning_rate"
    varies = {name: len({c.get(name) for c in search.configs}) > 1 for name in ("k", "n_probe")}
    return "n_probe" if varies["n_probe"] and not varies["k"] else "k"


@app.command()
def train(
    data: opt.DataArg,
    output: Annotated[str, typer.Option("-o", "--output", help="Model file to write.")],
    model: opt.ModelArg = "knn",
    features: opt.FeaturesOpt = None,
    k: opt.KOpt = defaults.KNN["k"],
    metric: opt.MetricOpt = defaults.KNN["metric"],
    weights: opt.WeightsOpt = defaults.KNN["weights"],
    algorithm: opt.AlgorithmOpt = "exact",
    n_lists: opt.NListsOpt = None,
    n_probe: opt.NProbeOpt = None,
    loss: opt.LossOpt = defaults.LINEAR["loss"],
    solver: opt.SolverOpt = None,
    lr: opt.LrOpt = None,
    reg: opt.RegOpt = None,
    epochs: opt.EpochsOpt = None,
    hidden: opt.HiddenOpt = None,
    dropout: opt.DropoutOpt = None,
    train_size: opt.TrainSizeOpt = None,
    seed: opt.SeedOpt = 0,
    size: opt.SizeOpt = None,
    mode: opt.ModeOpt = None,
    on_error: opt.OnErrorOpt = None,
    test_size: opt.TestSizeOpt = None,
    sign_key_file: opt.KeyFileOpt = None,
    scheduler: opt.SchedulerOpt = None,
) -> None:
    """Fit a model on the training split and save it (npz + JSON header, no pickle)."""
    _outputs(output)  # before the slow imports and the work
    key = opt.signing_key(sign_key_file)
    opt.check_scheduler(scheduler)
    from imgclf import experiments, io

    fixed = opt.model_settings(
        model, loss, epochs, seed, features, hidden, dropout, algorithm, n_lists, solver, lr
    )
    chosen = {"k": k, "metric": metric, "weights": weights} if model == "knn" else {}
    chosen |= {"n_probe": n_probe} if model == "knn" and n_probe is not None else {}
    chosen |= {name: v for name, v in (("learning_rate", lr), ("reg", reg)) if v is not None}
    start = time.perf_counter()
    splits = _load(data, opt.DataOptions(size, mode, on_error, test_size), seed=seed)
    with _cluster(scheduler):  # k-NN: the index is built on the cluster (ivf: its cells too)
        fitted, train_set = experiments.train_model(
            splits, model, {**fixed, **chosen}, train_size=train_size, seed=seed
        )
    io.save(
        fitted,
        output,
        model_type=model,
        class_names=train_set.classes,
        image_shape=train_set.image_shape,
        preprocessing=",".join(fixed.get("features", ["pixels"])),
        dataset=data,
        key=key,
    )
    result(
        f"trained {model} on {len(train_set):,} images in {time.perf_counter() - start:.1f} s "
        f"with {format_params(experiments.hyperparameters(fitted))}; wrote {output}"
    )


@app.command()
def evaluate(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="A saved model file.")],
    data: opt.DataArg,
    as_json: opt.JsonFlag = False,
    size: opt.SizeOpt = None,
    mode: opt.ModeOpt = None,
    on_error: opt.OnErrorOpt = None,
    test_size: opt.TestSizeOpt = None,
    seed: opt.SeedOpt = 0,
    sign_key_file: opt.KeyFileOpt = None,
    scheduler: opt.SchedulerOpt = None,
) -> None:
    """Evaluate a saved model once on a dataset's test split."""
    opt.check_scheduler(scheduler)
    from imgclf import experiments, io

    key = opt.signing_key(sign_key_file)
    with _cluster(scheduler):  # a k-NN model loaded here searches on the cluster
        saved = io.load(model_path, key=key)
        splits = _load(data, opt.DataOptions(size, mode, on_error, test_size), seed=seed)
        test = experiments.test_for_model(saved, experiments.test_split(splits))
        ev = experiments.evaluate(saved.model, test)
    params = experiments.hyperparameters(saved.model)
    if as_json:
        print_json(_evaluation_record(saved, params, ev, test.classes))
        return
    out.print(f"{saved.model_type} model with {format_params(params)}")
    print_evaluation(ev, test.classes)


def _evaluation_record(saved, params: dict, ev, classes) -> dict:
    return {
        "model_type": saved.model_type,
        "hyperparameters": params,
        "accuracy": ev.accuracy,
        "top5_accuracy": ev.top5_accuracy,
        "n_test": ev.n_test,
        "classes": list(classes),
        "per_class_accuracy": dict(zip(classes, ev.per_class_accuracy.tolist(), strict=True)),
        "confusion_matrix": ev.confusion.tolist(),
    }


ModelsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="MODEL...",
        help="Saved model files (one line each in the picture), followed by DATA.",
        show_default=False,
    ),
]
PerturbationsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--perturbations",
        "-p",
        help="Names with their default severities (shift,flip), or one name with severities "
        "(shift=1,2,4); repeat the option for several. Names: shift (px), flip (share of "
        "images), rotate (degrees), brightness (-0.3: 30% darker), contrast (share removed), "
        "tint, noise (grey levels), occlude (box side, px), elastic (px), background "
        "(share of clutter). \\[default: all, 3 severities each]",
    ),
]


@app.command("robustness")
def robustness_command(
    model_paths: ModelsArg,
    data: Annotated[
        str,
        typer.Argument(help="Dataset spec (as for every command) whose test split is perturbed."),
    ],
    perturbations: PerturbationsOpt = None,
    n_test: Annotated[
        int | None,
        typer.Option(min=1, help="Use a seeded, stratified subset of this many test images."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the perturbations and subset.")] = 0,
    plot: Annotated[str | None, typer.Option(help="Write accuracy against severity (PNG).")] = None,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write the results as JSON.")
    ] = None,
    as_json: opt.JsonFlag = False,
    size: opt.SizeOpt = None,
    mode: opt.ModeOpt = None,
    on_error: opt.OnErrorOpt = None,
    test_size: opt.TestSizeOpt = None,
    sign_key_file: opt.KeyFileOpt = None,
) -> None:
    """Accuracy of saved models on test images perturbed by the lecture's challenges."""
    _outputs(plot, output)
    from imgclf import challenges, experiments, io

    chosen = challenges.parse_perturbations(perturbations)
    key = opt.signing_key(sign_key_file)
    saved = [io.load(path, key=key) for path in model_paths]  # a bad file fails before the work
    splits = _load(data, opt.DataOptions(size, mode, on_error, test_size), seed=seed)
    test = experiments.test_split(splits)
    if n_test is not None and n_test < len(test):
        test = test.subset(n_test, seed=seed)
    start = time.perf_counter()
    results = [
        challenges.robustness(
            model.model,
            experiments.test_for_model(model, test),
            chosen,
            seed=seed,
            name=name,
        )
        for model, name in zip(saved, _model_labels(saved, model_paths), strict=True)
    ]
    _report_robustness(results, time.perf_counter() - start, as_json)
    if plot:
        from imgclf import plots

        plots.robustness(results, plot, n_classes=len(test.classes))
        out.print(f"wrote {plot}")
    if output:
        _write_json(output, {"models": [r.to_dict() for r in results]})


def _model_labels(saved: list, paths: list[str]) -> list[str]:
    """Each model in words (``linear on hog,color``); the file name added where two agree."""
    from pathlib import Path

    from imgclf._validation import final_estimator

    def kind(s) -> str:  # with the search algorithm of an approximate k-NN: "knn (ivf)"
        algorithm = getattr(final_estimator(s.model), "algorithm", "exact")
        return s.model_type if algorithm == "exact" else f"{s.model_type} ({algorithm})"

    labels = [f"{kind(s)} on {s.header.get('preprocessing') or 'pixels'}" for s in saved]
    return [
        f"{label} ({Path(path).stem})" if labels.count(label) > 1 else label
        for label, path in zip(labels, paths, strict=True)
    ]


def _report_robustness(results: list, seconds: float, as_json: bool) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    if as_json:
        print_json({"models": [r.to_dict() for r in results]})
        return
    table = Table("condition", *(r.model for r in results), "mean L2 distance",
                  box=None, padding=(0, 2))  # fmt: skip
    rows = [r.to_records() for r in results]
    for conditions in zip(*rows, strict=True):
        accuracies = [f"{c['accuracy']:.4f}" for c in conditions]
        table.add_row(conditions[0]["condition"], *accuracies,
                      f"{conditions[0]['mean_l2_distance']:,.0f}")  # fmt: skip
    # the table is the result (printed with --quiet too), as wide as it needs: a pipe's
    # 80 columns would cut the model names
    width = Measurement.get(out, out.options.update_width(1000), table).maximum
    console = Console(width=width, soft_wrap=True)
    with console.capture() as captured:
        console.print(table)
    result(captured.get().rstrip("\n"))
    n = len(rows[0]) - 1
    spent = {key: sum(r.timings[key] for r in results) for key in results[0].timings}
    result(
        f"{len(results)} model{'s' if len(results) > 1 else ''} on {results[0].n_test:,} test "
        f"images x {n} perturbed conditions in {seconds:.1f} s (perturbing "
        f"{spent['perturb_s']:.1f} s, distances {spent['distance_s']:.1f} s, predicting "
        f"{spent['predict_s']:.1f} s)"
    )


@app.command()
def predict(
    model_path: Annotated[str, typer.Argument(metavar="MODEL", help="A saved model file.")],
    images: Annotated[
        list[str],
        typer.Argument(help="Image files or folders of images (any format Pillow reads)."),
    ],
    top: Annotated[int, typer.Option(min=1, help="How many classes to list per image.")] = 5,
    as_json: opt.JsonFlag = False,
    sign_key_file: opt.KeyFileOpt = None,
) -> None:
    """Classify images with a saved model; a file that fails is reported and skipped."""
    from imgclf import io
    from imgclf.predict import image_files, predict_file

    saved = io.load(model_path, key=opt.signing_key(sign_key_file))
    predictions, failed = [], 0
    for path in image_files(images):
        try:
            predictions.append(predict_file(saved, path, top=top))
        except (ValueError, OSError) as exc:  # ImgclfErrors are ValueErrors or OSErrors
            failed += 1
            print(
                f"Error: {exc}" if str(path) in str(exc) else f"Error: {path}: {exc}",
                file=sys.stderr,
            )
            predictions.append({"file": str(path), "error": str(exc)})
    if as_json:
        print_json(predictions)
    else:
        print_predictions([p for p in predictions if "error" not in p])
    if failed:
        raise typer.Exit(1)


@app.command()
def report(
    data: opt.DataArg,
    output: Annotated[
        str, typer.Option("-o", "--output", help="HTML file to write.")
    ] = "report.html",
    model: opt.ModelArg = "knn",
    features: opt.FeaturesOpt = None,
    k: opt.KsOpt = None,
    metric: opt.MetricsOpt = None,
    weights: opt.WeightingsOpt = None,
    algorithm: opt.AlgorithmOpt = "exact",
    n_lists: opt.NListsOpt = None,
    n_probe: opt.NProbesOpt = None,
    loss: opt.LossOpt = defaults.LINEAR["loss"],
    solver: opt.SolverOpt = None,
    lr: opt.LrsOpt = None,
    reg: opt.RegsOpt = None,
    epochs: opt.EpochsOpt = None,
    hidden: opt.HiddenOpt = None,
    dropout: opt.DropoutOpt = None,
    folds: opt.FoldsOpt = 5,
    val_size: opt.ValSizeOpt = None,
    repeats: opt.RepeatsOpt = 1,
    train_size: opt.TrainSizeOpt = None,
    seed: opt.SeedOpt = 0,
    size: opt.SizeOpt = None,
    mode: opt.ModeOpt = None,
    on_error: opt.OnErrorOpt = None,
    test_size: opt.TestSizeOpt = None,
    scheduler: opt.SchedulerOpt = None,
    lecture: Annotated[
        bool,
        typer.Option(
            help="Add 'What the lecture says, on this data': versions of a test image at one "
            "L2 distance, accuracy under perturbations, the curse of dimensionality."
        ),
    ] = False,
) -> None:
    """Search, fit, test once and write a self-contained HTML report."""
    _outputs(output)  # before the slow imports and the work
    opt.check_scheduler(scheduler)
    from imgclf import experiments
    from imgclf.report import experiment_report

    start = time.perf_counter()
    splits = _load(data, opt.DataOptions(size, mode, on_error, test_size), seed=seed)
    timings = {"load data": time.perf_counter() - start}
    fixed = opt.model_settings(
        model, loss, epochs, seed, features, hidden, dropout, algorithm, n_lists, solver, lr
    )
    with _cluster(scheduler):  # the report's neighbour pictures search the fitted model too
        run = experiments.run_model(
            splits,
            model,
            opt.metrics_for(
                opt.search_grid(model, loss, k, metric, weights, lr, reg, n_probe, fixed=fixed),
                metric,
                algorithm,
            ),
            folds=folds,
            val_size=opt.size_or_fraction(val_size, "--val-size"),
            repeats=repeats,
            train_size=train_size,
            seed=seed,
            fixed=fixed,
        )
        print_run(run)
        title = f"imgclf report: {data}"
        experiment_report(title, splits, [run], timings, lecture=lecture).write(output)
    out.print(f"wrote {output}")


@app.command()
def demo(
    output: Annotated[
        str, typer.Option("-o", "--output", help="HTML report to write.")
    ] = "report.html",
) -> None:
    """The main job on the built-in digits: choose, train and test k-NN and a linear model."""
    from rich.table import Table

    from imgclf import datasets, experiments
    from imgclf.report import experiment_report

    _outputs(output)
    start = time.perf_counter()
    splits = datasets.load("digits")
    runs = experiments.run_demo(splits)
    for run in runs:
        print_run(run)
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
        search = run.selection.search
        summary.add_row(
            run.selection.model,
            format_params(search.best_params),
            f"{search.best_score:.4f}",
            f"{run.evaluation.accuracy:.4f}",
        )
    out.print(summary)
    experiment_report(
        "imgclf demo: digits", splits, runs, {"total before report": time.perf_counter() - start}
    ).write(output)
    out.print(f"wrote {output} in {time.perf_counter() - start:.1f} s")


@app.command()
def download(
    name: Annotated[str, typer.Argument(help="cifar10, cifar100, mnist or fashion-mnist.")],
    to: Annotated[
        str | None,
        typer.Option(help="Folder to put the files in. [default: the cache's downloads/NAME]"),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Fetch again even if a verified copy is here.")
    ] = False,
) -> None:
    """Download a dataset's official files, verify their checksums, resume if interrupted."""
    from imgclf.datasets.download import download as fetch

    path = fetch(name, to, force=force)
    result(f"{name}: {path}")
    out.print(f"use it as: imgclf datasets {path}")


@app.command()
def serve(
    models: Annotated[
        list[str],
        typer.Argument(
            metavar="MODEL...",
            help="Saved model files, each served as its file name without the ending "
            "(NAME=FILE to choose the name).",
        ),
    ],
    host: opt.HostOpt = "127.0.0.1",
    port: opt.PortOpt = 8000,
    workers: opt.WorkersOpt = 1,
    data: opt.ServeDataOpt = None,
    max_body_size: opt.MaxBodyOpt = "10MB",
    max_batch: opt.MaxBatchOpt = 32,
    batch_wait: opt.BatchWaitOpt = 0.0,
    batch_float_models: opt.BatchFloatOpt = False,
    sign_key_file: opt.KeyFileOpt = None,
) -> None:
    """Serve models over HTTP: predict, Open Inference Protocol v2, metrics, a web page."""
    limit = opt.parse_bytes(max_body_size, "--max-body-size")
    key = opt.signing_key(sign_key_file)
    opt.require_serve_extra()
    from imgclf.serve import server
    from imgclf.serve.app import Settings

    settings = Settings(
        max_body_size=limit,
        max_batch=max_batch,
        max_wait=batch_wait / 1000,
        batch_float_models=batch_float_models,
    )
    server.serve(
        models, host=host, port=port, workers=workers, data=data, settings=settings, key=key,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip


# --- running the app -----------------------------------------------------------------------


def run(argv: list[str] | None) -> int:
    """Run the app; the exit status (errors printed as ``Error: ...``)."""
    from imgclf.errors import ImgclfError

    try:
        code = app(args=argv, prog_name="imgclf", standalone_mode=False)
        if code == INTERRUPTED:  # typer turns Ctrl-C in a command into a quiet status 130
            raise KeyboardInterrupt
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = _fail("aborted", 1)
    except Exception as exc:
        code = _handle(exc, ImgclfError)
    return code if isinstance(code, int) else 0


def _handle(exc: Exception, user_errors: type) -> int:
    """Usage errors: typer's message, status 2. User errors: one line, status 1. Bugs: raised."""
    if isinstance(exc, typer.TyperException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, user_errors | ValueError | OSError | ImportError):
        return _fail(exc, 1)
    if isinstance(exc, MemoryError):  # readers bound what they allocate; this is the last net
        return _fail(f"not enough memory for this ({exc or 'MemoryError'}); try fewer images", 1)
    raise exc


def _fail(exc: BaseException | str, code: int) -> int:
    if _state["debug"] and isinstance(exc, BaseException):
        raise exc
    print(f"Error: {exc}", file=sys.stderr)
    return code
