"""Progress reporting: a rich bar on a terminal, silence elsewhere.

Long steps (decoding a folder, a cross-validation sweep) wrap their iterable
in :func:`progress`. On a terminal the user sees a bar on stderr; in a pipe,
a log file or CI nothing is drawn, so output stays clean and parseable.
``IMGCLF_PROGRESS=0`` turns bars off, ``=1`` forces plain lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress", "progress_mode"]


def progress_mode() -> str:
    """``"bar"`` on an interactive stderr, ``"lines"`` if forced, else ``"off"``."""
    setting = os.environ.get("IMGCLF_PROGRESS", "")
    if setting == "0":
        return "off"
    if setting == "1":
        return "lines"
    return "bar" if sys.stderr.isatty() else "off"


def progress(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Yield ``items`` while showing how far through ``total`` they are."""
    mode = progress_mode()
    if mode == "off":
        yield from items
    elif mode == "lines":
        yield from _with_lines(items, total, description)
    else:
        yield from _with_bar(items, total, description)


def _with_lines(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    step = max(1, (total or 10) // 10)
    for done, item in enumerate(items, 1):
        yield item
        if done % step == 0 or done == total:
            print(f"{description}: {done}/{total if total else '?'}", file=sys.stderr)


def _with_bar(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    from rich.progress import track

    yield from track(
        items, total=total, description=description, transient=True, console=_stderr_console()
    )


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
