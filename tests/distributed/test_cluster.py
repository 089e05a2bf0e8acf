"""Clusters as users have them: worker processes, a `dask scheduler` reached by address,
a worker killed before a search, a scheduler that does not answer. Timeouts are generous:
Dask's heartbeats are slow on a loaded two-core machine."""

from __future__ import annotations

import logging
import os
import signal
import time

import numpy as np
import pytest

from imgclf.distributed import ClusterError, ShardedIndex, connect
from imgclf.distributed.cluster import parse_scheduler, worker_records
from imgclf.errors import ImgclfError
from imgclf.neighbors import ExactIndex, IVFIndex
from tests.distributed.conftest import require_distributed, tied_pixels
from tests.distributed.services import closed_port, scheduler_and_workers

distributed = require_distributed()

WAIT_WORKERS_S = 90


def assert_same(got, expected):
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_an_unreachable_scheduler_is_a_clear_error_within_the_timeout():
    address = f"tcp://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with (
        pytest.raises(ClusterError, match=f"cannot reach the Dask scheduler at {address} within 2"),
        connect(address, timeout=2),
    ):
        pass
    assert time.monotonic() - start < 20
    assert issubclass(ClusterError, ImgclfError)


@pytest.mark.parametrize(
    ("text", "message"),
    [("local:0", "1..1024"), ("local:x", "local:N"), ("local", "local:N"),
     ("tcp://a b:1", "not an address"), ("", "ADDRESS or local:N")],
)  # fmt: skip
def test_scheduler_specs_are_checked(text, message):
    with pytest.raises(ValueError, match=message):
        parse_scheduler(text)


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path):
    with scheduler_and_workers(tmp_path, n_workers=0) as address:
        start = time.monotonic()
        with (
            pytest.raises(ClusterError, match=f"scheduler at {address} has no worker"),
            connect(address, timeout=2),
        ):
            pass
        assert time.monotonic() - start < 20


def test_asking_a_lost_scheduler_for_its_workers_is_a_cluster_error():
    distributed = require_distributed()
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,
    )
    with distributed.Client(cluster, set_as_default=False) as client:
        assert len(worker_records(client)) == 1
        cluster.close()
        with pytest.raises(ClusterError, match="lost the Dask scheduler"):
            worker_records(client)


def test_local_n_starts_a_cluster_of_n_workers_and_closes_it():
    rng = np.random.default_rng(0)
    database = tied_pixels(rng, 500)
    with connect("local:3") as client:
        assert len(worker_records(client)) == 3
        with ShardedIndex(client, database, "l1") as index:
            assert index.n_shards == 3
            assert_same(index.search(database[:20], 6), ExactIndex(database, "l1").search(
                database[:20], 6))  # fmt: skip
    assert client.status == "closed"


