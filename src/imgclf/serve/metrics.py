"""Prometheus metrics of a server (``GET /metrics``), with ``prometheus-client``.

- ``imgclf_requests_total{endpoint, method, status}``: every answered request;
  ``endpoint`` is the route's pattern (``/v1/models/{name}/predict``), so the
  label set stays small whatever paths clients ask for.
- ``imgclf_request_errors_total{endpoint, status}``: the 4xx and 5xx among them.
- ``imgclf_request_seconds{endpoint}``: time to answer, a histogram.
- ``imgclf_inference_seconds{model}``: time of one batch through a model, and
  ``imgclf_batch_size{model}``: images per batch.
- ``imgclf_images_total{model}``: images classified.

With several worker processes each writes its values to
``$PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up (prometheus-client's
multi-process mode), so any worker answers for the whole server.
"""

from __future__ import annotations

import os

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's counters and histograms, in a registry of their own.

    Parameters
    ----------
    multiprocess_dir : str, optional
        prometheus-client's multi-process folder; default ``$PROMETHEUS_MULTIPROC_DIR``
        (unset: this process's values only).
    """

    def __init__(self, multiprocess_dir: str | None = None):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess_dir = multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.registry = CollectorRegistry(auto_describe=True)
        reg = {"registry": self.registry}
        self.requests = Counter(
            "imgclf_requests", "Requests answered", ["endpoint", "method", "status"], **reg
        )
        self.errors = Counter(
            "imgclf_request_errors", "Requests answered with 4xx or 5xx", ["endpoint", "status"],
            **reg,
        )  # fmt: skip
        self.latency = Histogram(
            "imgclf_request_seconds", "Time to answer a request", ["endpoint"],
            buckets=_LATENCY_BUCKETS, **reg,
        )  # fmt: skip
        self.inference = Histogram(
            "imgclf_inference_seconds", "Time of one batch through a model", ["model"],
            buckets=_LATENCY_BUCKETS, **reg,
        )  # fmt: skip
        self.batch_size = Histogram(
            "imgclf_batch_size", "Images per batch", ["model"], buckets=_BATCH_BUCKETS, **reg
        )
        self.images = Counter("imgclf_images", "Images classified", ["model"], **reg)
        self._children: dict = {}

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and time it."""
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:
            error = self.errors.labels(endpoint, str(status)) if status >= 400 else None
            children = (
                self.requests.labels(endpoint, method, str(status)),
                error,
                self.latency.labels(endpoint),
            )
            self._children[key] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        children[2].observe(seconds)

    def batch(self, model: str, size: int, seconds: float) -> None:
        """One batch of ``size`` images through ``model``, taking ``seconds``."""
        children = self._children.get(model)
        if children is None:
            children = (
                self.inference.labels(model),
                self.batch_size.labels(model),
                self.images.labels(model),
            )
            self._children[model] = children
        children[0].observe(seconds)
        children[1].observe(size)
        children[2].inc(size)

    def render(self) -> tuple[bytes, bytes]:
        """``(body, content type)`` of the Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST.encode()
