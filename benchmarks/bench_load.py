"""Cold and warm load of an image folder (default: the shared CIFAR-10 JPEGs).

Cold: an empty cache, every JPEG decoded (on all cores). Warm: the same folder
again, read from the cache. Each is repeated and the median reported, since
shared machines are noisy. Goals: cold >= 5,000 images/s on 2 cores (issue 2),
warm <= 0.5 s (issue 15). The load average is printed with the figures.

``--warm-only`` times warm loads alone against the cache in ``$IMGCLF_CACHE``
(filled once first if it misses): no decoding, so it can be repeated cheaply.

    python benchmarks/bench_load.py [FOLDER] [--repeat 3] [--warm-only] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


def timed_load(folder: Path) -> tuple[float, int]:
    from imgclf.datasets import load_folder

    start = time.perf_counter()
    splits = load_folder(folder)
    return time.perf_counter() - start, sum(len(ds) for ds in splits.values())


def measure(folder: Path, repeat: int) -> dict:
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["IMGCLF_CACHE"] = cache
            seconds, n = timed_load(folder)
            cold.append(seconds)
            warm.append(timed_load(folder)[0])
    return {
        "folder": str(folder),
        "images": n,
        "cores": os.cpu_count(),
        "cold_seconds": cold,
        "warm_seconds": warm,
        "cold_median_s": statistics.median(cold),
        "warm_median_s": statistics.median(warm),
        "cold_images_per_s": n / statistics.median(cold),
    }


def measure_warm(folder: Path, repeat: int) -> dict:
    timed_load(folder)  # fills the cache if it misses; not counted
    warm = [timed_load(folder)[0] for _ in range(repeat)]
    return {"folder": str(folder), "cores": os.cpu_count(), "warm_seconds": warm,
            "warm_median_s": statistics.median(warm), "warm_best_s": min(warm)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm-only", action="store_true", help="warm loads only")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/load.json"))
    args = parser.parse_args()
    if args.warm_only:
        result = measure_warm(args.folder, args.repeat)
    else:
        result = measure(args.folder, args.repeat)
        print(f"{result['images']:,} images on {result['cores']} cores")
        print(
            f"cold: median {result['cold_median_s']:.2f} s = "
            f"{result['cold_images_per_s']:,.0f} images/s  (goal >= 5,000)"
        )
    result["load_average"] = os.getloadavg()
    print(f"warm: median {result['warm_median_s']:.2f} s  (goal <= 0.5 s); load average "
          + " ".join(f"{x:.1f}" for x in result["load_average"]))  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
