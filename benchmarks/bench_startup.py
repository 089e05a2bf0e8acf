"""Start-up: how long a fresh process takes before imgclf does anything.

Each case is a fresh interpreter (nothing cached in memory but what the OS
keeps), timed from outside, repeated; the median is reported. Goals (issue 11):
``imgclf --help`` and a usage error < 0.5 s, ``import imgclf`` < 0.3 s,
``import imgclf`` + loading the cached CIFAR-10 folder < 1.5 s. A bare
``python -c pass`` is measured too, as the floor, and ``python -X importtime``
shows which modules are left in ``import imgclf`` and in the CLI's start.

    python benchmarks/bench_startup.py [--repeat 10] [--folder PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import SHARED_CIFAR, write_json

PYTHON = sys.executable
IMGCLF = str(Path(PYTHON).with_name("imgclf"))

GOALS = {"help": 0.5, "usage_error": 0.5, "import": 0.3, "import_and_load_cached_cifar": 1.5}


def cases(folder: Path) -> dict[str, list[str]]:
    load = f"import imgclf; s = imgclf.load({str(folder)!r}); assert len(s['train']) > 0"
    return {
        "python_floor": [PYTHON, "-c", "pass"],
        "import": [PYTHON, "-c", "import imgclf"],
        "help": [IMGCLF, "--help"],
        "version": [IMGCLF, "--version"],
        "usage_error": [IMGCLF, "train", "digits", "--no-such-option"],
        "import_and_load_cached_cifar": [PYTHON, "-c", load],
    }


def timed_run(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - start


def slowest_imports(code: str, n: int = 10) -> list[tuple[str, float]]:
    """The ``n`` imports of ``code`` with the largest cumulative time, in ms.

    Up to three levels deep (what ``code`` imports, and what those import), so
    the list names the libraries that are left, not only the package's root.
    """
    done = subprocess.run([PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) <= 5 and match.group(3) not in ("site", "encodings"):
            rows.append((match.group(3), int(match.group(1)) / 1000))
    return sorted(rows, key=lambda row: -row[1])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--folder", type=Path, default=SHARED_CIFAR)
    args = parser.parse_args()
    subprocess.run([PYTHON, "-c", f"import imgclf; imgclf.load({str(args.folder)!r})"], check=True)
    results = {}
    for name, argv in cases(args.folder).items():
        timed_run(argv)  # one unmeasured run: files in the OS cache, bytecode compiled
        times = [timed_run(argv) for _ in range(args.repeat)]
        results[name] = {"median_s": statistics.median(times), "runs_s": times}
        goal = GOALS.get(name)
        verdict = (
            ""
            if goal is None
            else f"  goal < {goal} s: {'met' if results[name]['median_s'] < goal else 'MISSED'}"
        )
        print(f"{name:32s} median {statistics.median(times):.3f} s over {args.repeat}{verdict}")
    for label, code in (
        ("import imgclf", "import imgclf"),
        ("CLI start", "import imgclf.cli._commands"),
    ):
        print(f"\nslowest imports in `{label}` (cumulative ms):")
        for module, ms in slowest_imports(code):
            print(f"  {module:40s} {ms:8.1f}")
    ratio = results["import"]["median_s"] / results["python_floor"]["median_s"]
    print(f"\nimport imgclf costs {ratio:.1f}x a bare interpreter start")
    path = write_json("startup.json", {"cores": os.cpu_count(), "goals_s": GOALS, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
