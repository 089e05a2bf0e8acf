"""The ``imgclf`` command line: parses, calls the library, prints.

User errors (any :class:`~imgclf.errors.ImgclfError`, or a bad argument)
print ``Error: ...`` on stderr and exit with status 1; ``--debug`` shows the
traceback instead. Usage errors exit with status 2 (typer's convention).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imgclf import datasets, experiments, plots
from imgclf._atomic import atomic_path
from imgclf.errors import ImgclfError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Data-driven image classification: load, train, validate, evaluate, look.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}
out = Console(soft_wrap=True)  # no hard line breaks in piped output

DataArg = Annotated[
    str,
    typer.Argument(
        help="Dataset spec: digits, toy:NAME, cifar10:PATH, "
        "cifar100:PATH, mnist:PATH or a PATH (detected)."
    ),
]
SizeOpt = Annotated[str | None, typer.Option(help="Resize folder images to HxW, e.g. 64x64.")]
ModeOpt = Annotated[str | None, typer.Option(help="Folder images as RGB or L (greyscale).")]
OnErrorOpt = Annotated[
    str | None, typer.Option("--on-error", help="Undecodable folder images: raise or skip.")
]


@app.callback()
def _options(debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug


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


def _load(
    data: str, size: str | None = None, mode: str | None = None, on_error: str | None = None
) -> dict[str, datasets.Dataset]:
    return datasets.load(data, size=_parse_size(size), mode=mode, on_error=on_error)


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


@app.command("datasets")
def datasets_command(
    data: DataArg,
    size: SizeOpt = None,
    mode: ModeOpt = None,
    on_error: OnErrorOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print each split's size, image shape, classes and images per class."""
    splits = _load(data, size, mode, on_error)
    if as_json:
        print(json.dumps({split: ds.summary() for split, ds in splits.items()}, indent=2))
    else:
        _print_summary(splits)


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected integers separated by commas, got {text!r}", param_hint=option
        ) from None


def _float_list(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected numbers separated by commas, got {text!r}", param_hint=option
        ) from None


def _words(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _cv_grid(model: str, k, metric, weights, lr, reg) -> dict:
    if model == "knn":
        grid = {
            "k": _int_list(k, "--k") or [1],
            "metric": _words(metric) or ["l2"],
            "weights": _words(weights) or ["uniform"],
        }
    else:
        grid = {
            "learning_rate": _float_list(lr, "--lr") or [1e-3],
            "reg": _float_list(reg, "--reg") or [1e-4],
        }
    return grid


def _print_selection(selection: experiments.Selection) -> None:
    search = selection.search
    table = Table(
        *search.configs[0].keys(),
        "validation accuracy",
        box=None,
        padding=(0, 2),
        title=f"{selection.model}: {selection.protocol} on {selection.n_train:,} training images",
    )
    for i, config in enumerate(search.configs):
        mark = " *" if i == search.best_index else ""
        table.add_row(
            *map(str, config.values()), f"{search.mean[i]:.4f} ± {search.std[i]:.4f}{mark}"
        )
    out.print(table)
    best = ", ".join(f"{k}={v}" for k, v in search.best_params.items())
    out.print(
        f"chosen: [bold]{best}[/] (validation accuracy {search.best_score:.4f}); "
        "the test split was not used"
    )
    if selection.test_accuracy is not None:
        out.print(
            f"final test: fitted on all {selection.n_train:,} training images, evaluated "
            f"once on {selection.n_test:,} test images: accuracy "
            f"[bold]{selection.test_accuracy:.4f}[/]"
        )


@app.command()
def cv(
    data: DataArg,
    model: Annotated[str, typer.Option(help="knn or linear.")] = "knn",
    k: Annotated[str | None, typer.Option(help="k values, e.g. 1,3,5,10.")] = None,
    metric: Annotated[str | None, typer.Option(help="l1, l2 or l1,l2.")] = None,
    weights: Annotated[str | None, typer.Option(help="uniform, distance or both.")] = None,
    lr: Annotated[str | None, typer.Option(help="Learning rates (linear), e.g. 1e-3,1e-2.")] = None,
    reg: Annotated[str | None, typer.Option(help="Regularization strengths (linear).")] = None,
    folds: Annotated[int, typer.Option(help="k-fold cross-validation folds.")] = 5,
    val_size: Annotated[
        float | None,
        typer.Option(
            help="Hold out this many training images (or this fraction) instead of folds."
        ),
    ] = None,
    train_size: Annotated[
        int | None, typer.Option(help="Use a subset of the training split.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of subsets, splits and folds.")] = 0,
    plot: Annotated[str | None, typer.Option(help="Write the accuracy-vs-k plot (PNG).")] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Write results as JSON.")] = None,
    final_test: Annotated[
        bool,
        typer.Option(
            help="Fit the chosen configuration on all training data, evaluate once on test."
        ),
    ] = False,
    size: SizeOpt = None,
    mode: ModeOpt = None,
) -> None:
    """Choose hyperparameters on validation data (the test split is not touched)."""
    grid = _cv_grid(model, k, metric, weights, lr, reg)
    val = None if val_size is None else (int(val_size) if val_size >= 1 else val_size)
    selection = experiments.choose_hyperparameters(
        _load(data, size, mode),
        model,
        grid,
        folds=folds,
        val_size=val,
        train_size=train_size,
        seed=seed,
        final_test=final_test,
    )
    _print_selection(selection)
    if plot:
        plots.cv_curve(selection.search, plot, x="k" if model == "knn" else "learning_rate")
        out.print(f"wrote {plot}")
    if json_path:
        _write_json(json_path, selection.to_dict())
        out.print(f"wrote {json_path}")


def _write_json(path: str, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))


@app.command()
def demo() -> None:
    """The main job, on the built-in digits (no network needed)."""
    _print_summary(datasets.load("digits"))


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
    except (ImgclfError, ValueError, OSError) as exc:
        code = _fail(exc, 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(exc: BaseException | str, code: int) -> int:
    if _state["debug"] and isinstance(exc, BaseException):
        raise exc
    print(f"Error: {exc}", file=sys.stderr)
    return code