@pytest.fixture
def process_cluster():
    """Two worker processes under nannies, new for each test: a nanny's restart of a killed
    worker can take long on a loaded machine, and no test waits for it."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False, timeout=60) as client,
    ):  # fmt: skip
        client.wait_for_workers(2, timeout=WAIT_WORKERS_S)
        yield client


def _kill_worker_of(client, shard) -> None:
    """SIGKILL the worker process holding ``shard``, and wait until the scheduler knows."""
    pid = client.run(os.getpid, workers=[shard.worker])[shard.worker]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_WORKERS_S
    while shard.worker in worker_records(client) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_worker_processes_give_the_local_answer(process_cluster):
    rng = np.random.default_rng(1)
    database, queries = tied_pixels(rng, 1200, 32), tied_pixels(rng, 40, 32)
    for algorithm, settings in (("exact", {}), ("ivf", {"n_lists": 10, "n_probe": 2})):
        local = (IVFIndex if settings else ExactIndex)(database, "l2", **settings)
        with ShardedIndex(process_cluster, database, "l2", algorithm, **settings) as index:
            assert_same(index.search(queries, 7), local.search(queries, 7))


def test_a_killed_worker_s_shards_are_put_back_and_the_answer_is_the_same(process_cluster):
    rng = np.random.default_rng(2)
    database, queries = tied_pixels(rng, 1500, 32), tied_pixels(rng, 50, 32)
    expected = ExactIndex(database, "l1").search(queries, 9)
    with ShardedIndex(process_cluster, database, "l1", n_shards=4, retries=3) as index:
        assert_same(index.search(queries, 9), expected)
        lost = index.placement.shards[0]
        _kill_worker_of(process_cluster, lost)
        assert_same(index.search(queries, 9), expected)
        assert lost.worker in worker_records(process_cluster)  # re-placed


@pytest.fixture
def kill_during_search(process_cluster, monkeypatch):
    """Make the next search kill the worker of ``shard`` after its tasks were sent, before
    their results are collected (what a worker dying mid-search looks like to the client)."""
    from imgclf.distributed import index as index_module

    collect = index_module._collect

    def arm(shard) -> None:
        def killing(task, current, index):
            if current is shard and not armed.get("done"):
                armed["done"] = True
                _kill_worker_of(process_cluster, shard)
            return collect(task, current, index)

        armed = {}
        monkeypatch.setattr(index_module, "_collect", killing)

    return arm


def test_a_worker_killed_during_a_search_costs_a_retry_not_the_answer(
    process_cluster, kill_during_search, monkeypatch
):
    healed, heal = [], ShardedIndex._heal
    monkeypatch.setattr(ShardedIndex, "_heal", lambda self: healed.append(heal(self)))
    rng = np.random.default_rng(3)
    database, queries = tied_pixels(rng, 900, 32), tied_pixels(rng, 30, 32)
    expected = IVFIndex(database, "l1", n_lists=9, n_probe=2).search(queries, 6)
    with ShardedIndex(
        process_cluster, database, "l1", "ivf", n_lists=9, n_probe=2, n_shards=3, retries=2
    ) as index:
        kill_during_search(index.placement.shards[2])
        assert_same(index.search(queries, 6), expected)
        assert healed  # the shard was put back and the search ran again


def test_without_retries_a_shard_lost_during_a_search_is_an_error_naming_it(
    process_cluster, kill_during_search
):
    rng = np.random.default_rng(4)
    database = tied_pixels(rng, 800, 32)
    with ShardedIndex(process_cluster, database, "l2", n_shards=2, retries=0) as index:
        kill_during_search(index.placement.shards[1])
        with pytest.raises(ClusterError, match=r"shard 1 \(database rows 400\.\.799\) was lost"):
            index.search(database[:5], 3)


def test_a_dask_scheduler_and_workers_reached_by_address(tmp_path):
    rng = np.random.default_rng(4)
    database, queries = tied_pixels(rng, 1000, 24), tied_pixels(rng, 30, 24)
    with scheduler_and_workers(tmp_path, n_workers=2) as address:
        assert address.startswith("tcp://127.0.0.1:")
        with connect(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=WAIT_WORKERS_S)
            for algorithm, settings in (("exact", {}), ("ivf", {"n_lists": 8, "n_probe": 3})):
                local = (IVFIndex if settings else ExactIndex)(database, "l1", **settings)
                with ShardedIndex(client, database, "l1", algorithm, **settings) as index:
                    assert index.n_shards == 2
                    assert_same(index.search(queries, 5), local.search(queries, 5))


class _SlowToFetch:
    """A finished task whose result takes longer than one poll to arrive (a busy machine),
    or, with ``status="error"``, a task that raised TimeoutError itself."""

    def __init__(self, status: str, slow_polls: int):
        self.status, self.slow_polls = status, slow_polls

    def result(self, timeout):
        if self.slow_polls:
            self.slow_polls -= 1
            raise TimeoutError(f"timed out after {timeout} s.")
        return "answer"


def test_a_result_slow_to_arrive_is_waited_for_and_a_task_s_own_timeout_raised(monkeypatch):
    from imgclf.distributed import index as index_module

    monkeypatch.setattr(index_module, "live_workers", lambda client, allow_none: ["w"])
    assert index_module._await(_SlowToFetch("finished", 3), "shard", None, 60) == "answer"
    with pytest.raises(TimeoutError):
        index_module._await(_SlowToFetch("error", 1), "shard", None, 60)
