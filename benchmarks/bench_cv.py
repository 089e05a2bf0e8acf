"""The k-NN hyperparameter sweep: imgclf's sweep_knn against scikit-learn's GridSearchCV.

A seeded, stratified 5,000-image subset of CIFAR-10's training folder, 5 folds,
k in {1,3,5,8,10,12,15,20,50,100}, L1 and L2: both tools on the same folds in
this one process. Checks the mean scores agree (a difference is allowed only
where a distance tie at the k-th place makes the neighbour set depend on the
tie rule; the script counts those rows), prints both times and the ratio per
metric (goal: imgclf at least 20x faster). Then times the sweep on all 50,000
training images (5 folds, both metrics; goal: under 3 minutes on 2 cores),
which GridSearchCV cannot do in reasonable time here. Writes
benchmarks/results/cv.json.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_cv.py
"""

from __future__ import annotations

import argparse

from imgclf.model_selection import kfold, sweep_knn, train_val_split

from _common import environment, load_cifar, timed, write_json

KS = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]
SK_METRIC = {"l1": "manhattan", "l2": "euclidean"}


def grid_search(X, y, folds, metric):
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier

    grid = GridSearchCV(
        KNeighborsClassifier(algorithm="brute", metric=SK_METRIC[metric]),
        {"n_neighbors": KS},
        cv=folds,
    )
    grid.fit(X, y)
    results = grid.cv_results_
    ks, means = results["param_n_neighbors"], results["mean_test_score"]
    return {int(k): float(mean) for k, mean in zip(ks, means, strict=True)}  # JSON-safe keys


def compare(X, y, folds, metric, with_sklearn: bool) -> dict:
    ours_s, result = timed(lambda: sweep_knn(X, y, KS, (metric,), folds=folds))
    ours = {c["k"]: m for c, m in zip(result.configs, result.mean, strict=True)}
    row = {
        "metric": metric,
        "imgclf_s": ours_s,
        "imgclf_means": {int(k): float(v) for k, v in ours.items()},
        "best": result.best_params,
        "best_score": result.best_score,
    }
    print(f"  {metric}: imgclf sweep {ours_s:.2f} s", flush=True)
    if with_sklearn:
        sk_s, theirs = timed(lambda: grid_search(X, y, folds, metric))
        row |= {
            "gridsearchcv_s": sk_s,
            "gridsearchcv_means": theirs,
            "speedup": sk_s / ours_s,
            "max_mean_difference": max(abs(ours[k] - theirs[k]) for k in KS),
            "identical_k": [k for k in KS if ours[k] == theirs[k]],
        }
        print(
            f"  {metric}: GridSearchCV {sk_s:.2f} s -> imgclf {row['speedup']:.1f}x faster; "
            f"identical means for k in {row['identical_k']}; largest difference "
            f"{row['max_mean_difference']:.5f}",
            flush=True,
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--skip-full", action="store_true", help="skip the 50,000-image sweep")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    train, _ = load_cifar()
    _, keep = train_val_split(train.labels, args.subset, seed=0)
    X, y = train.X[keep], train.labels[keep]
    folds = kfold(y, 5, seed=0)
    print(f"{args.subset:,}-image subset, 5 folds, k in {KS}")
    result = {
        "environment": environment(),
        "subset": args.subset,
        "runs": [compare(X, y, folds, m, not args.skip_sklearn) for m in ("l1", "l2")],
    }
    if not args.skip_full:
        print("all 50,000 training images, 5 folds, L1 and L2 ...", flush=True)
        full_folds = kfold(train.labels, 5, seed=0)
        seconds, full = timed(
            lambda: sweep_knn(train.X, train.labels, KS, ("l1", "l2"), folds=full_folds)
        )
        result["full"] = {
            "seconds": seconds,
            "best": full.best_params,
            "best_score": full.best_score,
            "records": full.to_records(),
        }
        print(
            f"  full sweep: {seconds:.1f} s (goal < 180 s); best {full.best_params} "
            f"({full.best_score:.4f})"
        )
    print(f"wrote {write_json('cv.json', result)}")


if __name__ == "__main__":
    main()
