"""A Dask cluster of two single-threaded workers in this process, shared by the module's
tests (starting one costs a second or two); the tests that need worker processes or a
scheduler reached by address start their own."""

from __future__ import annotations

import logging

import numpy as np
import pytest

REASON = "needs the dask extra: pip install 'imgclf[dask]'"


def require_distributed():
    """``distributed``, or a skip of the test module that needs it."""
    return pytest.importorskip("distributed", reason=REASON)


@pytest.fixture(scope="module")
def client():
    """A Client of LocalCluster(processes=False): 2 workers x 1 thread.

    No memory limit: the workers live in the test process, and Dask would count the whole
    process (every test before, the suite's own arrays) against each worker, pause them at
    80% and close them at 95% (a suite run once lost both mid-module: "no workers").
    """
    distributed = require_distributed()
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            memory_limit=0,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def tied_pixels(rng, n: int, d: int = 48) -> np.ndarray:
    """uint8 rows with few distinct values: many equal distances, so ties are tested."""
    return rng.integers(0, 4, (n, d), dtype=np.uint8)
