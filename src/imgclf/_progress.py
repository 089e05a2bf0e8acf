"""Progress reporting: a rich bar on a terminal, a live line in a notebook, silence elsewhere.

Long steps (decoding a folder, a cross-validation sweep) wrap their iterable
in :func:`progress`; a step that is long only sometimes (compiling kernels on
first use) runs inside :func:`notice_if_slow`, which says what it is doing once
it has taken a few seconds, and how long it took. On a terminal the user sees
a bar on stderr; inside a Jupyter kernel (JupyterLab, Colab, nbclient), whose
stderr is a pipe although a person is watching, one line under the cell is
updated in place; in a pipe, a log file or CI nothing is drawn, so output
stays clean and parseable.
``IMGCLF_PROGRESS=0`` turns bars off, ``=1`` forces plain lines.
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["notice_if_slow", "progress", "progress_mode"]

NOTEBOOK_REFRESH_S = 0.2  # each update is a message to the front end: a few a second is plenty
NOTICE_AFTER_S = 2.0  # a step this slow says what it is doing
_noticing = threading.local()  # whether this thread is inside notice_if_slow


def progress_mode() -> str:
    """``"bar"`` on an interactive stderr, ``"notebook"`` in a Jupyter kernel,
    ``"lines"`` if forced, else ``"off"``."""
    setting = os.environ.get("IMGCLF_PROGRESS", "")
    if setting == "0":
        return "off"
    if setting == "1":
        return "lines"
    if sys.stderr.isatty():
        return "bar"
    return "notebook" if _in_jupyter_kernel() else "off"


def _in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter kernel (its shell is ipykernel's, or Colab's subclass)."""
    ipython = sys.modules.get("IPython")  # never imported here: a script without it is no kernel
    shell = ipython.get_ipython() if ipython is not None else None
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def progress(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Yield ``items`` while showing how far through ``total`` they are."""
    mode = progress_mode()
    if mode == "off":
        yield from items
    elif mode == "lines":
        yield from _with_lines(items, total, description)
    elif mode == "notebook":
        yield from _with_display(items, total, description)
    else:
        yield from _with_bar(items, total, description)


@contextlib.contextmanager
def notice_if_slow(description: str, after_s: float = NOTICE_AFTER_S) -> Iterator[None]:
    """Run the block; if it takes over ``after_s`` seconds, say ``description`` on stderr
    then (a thread's timer) and how long it took at the end. Silent where progress is
    off (a pipe, CI), as :func:`progress` is, and inside another notice of this thread
    (the outer one speaks for the whole step)."""
    if progress_mode() == "off" or getattr(_noticing, "active", False):
        yield
        return
    _noticing.active = True
    try:
        yield from _noticed(description, after_s)
    finally:
        _noticing.active = False


def _noticed(description: str, after_s: float) -> Iterator[None]:
    """:func:`notice_if_slow`'s timer and its two lines."""
    start, shown = time.monotonic(), threading.Event()

    def show() -> None:
        shown.set()
        print(f"{description} ...", file=sys.stderr, flush=True)

    timer = threading.Timer(after_s, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()  # (a notice being printed is finished first)
        if shown.is_set():
            took = time.monotonic() - start
            print(f"{description}: done in {took:.0f} s", file=sys.stderr, flush=True)


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


def _with_display(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """One display under the cell, updated in place and emptied at the end (as the
    terminal's bar is), so finished steps leave no clutter between the pictures.

    A plain ``display_id`` update needs no ipywidgets: it works in JupyterLab, Colab,
    VS Code and in notebooks executed headless.
    """
    from IPython.display import display

    start = shown = time.monotonic()
    handle = display(_view(description, 0, total, 0.0), raw=True, display_id=True)
    try:
        for done, item in enumerate(items, 1):
            yield item
            now = time.monotonic()
            if now - shown >= NOTEBOOK_REFRESH_S or done == total:
                handle.update(_view(description, done, total, now - start), raw=True)
                shown = now
    finally:
        handle.update({"text/plain": ""}, raw=True)


def _view(description: str, done: int, total: int | None, elapsed: float) -> dict[str, str]:
    """The line as plain text and as HTML (a ``<progress>`` bar, indeterminate without a total).

    Examples
    --------
    >>> _view("Sweeping k-NN", 3, 10, 1.3)["text/plain"]
    'Sweeping k-NN: 3/10 (1.3 s)'
    """
    count = f"{done}/{total if total else '?'}"
    text = f"{description}: {count} ({elapsed:.1f} s)"
    bar = f'<progress value="{done}" max="{total}"' if total else "<progress"
    bar += ' style="width: 16em; vertical-align: middle"></progress>'
    return {"text/plain": text, "text/html": f"{bar} {html.escape(text)}"}
