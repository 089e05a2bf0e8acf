"""Robustness on CIFAR-10: every perturbation at its 3 default severities, 10,000 test images.

A linear classifier (softmax, the defaults of ``imgclf train --model linear``)
is trained on the 50,000 training images, then scored on the clean test images
and on 30 perturbed copies (10 perturbations x 3 severities). Prints the time
each perturbation takes over the 10,000 images (mean of its 3 severities), the
model's time to predict, the total, its ratio to the goal (issue 17: <= 120 s
for the whole run) and the load average while it ran; writes
benchmarks/results/robustness.json. Run against current NumPy with

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_robustness.py
"""

from __future__ import annotations

import os
import time

from imgclf.challenges import PERTURBATIONS, perturb, robustness
from imgclf.linear import LinearClassifier

from _common import environment, load_cifar, timed, write_json

GOAL_S = 120.0


def main() -> None:
    train, test = load_cifar()
    fit_s, model = timed(lambda: LinearClassifier(seed=0).fit(train.X, train.labels))
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = robustness(model, test, seed=0, name="linear (softmax) on pixels")
    total_s = time.perf_counter() - start
    load_after = os.getloadavg()
    per_perturbation = {
        name: timed(lambda n=name, s=spec.levels[1]: perturb(test.images, n, s))[0]
        for name, spec in PERTURBATIONS.items()
    }
    print(f"trained in {fit_s:.1f} s; clean test accuracy {result.clean_accuracy:.4f}")
    for name, seconds in per_perturbation.items():
        print(f"  {name:<11} {seconds:6.2f} s per severity on {len(test):,} images")
    print(f"robustness(): {total_s:.1f} s for {len(result.accuracy)} conditions "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in result.timings.items())}); "
          f"{total_s / GOAL_S:.2f}x the {GOAL_S:.0f} s goal")  # fmt: skip
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    path = write_json("robustness.json", {
        "environment": environment(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "fit_s": fit_s,
        "robustness_s": total_s,
        "goal_s": GOAL_S,
        "perturb_s_per_severity": per_perturbation,
        "result": result.to_dict(),
    })  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
