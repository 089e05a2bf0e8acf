"""A real ``imgclf serve`` process for tests, and a small HTTP client (the standard library's).

:class:`Server` starts ``python -m imgclf serve ARGS --port 0`` on 127.0.0.1,
reads the port it chose from its start-up lines, and stops it with SIGTERM
(checking that it exits 0 and printed no traceback).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ENV = {**os.environ, "IMGCLF_PROGRESS": "0", "COLUMNS": "200"}


class Server:
    """``imgclf serve`` in a subprocess, as a context manager.

    Parameters
    ----------
    args : list of str
        Arguments after ``imgclf serve`` (``--port 0`` and ``--host 127.0.0.1`` are added).
    cwd : path
    timeout : float
        Seconds to wait for the ``serving on`` line.
    """

    def __init__(self, args: list[str], cwd: Path, timeout: float = 120.0):
        self.args, self.cwd, self.timeout = args, cwd, timeout
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> Server:
        cmd = [sys.executable, "-m", "imgclf", "serve", *self.args, "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*cmd, "--port", "0"],
            cwd=self.cwd,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(self.timeout) or not self.port:
            self.proc.kill()
            raise RuntimeError("imgclf serve did not start:\n" + "".join(self.lines))
        return self

    def _read(self, ready: threading.Event) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("serving on http://"):
                self.port = int(line.split("/")[2].rsplit(":", 1)[1])
                ready.set()
        ready.set()  # the process ended

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit status (asserting a clean exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        text = "".join(self.lines)
        assert "Traceback" not in text, text
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        """``(status, headers, body bytes)`` of one request on a fresh connection."""
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get_json(self, path: str):
        status, headers, body = self.request("GET", path)
        assert headers["content-type"] == "application/json", (status, body[:200])
        return status, json.loads(body)

    def post(self, path: str, body: bytes, content_type: str = "image/png", headers=None):
        """``(status, parsed JSON)``; every answer of the app is JSON."""
        status, got, data = self.request(
            "POST", path, body, {"Content-Type": content_type, **(headers or {})}
        )
        assert got.get("content-type") == "application/json", (status, got, data[:200])
        return status, json.loads(data)


def multipart(files: list[tuple[str, bytes]], boundary: str = "imgclf-test-boundary"):
    """``(body, content type)`` of a form with one ``file`` field per file."""
    chunks = []
    for name, data in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def wait_until(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False
