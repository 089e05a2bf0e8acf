"""The options the commands share, and the parsers that turn their text into values.

Defaults come from :mod:`imgclf.defaults`, the table the estimators read too,
so ``--help`` shows what a command really uses. Parsers do no more than turn
text into values; what the values mean is checked by the library.
"""

from __future__ import annotations

from typing import Annotated

import typer

from imgclf import defaults

__all__ = [
    "DataArg",
    "DataOptions",
    "JsonFlag",
    "KeyFileOpt",
    "ModelArg",
    "model_settings",
    "numbers",
    "parse_bytes",
    "parse_size",
    "require_serve_extra",
    "search_grid",
    "signing_key",
    "size_or_fraction",
    "words",
]

_LINEAR, _NET = defaults.LINEAR, defaults.NET


def _both(name: str) -> str:
    """``"0.01 (linear), 0.001 (net)"``: a default that differs by model."""
    return f"{_LINEAR[name]:g} (linear), {_NET[name]:g} (net)"


def _learning_rates() -> str:
    rates = ", ".join(f"{r:g} ({loss})" for loss, r in defaults.LINEAR_LEARNING_RATES.items())
    return f"{rates}, {_NET['learning_rate']:g} (net)"


def _listed(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _grid_text(name: str) -> str:
    """The default search values of ``name``: by model, and by loss where that matters."""
    losses = defaults.LINEAR_LEARNING_RATES
    linear = {loss: _listed(defaults.search_grid("linear", loss)[name]) for loss in losses}
    parts = [f"{text} (linear {loss})" for loss, text in linear.items()]
    if len(set(linear.values())) == 1:
        parts = [f"{next(iter(linear.values()))} (linear)"]
    return "; ".join([*parts, f"{_listed(defaults.search_grid('net')[name])} (net)"])


# --- data ----------------------------------------------------------------------------------

DataArg = Annotated[
    str,
    typer.Argument(
        help="Dataset spec: digits, toy:NAME, cifar10:PATH, cifar100:PATH, mnist:PATH or a PATH."
    ),
]
SizeOpt = Annotated[
    str | None, typer.Option(help="Resize folder images to HxW, e.g. 64x64. \\[default: as stored]")
]
ModeOpt = Annotated[
    str | None, typer.Option(help="Folder images as RGB or L (greyscale). \\[default: RGB]")
]
OnErrorOpt = Annotated[
    str | None,
    typer.Option("--on-error", help="Undecodable folder images: raise or skip. \\[default: raise]"),
]
TestSizeOpt = Annotated[
    float | None,
    typer.Option(
        help="A dataset without a test split: hold out this many training images "
        "(or this fraction) as a seeded, stratified test split."
    ),
]


class DataOptions:
    """What every command that loads a dataset accepts, gathered for the loader."""

    def __init__(self, size=None, mode=None, on_error=None, test_size=None):
        self.size, self.mode, self.on_error = parse_size(size), mode, on_error
        self.test_size = size_or_fraction(test_size, "--test-size")

    def folder_options(self) -> dict:
        return {"size": self.size, "mode": self.mode, "on_error": self.on_error}


# --- models and their hyperparameters ------------------------------------------------------

ModelArg = Annotated[str, typer.Option(help="knn, linear or net (two-layer network).")]
FeaturesOpt = Annotated[
    str | None,
    typer.Option(
        help="Image features instead of pixels: hog, color, pixels, kmeans (learned k-means "
        "patch features, 1,600 centroids; kmeans:N for N) or a list, e.g. hog,color or "
        "kmeans,color. \\[default: pixels]"
    ),
]
HiddenOpt = Annotated[
    int | None, typer.Option(help=f"Hidden units (net). \\[default: {_NET['hidden']}]")
]
DropoutOpt = Annotated[
    float | None,
    typer.Option(help=f"Dropout probability (net). \\[default: {_NET['dropout']:g}]"),
]
LossOpt = Annotated[str, typer.Option(help="Linear loss: softmax or svm.")]
SolverOpt = Annotated[
    str | None,
    typer.Option(
        help="Linear solver: sgd (minibatch epochs) or lbfgs (the whole objective to "
        "convergence; the svm is then one-vs-all squared hinge). \\[default: lbfgs with "
        "kmeans features and no --lr, else sgd]"
    ),
]
EpochsOpt = Annotated[
    int | None,
    typer.Option(
        help=f"Training epochs (linear, net). \\[default: {_LINEAR['epochs']} (linear), "
        f"{_NET['epochs']} (net)]"
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed of subsets, splits, folds and training.")]
TrainSizeOpt = Annotated[
    int | None,
    typer.Option(
        help="Use a seeded, stratified subset of this many training images. \\[default: all]"
    ),
]

# one value each (train)
KOpt = Annotated[int, typer.Option(help="Neighbours that vote (knn).")]
MetricOpt = Annotated[str, typer.Option(help="Distance (knn): l1 or l2.")]
WeightsOpt = Annotated[str, typer.Option(help="Votes (knn): uniform or distance (1/d).")]
LrOpt = Annotated[
    float | None, typer.Option(help=f"Learning rate. \\[default: {_learning_rates()}]")
]
RegOpt = Annotated[
    float | None, typer.Option(help=f"Regularization strength. \\[default: {_both('reg')}]")
]
NProbeOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="Lists searched per query (knn with an IVF index). \\[default: the index's]"
    ),
]

# the search index (knn): one value each, for cv, train and report
AlgorithmOpt = Annotated[
    str,
    typer.Option(
        help="Neighbour search (knn): exact; ivf (imgclf's approximate index, L1 and L2); "
        "hnsw (hnswlib, L2); or faiss:FACTORY, e.g. faiss:IVF1024,Flat or faiss:HNSW32."
    ),
]
NListsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="Lists of the ivf index. \\[default: 4 sqrt(training images)]"),
]

