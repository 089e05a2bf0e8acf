"""Run a snippet in a fresh Python under a memory cap: for tests of hostile files."""

from __future__ import annotations

import subprocess
import sys
import time

CAP = 1 << 30  # 1 GiB of address space: far more than any legitimate read here needs


def run_limited(setup: str, call: str, timeout: float = 60) -> tuple[str, float]:
    """Run ``setup`` then ``call`` under a 1 GiB address-space cap; its output and seconds.

    The output is ``ok`` or the name and message of the imgclf error it raised;
    any other exception, a kill or a timeout fails the test.
    """
    script = f"""
import resource
resource.setrlimit(resource.RLIMIT_AS, ({CAP}, {CAP}))
{setup}
from imgclf.errors import ImgclfError
try:
    {call}
    print("ok")
except ImgclfError as exc:
    print(type(exc).__name__, exc)
"""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip(), time.perf_counter() - start
