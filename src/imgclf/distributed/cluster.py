"""Connecting to a Dask cluster: a scheduler's address, or a local cluster of N workers.

``connect("tcp://10.0.0.5:8786")`` reaches a running ``dask scheduler``;
``connect("local:4")`` starts a ``LocalCluster`` of 4 single-threaded workers
in this process (the kernels release the GIL, so threads run in parallel and
no data is copied between processes). Either way a scheduler that cannot be
reached is a :class:`~imgclf.distributed.ClusterError` within ``timeout``
seconds, not a hang.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

from imgclf.distributed.errors import ClusterError

__all__ = ["DEFAULT_TIMEOUT", "connect", "parse_scheduler", "require_dask", "running_on"]

DEFAULT_TIMEOUT = 10.0  # seconds to reach a scheduler
_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"((tcp|tls|inproc|ws|wss|ucx)://)?[^\s:/]+(:\d{1,5})?(/\S*)?")


def require_dask():
    """``distributed``, or an ImportError that names the extra to install."""
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "running on a Dask cluster needs the dask extra: pip install 'imgclf[dask]'"
        ) from None
    return distributed


def parse_scheduler(scheduler: str) -> tuple[str, int | str]:
    """``("local", n_workers)`` or ``("address", address)``; a ValueError for anything else.

    Examples
    --------
    >>> parse_scheduler("local:2"), parse_scheduler("127.0.0.1:8786")
    (('local', 2), ('address', '127.0.0.1:8786'))
    """
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler must be ADDRESS or local:N; got {scheduler!r}")
    scheduler = scheduler.strip()
    if scheduler.startswith("local"):
        match = _LOCAL.fullmatch(scheduler)
        if not match or not 1 <= int(match.group(1)) <= 1024:
            raise ValueError(
                f"scheduler {scheduler!r}: a local cluster is local:N with N workers, 1..1024"
            )
        return "local", int(match.group(1))
    if not _ADDRESS.fullmatch(scheduler):
        raise ValueError(
            f"scheduler {scheduler!r} is not an address such as tcp://10.0.0.5:8786 "
            "or 127.0.0.1:8786 (or local:N for a cluster of N workers here)"
        )
    return "address", scheduler


@contextlib.contextmanager
def connect(scheduler, *, timeout: float = DEFAULT_TIMEOUT) -> Iterator[object]:
    """A ``dask.distributed.Client`` for ``scheduler``, closed (with its local cluster) on exit.

    Parameters
    ----------
    scheduler : str or Client
        ``"local:N"`` starts N single-threaded workers in this process; any other
        string is a scheduler's address; a Client is used as it is (and not closed).
    timeout : float, default=10
        Seconds to reach the scheduler.

    Raises
    ------
    ClusterError
        The scheduler did not answer within ``timeout`` seconds (naming its address).
    """
    distributed = require_dask()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    kind, value = parse_scheduler(scheduler)
    with contextlib.ExitStack() as stack:
        if kind == "local":
            cluster = distributed.LocalCluster(
                n_workers=value,
                threads_per_worker=1,
                processes=False,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            stack.enter_context(cluster)
            value = cluster
        yield stack.enter_context(_client(distributed, value, timeout))


@contextlib.contextmanager
def _client(distributed, address, timeout: float):
    """A Client of ``address`` with at least one worker, waited for up to ``timeout`` s."""
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:  # dask raises OSError("Timed out trying to connect…")
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({exc}); "
            "is `dask scheduler` running there, and is the address right?"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise ClusterError(
                f"the Dask scheduler at {client.scheduler.address} has no worker "
                f"(waited {timeout:g} s); start some with `dask worker ADDRESS`"
            ) from None
        yield client


def worker_records(client) -> dict[str, dict]:
    """The scheduler's record of each connected worker, by address, asked for now.

    Not ``client.scheduler_info()["workers"]``: that returns the client's cached copy, and
    the client's own periodic refresh (which asks for no workers) can overwrite it between
    the fetch and the read; a suite run once saw "no workers" from a healthy cluster.
    A scheduler that cannot be reached is a ClusterError naming it.
    """
    scheduler = client.scheduler  # None once the client lost it
    try:
        if scheduler is None:
            raise OSError("the client is no longer connected")
        return client.sync(scheduler.identity, n_workers=-1)["workers"]
    except OSError as exc:  # (dask's CommClosedError too): no scheduler, no placement
        where = f" at {scheduler.address}" if scheduler is not None else ""
        raise ClusterError(f"lost the Dask scheduler{where}: {exc}") from None


@contextlib.contextmanager
def running_on(scheduler: str, *, timeout: float = DEFAULT_TIMEOUT, say=None) -> Iterator[object]:
    """:func:`connect` and :func:`~imgclf.distributed.use_cluster` in one: what the command
    line's ``--scheduler`` does around a command. ``say`` gets one line naming the cluster."""
    from imgclf.distributed._context import use_cluster

    with connect(scheduler, timeout=timeout) as client:
        if say is not None:
            workers = worker_records(client)
            threads = sum(w.get("nthreads", 1) for w in workers.values())
            where = "here" if scheduler.startswith("local") else f"at {client.scheduler.address}"
            say(f"k-NN search and cross-validation run on the Dask cluster {where}: "
                f"{len(workers)} worker(s), {threads} thread(s)")  # fmt: skip
        with use_cluster(client):
            yield client