# lists of values to search (cv, report)
KsOpt = Annotated[
    str | None,
    typer.Option(
        "--k",
        help=f"k values to try (knn). \\[default: {_listed(defaults.search_grid('knn')['k'])}]",
    ),
]
MetricsOpt = Annotated[
    str | None,
    typer.Option(
        "--metric",
        help="Distances to try (knn). "
        f"\\[default: {_listed(defaults.search_grid('knn')['metric'])}]",
    ),
]
WeightingsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Vote weightings to try (knn): uniform, distance or both. \\[default: uniform]",
    ),
]
LrsOpt = Annotated[
    str | None,
    typer.Option(
        "--lr",
        help=f"Learning rates to try. \\[default: {_grid_text('learning_rate')}]",
    ),
]
RegsOpt = Annotated[
    str | None,
    typer.Option(
        "--reg",
        help=f"Regularization strengths to try. \\[default: {_grid_text('reg')}]",
    ),
]
NProbesOpt = Annotated[
    str | None,
    typer.Option(
        "--n-probe",
        help="Lists searched per query to try (knn with --algorithm ivf or faiss:IVF...), "
        "e.g. 1,2,4,8,16. \\[default: the index's]",
    ),
]
FoldsOpt = Annotated[int, typer.Option(help="k-fold cross-validation folds.")]
ValSizeOpt = Annotated[
    float | None,
    typer.Option(help="Hold out this many training images (or this fraction) instead of folds."),
]
RepeatsOpt = Annotated[
    int, typer.Option(help="With --val-size: average over this many seeded held-out splits.")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS|local:N",
        help="Run k-NN search and cross-validation on a Dask cluster: a running `dask "
        "scheduler`'s address (tcp://host:8786), or local:N to start N workers here "
        "(needs the dask extra). \\[default: this process]",
    ),
]
KeyFileOpt = Annotated[
    str | None,
    typer.Option(
        "--sign-key-file",
        help="A file holding a secret key as hex: sign the model file (train) or refuse "
        "files not signed with it (evaluate, predict). \\[default: $IMGCLF_MODEL_KEY if set]",
    ),
]


def signing_key(path: str | None) -> bytes | None:
    """The key in ``path`` (None: the library falls back on ``$IMGCLF_MODEL_KEY``)."""
    if path is None:
        return None
    from imgclf.io import read_key_file

    return read_key_file(path)


