"""Atomic file writes: a file is either absent, the old one, or complete.

Writers produce a temporary file beside the target (same filesystem, so the
final :func:`os.replace` is atomic) and rename it only once it is complete.
Any exception removes the temporary file, so a failure never leaves a
half-written cache, download or model file behind. A process killed outright
cannot clean up: its temporary file names its process id, and the next write
to the same target removes it once that process is gone.

:func:`check_writable` tells before a long computation whether its output
could be written at all, and errors name the user's path, never a ``.part``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_writable"]


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

    Raises
    ------
    OSError
        Naming ``target`` (not the temporary file) when it cannot be written.

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
    check_writable(target)
    _remove_orphans(target)
    tmp = _temporary(target, suffix)
    try:
        yield tmp
        # mkstemp makes the file private (0600); the finished file gets the
        # permissions any new file of the user gets, so a report can be shared
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None and Path(exc.filename) == tmp:  # say what the user asked for
            raise OSError(exc.errno, f"cannot write {target}: {exc.strerror}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(target: str | os.PathLike) -> Path:
    """``target`` if a file could be written there now; else an OSError saying why.

    Call it before long work whose result goes to ``target``, so that a typo
    in an output path costs a second, not a training run. Missing folders are
    fine (they are created on writing) as long as their nearest existing
    parent is a writable folder.
    """
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder; give a file name")
    if target.exists() and not target.is_file():
        raise OSError(f"cannot write {target}: it exists and is not a regular file")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {target}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {target}: no permission to write in {parent}")
    return target


def _temporary(target: Path, suffix: str) -> Path:
    """A new private file beside ``target`` whose name holds this process's id."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{os.getpid()}."
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix + ".part", dir=target.parent)
    os.close(fd)
    return Path(name)


def _remove_orphans(target: Path) -> None:
    """Delete temporary files of ``target`` left by processes that no longer run."""
    if not target.parent.is_dir():
        return
    for part in target.parent.glob(f".{glob_escape(target.name)}.*.part"):
        pid = part.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            part.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
