"""``imgclf serve`` as a user runs it, in fresh processes: start-up errors, SIGTERM, workers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.serve.client import ENV, Server


def _serve(*argv: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imgclf", "serve", *argv, "--port", "0"],
        capture_output=True, text=True, cwd=cwd, env=ENV, timeout=120,
    )  # fmt: skip


def test_a_bad_model_file_stops_the_start(tmp_path, digits_files):
    (tmp_path / "bad.imgclf").write_bytes(b"PK\x03\x04 not really a zip")
    done = _serve(str(digits_files["models"]["knn"]), "bad.imgclf", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: bad.imgclf: ") and "serving on" not in done.stderr
    done = _serve("missing.imgclf", cwd=tmp_path)
    assert done.returncode == 1 and "Error: missing.imgclf: no such model file" in done.stderr


def test_a_damaged_model_is_refused_by_its_checksum(tmp_path, digits_files):
    data = bytearray(digits_files["models"]["linear"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "damaged.imgclf").write_bytes(bytes(data))
    done = _serve("damaged.imgclf", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("Error: damaged.imgclf")


def test_two_models_of_one_name_and_a_busy_port(tmp_path, digits_files):
    knn = str(digits_files["models"]["knn"])
    done = _serve(knn, knn, cwd=tmp_path)
    assert done.returncode == 1 and "two models named 'digits-knn'" in done.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "imgclf", "serve", knn, "--port", str(port)],
            capture_output=True, text=True, env=ENV, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1 and f"Error: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_usage_errors(tmp_path, digits_files):
    knn = str(digits_files["models"]["knn"])
    done = _serve(knn, "--max-body-size", "lots", cwd=tmp_path)
    assert done.returncode == 2 and "--max-body-size" in done.stderr


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(tmp_path, digits_files):
    """Half a body is sent, then SIGTERM, then the rest: the answer comes, then exit 0."""
    png = digits_files["images"][0].read_bytes()
    with Server([str(digits_files["models"]["net"])], cwd=tmp_path) as server:
        assert "model digits-net ready: net, 10 classes, 8x8x1 images" in server.output
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        head = (
            "POST /v1/models/digits-net/predict HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n"
        ).encode()
        sock.sendall(head + png[:20])
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None  # waiting for the request in flight
        sock.sendall(png[20:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["model"] == "digits-net"
        # It exits by itself: a second SIGTERM (what stop() would send while it is still
        # shutting down) could land after serve() has put back the default handler.
        assert server.proc.wait(60) == 0
        assert server.stop() == 0


def test_workers_share_the_socket_and_the_metrics(tmp_path, digits_files):
    png = digits_files["images"][0].read_bytes()
    with Server([str(digits_files["models"]["knn"]), "--workers", "2"], cwd=tmp_path) as server:
        assert "with 2 worker processes" in server.output
        # the workers start after the socket is bound: wait until one answers
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.request("GET", "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        results = []

        def post() -> None:
            results.append(server.post("/v1/models/digits-knn/predict", png)[0])

        threads = [threading.Thread(target=post) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [200] * 40
        text = server.request("GET", "/metrics")[2].decode()
        line = next(
            x for x in text.splitlines()
            if x.startswith("imgclf_images_total") and 'model="digits-knn"' in x
        )  # fmt: skip
        assert float(line.split()[-1]) == 40  # both workers' counts, added up
        assert server.stop() == 0
