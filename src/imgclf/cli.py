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

from imgclf import datasets
from imgclf.errors import ImgclfError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Data-driven image classification: load, train, validate, evaluate, look.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}
out = Console()

DataArg = Annotated[str, typer.Argument(help="Dataset spec: digits, toy:NAME, cifar10:PATH, "
                                        "cifar100:PATH, mnist:PATH or a PATH (detected).")]
SizeOpt = Annotated[str | None, typer.Option(help="Resize folder images to HxW, e.g. 64x64.")]
ModeOpt = Annotated[str | None, typer.Option(help="Folder images as RGB or L (greyscale).")]
OnErrorOpt = Annotated[str | None, typer.Option("--on-error",
                                                help="Undecodable folder images: raise or skip.")]


@app.callback()
def _options(debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HxW such as 64x64, got {text!r}",
                                 param_hint="--size") from None
    return height, width


def _load(data: str, size: str | None = None, mode: str | None = None,
          on_error: str | None = None) -> dict[str, datasets.Dataset]:
    return datasets.load(data, size=_parse_size(size), mode=mode, on_error=on_error)


def _print_summary(splits: dict[str, datasets.Dataset]) -> None:
    for split, ds in splits.items():
        info = ds.summary()
        out.print(f"[bold]{split}[/]: {info['images']:,} images of shape "
                  f"{tuple(info['image_shape'])}, {len(ds.classes)} classes")
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
