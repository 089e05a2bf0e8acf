"""Atomic file writes: a file is either absent, the old one, or complete.

Writers produce a temporary file beside the target (same filesystem, so the
final :func:`os.replace` is atomic) and rename it only once it is complete.
Any exception removes the temporary file, so a failure never leaves a
half-written cache, download or model file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target`` atomically.

    Parameters
    ----------
    target : path
        The file to create or replace. Its folder is created if missing.
    suffix : str
        Ending for the temporary name (some writers, like ``np.savez``,
        insist on one).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("done")
    >>> out.read_text()
    'done'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix + ".part", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); the finished file gets the
        # permissions any new file of the user gets, so a report can be shared
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
