"""``--scheduler`` on cv, train, evaluate and report: the same results as without it, on a
local cluster and on a `dask scheduler` reached by address; usage and reach errors in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imgclf.cli import main
from tests.distributed.conftest import require_distributed
from tests.distributed.services import closed_port, scheduler_and_workers

require_distributed()


def run(*argv: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return info.value.code


def cv_json(capsys, *extra: str) -> dict:
    assert run("--quiet", "cv", "digits", "--k", "1,3,7", "--metric", "l1,l2", "--final-test",
               "--json", *extra) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    out.pop("timings")
    return out


def test_cv_on_a_local_cluster_gives_the_local_results(capsys):
    assert cv_json(capsys, "--scheduler", "local:2") == cv_json(capsys)


def test_cv_of_a_linear_model_on_a_local_cluster(capsys):
    args = ["--model", "linear", "--lr", "0.01,0.1", "--reg", "1e-3", "--epochs", "2",
            "--val-size", "300", "--repeats", "2"]  # fmt: skip
    assert cv_json(capsys, *args, "--scheduler", "local:2") == cv_json(capsys, *args)


@pytest.mark.parametrize("algorithm", ["exact", "ivf"])
def test_train_and_evaluate_on_a_cluster_match_the_local_commands(tmp_path, capsys, algorithm):
    extra = ["--algorithm", algorithm] + (["--n-lists", "12"] if algorithm == "ivf" else [])
    local, remote = tmp_path / "local.imgclf", tmp_path / "remote.imgclf"
    assert run("train", "digits", "--k", "3", *extra, "-o", str(local)) == 0
    assert run("train", "digits", "--k", "3", *extra, "-o", str(remote),
               "--scheduler", "local:2") == 0  # fmt: skip
    capsys.readouterr()
    results = []
    for model, scheduler in ((local, []), (remote, []), (local, ["--scheduler", "local:2"])):
        assert run("evaluate", str(model), "digits", "--json", *scheduler) == 0
        captured = capsys.readouterr()
        results.append(json.loads(captured.out))
    assert results[0] == results[1] == results[2]
    assert "Dask cluster here: 2 worker(s)" in captured.err


def test_report_with_a_scheduler_writes_the_report(tmp_path, capsys):
    report = tmp_path / "r.html"
    assert run("report", "digits", "--k", "1,3", "-o", str(report), "--scheduler", "local:1") == 0
    assert report.read_text().startswith("<!DOCTYPE html>")


def test_scheduler_errors_are_one_line(capsys):
    assert run("cv", "digits", "--k", "1", "--scheduler", "local:zero") == 2
    assert "local:N" in capsys.readouterr().err
    address = f"tcp://127.0.0.1:{closed_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", "evaluate", "no-model-needed", "digits",
         "--scheduler", address],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"Error: cannot reach the Dask scheduler at {address}")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cv_through_a_dask_scheduler_reached_by_address(tmp_path, capsys):
    expected = cv_json(capsys)
    with scheduler_and_workers(tmp_path, n_workers=2) as address:
        assert cv_json(capsys, "--scheduler", address) == expected
