"""Feed a reader of untrusted bytes many files, in a worker process under limits.

The worker (``tests/fuzz/_worker.py``) runs with its address space capped
(``RLIMIT_AS``, default 1 GiB) and every case under a timer (default 5 s).
A case must end in success or the library's own error; another exception, a
timeout, or the worker being killed is a failure. One worker serves many
cases (starting a Python with imgclf imported costs ~1 s); if one kills it,
the rest go to a fresh worker.

Seeds and counts: ``make test`` runs a few hundred cases per reader, seeded;
``make fuzz`` sets ``IMGCLF_FUZZ_CASES`` for many more.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 1 << 30
SECONDS = 5.0


def cases_per_reader(default: int = 200) -> int:
    """How many cases a fuzz test makes: ``IMGCLF_FUZZ_CASES`` or ``default``."""
    return int(os.environ.get("IMGCLF_FUZZ_CASES", default))


@dataclass
class FuzzReport:
    """What a batch of cases did."""

    records: list[dict] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        bad = [
            f"{r['path']}: {r['outcome']} {r['detail']}"
            for r in self.records
            if r["outcome"] in ("bad", "timeout")
        ]
        return bad + [
            f"{path}: the worker died (killed, or out of memory outside Python)"
            for path in self.killed
        ]

    @property
    def peak_mb(self) -> float:
        return max((r["peak_mb"] for r in self.records), default=0.0)

    @property
    def slowest_s(self) -> float:
        return max((r["seconds"] for r in self.records), default=0.0)

    def count(self, outcome: str) -> int:
        return sum(r["outcome"] == outcome for r in self.records)

    def summary(self, reader: str) -> str:
        return (
            f"{reader}: {len(self.records) + len(self.killed)} cases, {self.count('ok')} read, "
            f"{self.count('error')} refused with imgclf's errors, {len(self.failures)} failures; "
            f"peak {self.peak_mb:.0f} MB, slowest {self.slowest_s:.2f} s"
        )


def write_cases(folder: Path, make_case, *, suffix: str = "", default: int = 200) -> list[Path]:
    """``cases_per_reader(default)`` files ``case_NNNNN<suffix>``, each of ``make_case()``."""
    paths = []
    for i in range(cases_per_reader(default)):
        path = folder / f"case_{i:05d}{suffix}"
        path.write_bytes(make_case())
        paths.append(path)
    return paths


def flip_bits(rng, data: bytes) -> bytes:
    """``data`` with 1 to 8 random bits flipped (``rng``: a NumPy Generator)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out)


def _limit_memory(cap: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def run_reader(
    reader: str, paths: list[Path], *, memory: int = MEMORY_CAP, seconds: float = SECONDS
) -> FuzzReport:
    """Run ``reader`` (a name in ``_worker.readers``) on every path; a FuzzReport."""
    report, todo = FuzzReport(), [str(p) for p in paths]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMGCLF_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    while todo:
        done = subprocess.run(
            [sys.executable, "-m", "tests.fuzz._worker", reader, str(seconds)],
            input="\n".join(todo) + "\n",
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            preexec_fn=_limit_memory(memory),
            timeout=60 + seconds * len(todo),
        )
        records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        report.records += records
        todo = todo[len(records) :]
        if todo:  # the worker died on todo[0]: note it, go on with the rest
            if (
                not records
                and done.returncode
                and "Traceback" in done.stderr
                and "import" in done.stderr
            ):
                raise RuntimeError(f"the fuzz worker could not start:\n{done.stderr[-3000:]}")
            report.killed.append(todo.pop(0))
    print(report.summary(reader))
    return report
