"""The ``imgclf`` command line: parses, calls the library, prints.

======================  ===================================================
``_options``            the options every command shares, and the parsers
                        that turn their text into values
``_output``             tables, JSON and messages
``_commands``           the typer app: one function per command
======================  ===================================================

User errors (any :class:`~imgclf.errors.ImgclfError`, a bad value) print
``Error: ...`` on stderr and exit with status 1; usage errors exit with 2
(typer's convention); Ctrl-C prints ``Interrupted`` and exits with 130.
``--debug`` shows the traceback instead; ``--quiet`` prints only results.

This module imports nothing heavy: the app and the library load inside
:func:`main`, so that an interrupt at any moment is caught there.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["main"]

INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``imgclf`` console script (``argv``: for tests)."""
    try:
        with warnings.catch_warnings():  # restored afterwards: main may run inside a program
            warnings.showwarning = _one_line_warning
            from imgclf.cli._commands import run

            code = run(argv)
    except KeyboardInterrupt:
        code = _interrupted(exit_now=argv is None)
    sys.exit(code)


def _interrupted(*, exit_now: bool) -> int:
    print("Interrupted", file=sys.stderr)
    if exit_now:
        # Leave at once: worker threads may be inside a long kernel call, and the
        # interpreter's exit would wait for them. Files being written were already
        # removed while the interrupt unwound (imgclf._atomic).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    return INTERRUPTED


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line on stderr, without Python's source line."""
    print(f"warning: {message}", file=file or sys.stderr)
