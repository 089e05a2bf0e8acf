"""Dask services as a user starts them: `dask scheduler` and `dask worker` processes on
127.0.0.1 with ephemeral ports, stopped (and waited for) however the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 90.0  # seconds for the scheduler to write its file: generous on a loaded machine


def dask_cli() -> str:
    path = Path(sys.executable).with_name("dask")
    if not path.exists():
        pytest.skip(f"the `dask` command is not installed beside {sys.executable}")
    return str(path)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def scheduler_and_workers(tmp_path: Path, n_workers: int = 2) -> Iterator[str]:
    """Start `dask scheduler` and `n_workers` single-threaded `dask worker`s; the address."""
    scheduler_file = tmp_path / "scheduler.json"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "start_new_session": True}
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    processes = []
    try:
        processes.append(subprocess.Popen(
            [dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)], env=env, **common,
        ))  # fmt: skip
        address = _wait_for_address(scheduler_file, processes[0])
        processes += [
            subprocess.Popen(
                [
                    dask_cli(),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--no-nanny",
                ],
                env=env,
                **common,
            )  # fmt: skip
            for _ in range(n_workers)
        ]
        if n_workers:
            _wait_for_workers(address, n_workers)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


def _wait_for_address(path: Path, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited: {process.stderr.read()[-2000:]!r}")
        with contextlib.suppress(OSError, ValueError, KeyError):
            return json.loads(path.read_text())["address"]
        time.sleep(0.2)
    raise RuntimeError(f"dask scheduler wrote no address within {START_TIMEOUT} s")


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=START_TIMEOUT, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=START_TIMEOUT)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL after 15 s; always reaped."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)
    if process.stderr:
        process.stderr.close()
