"""Runs one reader on many files, under the memory cap the harness set; a JSON line per case.

    python -m tests.fuzz._worker READER SECONDS < paths

Each case ends as ``ok``, ``error`` (the library's own error: an
:class:`~imgclf.errors.ImgclfError`), ``bad`` (any other exception: a bug) or
``timeout`` (more than SECONDS, interrupted by a timer). The peak resident
memory of the worker so far is reported with every case.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path


class CaseTimeout(BaseException):
    """Raised by the timer; a BaseException so that no reader can swallow it."""


def _on_alarm(signum, frame):
    raise CaseTimeout


def readers() -> dict:
    """Reader name -> a function of one path: every reader of outside bytes."""
    from imgclf import io
    from imgclf.datasets import cache, load_cifar10, load_mnist
    from imgclf.datasets._safe_pickle import safe_load
    from imgclf.datasets.folder import read_image
    from imgclf.datasets.mnist import read_idx

    def pickle_file(path: Path):
        with open(path, "rb") as f:
            return safe_load(f, str(path))

    return {
        "cifar_pickle": pickle_file,
        "cifar_archive": load_cifar10,  # a .tar.gz path
        "idx": read_idx,  # raw or .gz
        "mnist_folder": load_mnist,
        "model": io.load,
        "cache_entry": lambda path: cache.read_entry(path, "0" * 64),
        "image": read_image,
    }


def main() -> None:
    from imgclf.errors import ImgclfError

    reader = readers()[sys.argv[1]]
    seconds = float(sys.argv[2])
    signal.signal(signal.SIGALRM, _on_alarm)
    for line in sys.stdin:
        path = Path(line.rstrip("\n"))
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            reader(path)
            outcome, detail = "ok", ""
        except CaseTimeout:
            outcome, detail = "timeout", ""
        except ImgclfError as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
        except BaseException as exc:  # noqa: BLE001 - anything else is what we look for
            outcome, detail = "bad", f"{type(exc).__name__}: {exc}"[:300]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        record = {
            "path": str(path),
            "outcome": outcome,
            "detail": detail,
            "seconds": time.perf_counter() - start,
            "peak_mb": peak_mb,
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
