"""Tests for imgclf.datasets.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from imgclf.datasets import download as dl
from imgclf.errors import DatasetError, DownloadError

SIZE = 200_000  # several chunks at CHUNK, small enough to stay fast
CHUNK = 16_384


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass
class ServerState:
    """What the server serves, how it misbehaves, and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_after: int | None = None  # send this many body bytes, then drop the connection
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    url: str = ""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        requested = self.headers.get("Range")
        state.requests.append((self.path, requested))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if requested and not state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.cut_after is not None:
            # Promise the whole body, deliver part of it, hang up: a dropped link.
            self.wfile.write(body[: state.cut_after])
            state.cut_after = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


class _Server(http.server.ThreadingHTTPServer):
    state: ServerState


@pytest.fixture
def server() -> Iterator[ServerState]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture
def payload() -> bytes:
    return random.Random(0).randbytes(SIZE)


def test_download_succeeds_and_verifies(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    dest = tmp_path / "sub" / "data.bin"
    result = dl.download_file(f"{server.url}/data.bin", dest, _md5(payload), chunk_size=CHUNK)
    assert result == dest
    assert dest.read_bytes() == payload
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert server.requests == [("/data.bin", None)]


def test_second_call_does_not_hit_the_server(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    dest = tmp_path / "data.bin"
    for _ in range(2):
        dl.download_file(f"{server.url}/data.bin", dest, _md5(payload), chunk_size=CHUNK)
    assert len(server.requests) == 1
    assert dest.read_bytes() == payload


def test_present_file_with_wrong_checksum_is_fetched_again(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    dl.download_file(f"{server.url}/data.bin", dest, _md5(payload), chunk_size=CHUNK)
    assert dest.read_bytes() == payload
    assert len(server.requests) == 1


def test_checksum_mismatch_raises_and_leaves_nothing(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    dest = tmp_path / "data.bin"
    url = f"{server.url}/data.bin"
    wrong = "0" * 32
    with pytest.raises(DownloadError) as info:
        dl.download_file(url, dest, wrong, chunk_size=CHUNK)
    message = str(info.value)
    assert url in message and wrong in message and _md5(payload) in message
    assert not dest.exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_interrupted_download_resumes_with_range(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    dest = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    url = f"{server.url}/data.bin"
    server.cut_after = 50_000
    with pytest.raises(DownloadError) as info:
        dl.download_file(url, dest, _md5(payload), chunk_size=CHUNK)
    assert url in str(info.value)
    assert not dest.exists()
    kept = part.stat().st_size
    assert 0 < kept <= 50_000  # the partial data survives for the rerun

    dl.download_file(url, dest, _md5(payload), chunk_size=CHUNK)
    assert server.requests[-1] == ("/data.bin", f"bytes={kept}-")
    assert dest.read_bytes() == payload
    assert not part.exists()


def test_server_ignoring_range_still_gives_correct_file(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    server.ignore_range = True
    dest = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    part.write_bytes(payload[:30_000])  # left by an earlier, interrupted attempt
    dl.download_file(f"{server.url}/data.bin", dest, _md5(payload), chunk_size=CHUNK)
    assert server.requests == [("/data.bin", "bytes=30000-")]
    assert dest.read_bytes() == payload  # restarted from zero, not appended
    assert not part.exists()


def test_complete_part_is_finished_on_416(server, payload, tmp_path):
    server.files["/data.bin"] = payload
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(payload)  # crashed just before the rename
    dl.download_file(f"{server.url}/data.bin", dest, _md5(payload), chunk_size=CHUNK)
    assert server.requests == [("/data.bin", f"bytes={SIZE}-")]
    assert dest.read_bytes() == payload


def test_404_raises_naming_the_url(server, tmp_path):
    url = f"{server.url}/missing.bin"
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        dl.download_file(url, tmp_path / "missing.bin", "0" * 32)
    assert "404" in str(info.value)
    assert not (tmp_path / "missing.bin").exists()


def test_refused_connection_raises_download_error(tmp_path):
    # Bind then close a server so that its port is known to have no listener.
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/data.bin"
    httpd.server_close()
    with pytest.raises(DownloadError, match=re.escape(url)):
        dl.download_file(url, tmp_path / "data.bin", "0" * 32)


def test_download_mnist_fetches_all_four_files(server, tmp_path, monkeypatch):
    contents = {f.filename: f.filename.encode() * 1000 for f in dl.DATASETS["mnist"]}
    for name, data in contents.items():
        server.files[f"/mirror/{name}"] = data
    patched = [dl.RemoteFile(f.url, _md5(contents[f.filename])) for f in dl.DATASETS["mnist"]]
    monkeypatch.setitem(dl.DATASETS, "mnist", patched)

    root = tmp_path / "mnist"
    result = dl.download("mnist", root, base_url=f"{server.url}/mirror/")
    assert result == root
    assert sorted(server.requests) == sorted((f"/mirror/{n}", None) for n in contents)
    for name, data in contents.items():
        assert (root / name).read_bytes() == data

    dl.download("mnist", root, base_url=f"{server.url}/mirror")
    assert len(server.requests) == 4  # all present and verified: nothing fetched

    dl.download("mnist", root, base_url=f"{server.url}/mirror", force=True)
    assert len(server.requests) == 8


def test_download_cifar_returns_archive_in_cache(server, payload, tmp_path, monkeypatch):
    server.files["/cifar-10-python.tar.gz"] = payload
    (original,) = dl.DATASETS["cifar10"]
    monkeypatch.setitem(dl.DATASETS, "cifar10", [dl.RemoteFile(original.url, _md5(payload))])
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    result = dl.download("cifar10", base_url=server.url)
    assert result == tmp_path / "cache" / "downloads" / "cifar10" / "cifar-10-python.tar.gz"
    assert result.read_bytes() == payload


def test_unknown_dataset_is_rejected(tmp_path):
    with pytest.raises(DatasetError, match="svhn"):
        dl.download("svhn", tmp_path)


def test_table_holds_official_addresses():
    assert set(dl.DATASETS) == {"cifar10", "cifar100", "mnist", "fashion-mnist"}
    assert dl.DATASETS["cifar10"][0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert all(len(f) == 4 for k, f in dl.DATASETS.items() if "mnist" in k)
    for files in dl.DATASETS.values():
        for f in files:
            assert f.url.startswith("http") and re.fullmatch(r"[0-9a-f]{32}", f.md5)