# --- parsers -------------------------------------------------------------------------------


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"64x48"`` -> ``(64, 48)``."""
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(
            f"expected HxW such as 64x64, got {text!r}", param_hint="--size"
        ) from None
    return height, width


_BYTE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_bytes(text: str, option: str) -> int:
    """``"10MB"`` -> ``10_000_000``; ``"64KiB"`` -> ``65536``; ``"5000"`` -> ``5000``."""
    cleaned = text.strip().lower().removesuffix("b")
    number = cleaned.rstrip("kmgi")
    unit = cleaned[len(number) :]
    try:
        value = int(float(number) * _BYTE_UNITS[unit])
    except (ValueError, KeyError):
        value = 0
    if value < 1:
        raise typer.BadParameter(
            f"expected a size such as 10MB, 512KiB or 100000, got {text!r}", param_hint=option
        )
    return value


# --- serve ---------------------------------------------------------------------------------

HostOpt = Annotated[
    str, typer.Option(help="Address to listen on (0.0.0.0: every interface; think first).")
]
PortOpt = Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free).")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Worker processes, each with the models.")]
ServeDataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset spec whose images the web page shows: random test images, and the "
        "neighbours of a k-NN model trained on features.",
    ),
]
MaxBodyOpt = Annotated[
    str, typer.Option(help="Largest request body; larger ones are refused (413) unread.")
]
MaxBatchOpt = Annotated[int, typer.Option(min=1, help="Most images one model call classifies.")]
BatchWaitOpt = Annotated[
    float,
    typer.Option(
        min=0.0, help="Milliseconds an idle model waits for more requests to batch (0: none)."
    ),
]

BatchFloatOpt = Annotated[
    bool,
    typer.Option(
        help="Batch linear, net and float-feature k-NN models too: more throughput under "
        "load, but BLAS then sums in another order, so scores may differ from one-at-a-time "
        "answers in their last bits. Exact k-NN on pixels is always batched.",
    ),
]


def check_scheduler(scheduler: str | None) -> None:
    """A usage error for a ``--scheduler`` that is neither an address nor local:N."""
    if scheduler is not None:
        from imgclf.distributed.cluster import parse_scheduler

        try:
            parse_scheduler(scheduler)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--scheduler") from None


def require_serve_extra() -> None:
    """An ImportError that says how to install what ``serve`` needs, when it is missing."""
    from importlib.util import find_spec

    missing = [
        m for m in ("uvicorn", "httptools", "uvloop", "prometheus_client") if not find_spec(m)
    ]
    if missing:
        raise ImportError(f"imgclf serve needs {', '.join(missing)}: pip install 'imgclf[serve]'")


def numbers(text: str | None, option: str, kind=float) -> list | None:
    """``"1,3,5"`` -> ``[1, 3, 5]``; an option given without any value is an error."""
    if text is None:
        return None
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise typer.BadParameter(
            f"expected {kind.__name__} values separated by commas, got {text!r}", param_hint=option
        )
    return values


def words(text: str | None, option: str = "") -> list[str] | None:
    """``"l1, l2"`` -> ``["l1", "l2"]``."""
    if text is None:
        return None
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise typer.BadParameter(
            f"expected names separated by commas, got {text!r}", param_hint=option
        )
    return values


def size_or_fraction(value: float | None, option: str) -> int | float | None:
    """A count (``1000``) stays an int; a fraction (``0.2``) stays a float."""
    if value is None:
        return None
    if not value > 0:
        raise typer.BadParameter(
            f"expected a count or a fraction > 0, got {value:g}", param_hint=option
        )
    return int(value) if value >= 1 else value


def search_grid(
    model: str,
    loss: str,
    k=None,
    metric=None,
    weights=None,
    lr=None,
    reg=None,
    n_probe=None,
    *,
    fixed: dict | None = None,
) -> dict:
    """The grid to search: the values given, the default grid for the rest; ``fixed``
    (:func:`model_settings`): no learning rates for a linear model trained by L-BFGS."""
    from imgclf.experiments import default_grid

    if (fixed or {}).get("solver") == "lbfgs":
        if lr is not None:
            raise typer.BadParameter("--lr: L-BFGS has no learning rate (it is for --solver sgd)")
        return {"reg": numbers(reg, "--reg") or default_grid(model, loss)["reg"]}

    given = {
        "k": numbers(k, "--k", int),
        "metric": words(metric, "--metric"),
        "weights": words(weights, "--weights"),
        "learning_rate": numbers(lr, "--lr"),
        "reg": numbers(reg, "--reg"),
    }
    grid = default_grid(model, loss)
    grid = {name: values if given[name] is None else given[name] for name, values in grid.items()}
    probes = numbers(n_probe, "--n-probe", int)
    if probes is not None and model == "knn":
        grid["n_probe"] = probes
    return grid


def linear_solver(solver: str | None, features: list | None, lr=None) -> str | None:
    """The solver given; else SGD's default when learning rates are (only SGD has one);
    else L-BFGS with k-means features (SGD underfits their 4 x centroids columns: on
    CIFAR-10's 6,400, 0.68-0.69 held out against 0.74 converged), else None (the model's
    default)."""
    if solver is not None or lr is not None:
        return solver
    return "lbfgs" if any(f.split(":")[0] == "kmeans" for f in features or []) else None


def metrics_for(grid: dict, given, algorithm: str) -> dict:
    """A default metric grid keeps only what ``algorithm`` searches (hnsw: L2 only)."""
    if given is not None or "metric" not in grid:
        return grid
    from imgclf.neighbors.algorithms import check_algorithm, metrics_of

    usable = metrics_of(check_algorithm(algorithm))
    return {**grid, "metric": [m for m in grid["metric"] if m in usable] or list(usable)}


def model_settings(
    model: str,
    loss: str,
    epochs,
    seed: int,
    features=None,
    hidden=None,
    dropout=None,
    algorithm: str = "exact",
    n_lists=None,
    solver=None,
    lr=None,
) -> dict:
    """Parameters held fixed while a search varies the grid (absent: the model's default);
    ``lr``, the learning rates given, only tells which solver is meant."""
    given = {"features": words(features, "--features")}
    if model == "knn" and algorithm != "exact":
        given |= {"algorithm": algorithm, "n_lists": n_lists, "seed": seed}
    if model == "linear":
        given |= {"loss": loss, "seed": seed, "epochs": epochs}
        given |= {"solver": linear_solver(solver, given["features"], lr)}
    elif model == "net":
        given |= {"seed": seed, "epochs": epochs, "hidden": hidden, "dropout": dropout}
    return {name: value for name, value in given.items() if value is not None}
