"""GET /metrics: Prometheus text that counts requests and errors and times each model."""

from __future__ import annotations

import pytest

parser = pytest.importorskip("prometheus_client.parser")


def _samples(server) -> dict:
    """``{(sample name, sorted labels): value}`` of the server's metrics now."""
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_requests_errors_and_latency_are_counted(server, digits_files):
    png = digits_files["images"][0].read_bytes()
    before = _samples(server)
    for _ in range(3):
        assert server.post("/v1/models/digits-net/predict", png)[0] == 200
    assert server.post("/v1/models/digits-net/predict", b"junk")[0] == 400
    assert server.post("/v1/models/nope/predict", png)[0] == 404
    after = _samples(server)
    endpoint = "/v1/models/{name}/predict"
    ok = {"endpoint": endpoint, "method": "POST"}
    assert _delta(before, after, "imgclf_requests_total", **ok, status="200") == 3
    assert _delta(before, after, "imgclf_requests_total", **ok, status="400") == 1
    assert _delta(before, after, "imgclf_requests_total", **ok, status="404") == 1
    assert (
        _delta(before, after, "imgclf_request_errors_total", endpoint=endpoint, status="400") == 1
    )
    assert _delta(before, after, "imgclf_request_seconds_count", endpoint=endpoint) == 5
    # a latency histogram per model: three images through digits-net
    assert _delta(before, after, "imgclf_inference_seconds_count", model="digits-net") == 3
    assert _delta(before, after, "imgclf_images_total", model="digits-net") == 3
    slowest = _delta(before, after, "imgclf_inference_seconds_bucket", model="digits-net", le="5.0")
    assert slowest == 3


def test_unknown_paths_share_one_label(server):
    before = _samples(server)
    for path in ("/a", "/b/c", "/v1/whatever"):
        server.request("GET", path)
    after = _samples(server)
    labels = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    assert _delta(before, after, "imgclf_requests_total", **labels) == 3
