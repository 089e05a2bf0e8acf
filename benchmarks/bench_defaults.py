"""Defaults that a user runs: imgclf's estimators with no hyperparameter given, and peers.

49,000 training and 1,000 validation images from CIFAR-10's training folder
(``train_val_split(labels, 1000, seed=0)``), raw uint8 pixels, flattened.
Trained with their defaults only (``loss`` aside):

- ``LinearClassifier()`` (softmax), ``LinearClassifier(loss="svm")``,
  ``TwoLayerNet()``: they standardize the pixels themselves.
- scikit-learn's ``SGDClassifier()`` (hinge loss) and ``MLPClassifier()``
  (100 ReLU units, Adam, 200 iterations at most) on pixels / 255, the
  scaling scikit-learn's own examples give images; ``MLPClassifier()`` is
  capped at ``--mlp-max-iter`` epochs (default 15, imgclf's epochs) since its
  default of 200 takes an hour here, and says so.

Goals (issue 11, item 4): validation accuracy >= 0.39 (softmax), >= 0.38
(SVM), >= 0.48 (network); linear training < 30 s, network < ~3 min on 2
cores; the training loss falls from the first epoch to the last. Writes
benchmarks/results/defaults.json. Run against current NumPy with

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_defaults.py
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from imgclf.linear import LinearClassifier
from imgclf.model_selection import train_val_split
from imgclf.nn import TwoLayerNet

from _common import environment, load_cifar, timed, write_json

SEED = 0
VAL_SIZE = 1000
GOALS = {"softmax": 0.39, "svm": 0.38, "net": 0.48}
TIME_GOALS_S = {"softmax": 30, "svm": 30, "net": 180}


def ours() -> dict:
    """imgclf's models, only ``loss`` given."""
    return {
        "softmax": LinearClassifier(),
        "svm": LinearClassifier(loss="svm"),
        "net": TwoLayerNet(),
    }


def peers(mlp_max_iter: int) -> dict:
    """scikit-learn's models, their defaults (random_state aside, for repeatability)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.neural_network import MLPClassifier

    return {
        "SGDClassifier": SGDClassifier(random_state=SEED),
        "MLPClassifier": MLPClassifier(random_state=SEED, max_iter=mlp_max_iter),
    }


def epoch_losses(model) -> list[float]:
    """Mean minibatch loss of each epoch."""
    steps = len(model.loss_history_) // model.n_iter_
    return model.loss_history_[: steps * model.n_iter_].reshape(model.n_iter_, -1).mean(1).tolist()


def run_ours(name: str, model, data: dict) -> dict:
    seconds, _ = timed(lambda: model.fit(*data["train"]))
    losses = epoch_losses(model)
    row = {
        "params": {k: v for k, v in model.get_params().items() if k != "seed"},
        "fit_s": seconds,
        "val_accuracy": float(model.score(*data["val"])),
        "first_epoch_loss": losses[0],
        "last_epoch_loss": losses[-1],
    }
    row["goal_met"] = row["val_accuracy"] >= GOALS[name] and seconds < TIME_GOALS_S[name]
    row["loss_fell"] = row["last_epoch_loss"] < row["first_epoch_loss"]
    return row


def run_peer(model, data: dict) -> dict:
    """Fit on pixels / 255 as float32 (what scikit-learn's examples do with images)."""
    X, y = data["train"]
    X_val, y_val = data["val"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seconds, _ = timed(lambda: model.fit(X.astype(np.float32) / 255, y))
    return {
        "input": "pixels / 255, float32",
        "params": {k: v for k, v in model.get_params().items() if k in ("max_iter", "alpha")},
        "n_iter": int(np.max(model.n_iter_)),
        "fit_s": seconds,
        "converged": not any("converge" in str(w.message).lower() for w in caught),
        "val_accuracy": float(model.score(X_val.astype(np.float32) / 255, y_val)),
    }


def compare(ours_row: dict, theirs: dict) -> dict:
    return {
        "speedup": theirs["fit_s"] / ours_row["fit_s"],
        "imgclf_val_minus_theirs": ours_row["val_accuracy"] - theirs["val_accuracy"],
    }


def report(result: dict) -> None:
    for name, row in result["imgclf"].items():
        print(
            f"imgclf {name:8s} val {row['val_accuracy']:.3f} (goal {GOALS[name]}) in "
            f"{row['fit_s']:.1f} s; epoch loss {row['first_epoch_loss']:.3f} -> "
            f"{row['last_epoch_loss']:.3f}; goal {'met' if row['goal_met'] else 'MISSED'}"
        )
    for name, row in result["sklearn"].items():
        print(
            f"{name:15s} val {row['val_accuracy']:.3f} in {row['fit_s']:.1f} s, "
            f"{row['n_iter']} iterations (max_iter={row['params']['max_iter']}"
            f"{'' if row['converged'] else ', not converged'}) on pixels / 255"
        )
    for pair, c in result["comparisons"].items():
        print(
            f"{pair}: imgclf {c['speedup']:.1f}x faster, "
            f"{100 * c['imgclf_val_minus_theirs']:+.1f} points"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp-max-iter", type=int, default=15)
    parser.add_argument("--no-peers", action="store_true", help="time imgclf only")
    args = parser.parse_args()
    load_s, (train, _) = timed(load_cifar)
    fit_rows, val_rows = train_val_split(train.labels, VAL_SIZE, seed=SEED)
    flat = train.images.reshape(len(train.images), -1)
    data = {
        "train": (flat[fit_rows], train.labels[fit_rows]),
        "val": (flat[val_rows], train.labels[val_rows]),
    }
    env = environment()
    print(f"BLAS: {env['blas']}; OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}")
    print("imgclf trains on one BLAS thread (float32 minibatches); scikit-learn on its own")
    result = {
        "environment": env,
        "load_s": load_s,
        "sizes": {"train": len(fit_rows), "val": len(val_rows)},
        "imgclf": {},
        "sklearn": {},
        "comparisons": {},
    }
    for name, model in ours().items():
        result["imgclf"][name] = run_ours(name, model, data)
        print(f"  {name}: {result['imgclf'][name]['val_accuracy']:.3f}", flush=True)
    if not args.no_peers:
        for name, model in peers(args.mlp_max_iter).items():
            result["sklearn"][name] = run_peer(model, data)
            print(f"  {name}: {result['sklearn'][name]['val_accuracy']:.3f}", flush=True)
        pairs = {
            "svm vs SGDClassifier": ("svm", "SGDClassifier"),
            "net vs MLPClassifier": ("net", "MLPClassifier"),
        }
        for pair, (mine, theirs) in pairs.items():
            result["comparisons"][pair] = compare(result["imgclf"][mine], result["sklearn"][theirs])
    report(result)
    print(f"wrote {write_json('defaults.json', result)}")


if __name__ == "__main__":
    main()
