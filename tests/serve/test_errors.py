"""Bad input and faults: a clear 4xx JSON error for everything a client can send, never a crash.

Ends with a fuzz run: 1,200 random and mutated bodies, each answered with JSON
(4xx, or 200 for a mutant that is still an image), then a correct answer.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest

from tests.serve.client import multipart

PREDICT = "/v1/models/digits-linear/predict"
FUZZ_CASES = int(os.environ.get("IMGCLF_SERVE_FUZZ_CASES", "1200"))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def good_png(digits_files) -> bytes:
    return digits_files["images"][0].read_bytes()


def _error(server, body, content_type="image/png", path=PREDICT):
    status, got = server.post(path, body, content_type)
    assert set(got) == {"error"} and got["error"], got
    return status, got["error"]


def test_not_an_image(server):
    status, message = _error(server, b"hello, this is text")
    assert status == 400 and "not an image in a format imgclf reads" in message


def test_truncated_image(server, good_png):
    status, message = _error(server, good_png[: len(good_png) // 2])
    assert status == 400 and "cannot decode image" in message


@pytest.mark.parametrize("size", [(60_000, 60_000), (10_000, 9_000), (5_000, 5_000)])
def test_decompression_bombs_and_huge_images(server, size):
    """Refused from the header, before any pixel is decoded: Pillow's limit, then the server's."""
    start = time.perf_counter()
    status, message = _error(server, png_header_only(*size))
    assert status == 400 and time.perf_counter() - start < 2
    assert "decompression bomb" in message.lower() or "over the budget" in message


def test_empty_body(server):
    assert _error(server, b"") == (400, "empty request body: expected an image")


@pytest.mark.parametrize("kind", ["text/plain", "application/json", ""])
def test_unsupported_media_type(server, good_png, kind):
    status, message = _error(server, good_png, kind)
    assert status == 415 and "unsupported media type" in message


def test_unknown_model_path_and_method(server):
    status, message = _error(server, b"x", path="/v1/models/nope/predict")
    assert status == 404 and "no model named 'nope'" in message and "digits-knn" in message
    status, _, body = server.request("GET", "/no/such/thing")
    assert status == 404 and json.loads(body)["error"].startswith("no such path")
    status, headers, body = server.request("GET", PREDICT)
    assert status == 405 and headers["allow"] == "POST" and "use POST" in json.loads(body)["error"]


@pytest.mark.parametrize("query", ["top=0", "top=11", "top=abc", "top=%ff"])
def test_bad_top(server, good_png, query):
    status, message = _error(server, good_png, path=f"{PREDICT}?{query}")
    assert status == 400 and ("top" in message or "query string" in message)


def test_bad_multipart(server, good_png):
    status, message = _error(server, good_png, "multipart/form-data")
    assert status == 400 and "boundary" in message
    body, kind = multipart([("a.png", good_png)])
    status, message = _error(server, body[: len(body) // 2], kind)
    assert status == 400 and "no closing delimiter" in message
    fields = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'
    status, message = _error(server, fields, "multipart/form-data; boundary=b")
    assert status == 400 and "without a file" in message
    many, kind = multipart([("a.png", good_png)] * 65)
    status, message = _error(server, many, kind)
    assert status == 400 and "more than 64 parts" in message


def _raw_exchange(port: int, head: bytes, body_part: bytes, wait: float = 5.0) -> bytes:
    """Send a request head and (part of) its body; everything the server answers.

    The body is sent from a thread while the answer is read: a server that stops
    reading closes the connection, and whatever it answered first must still arrive.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):  # the server closed the connection
                sock.sendall(head + body_part)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        sender.join(wait)
        return b"".join(chunks)


def test_too_large_body_is_refused_without_reading_it(server):
    """A declared 50 MB body: 413 at once, and the connection closed (the rest is not read)."""
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        "Content-Length: 50000000\r\n\r\n"
    ).encode()
    start = time.perf_counter()
    answer = _raw_exchange(server.port, head, b"\x89PNG" + b"\0" * 1000)
    assert time.perf_counter() - start < 4  # the server closed the connection; no timeout
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()
    assert b"over the limit of 10,000,000 bytes" in answer


def test_too_large_chunked_body(server):
    """Without a Content-Length, the body is counted as it arrives."""
    chunk = b"\0" * 1_000_000
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(11))
    answer = _raw_exchange(server.port, head, body)
    assert answer.startswith(b"HTTP/1.1 413 ")


# --- fuzz --------------------------------------------------------------------------------------


def _mutants(good: bytes, rng: np.random.Generator):
    """``(body, content type)`` pairs: random bytes, bit flips, cuts, huge sizes, wrong types."""
    kinds = ["image/png", "image/jpeg", "application/octet-stream", "image/x-anything"]
    while True:
        choice = rng.integers(8)
        kind = kinds[rng.integers(len(kinds))]
        if choice == 0:
            yield rng.bytes(int(rng.integers(1, 4000))), kind
        elif choice == 1:  # flipped bytes
            data = bytearray(good)
            for at in rng.integers(0, len(data), int(rng.integers(1, 20))):
                data[at] = int(rng.integers(256))
            yield bytes(data), kind
        elif choice == 2:  # cut anywhere
            yield good[: int(rng.integers(1, len(good)))], kind
        elif choice == 3:  # huge or zero declared sizes, valid checksums
            w, h = (int(v) for v in rng.choice([0, 1, 2**16, 2**24, 2**31 - 1], 2))
            yield png_header_only(w, h), kind
        elif choice == 4:  # a good image with a wrong or missing content type
            yield (
                good,
                ["text/html", "", "multipart/form-data", "application/x-www-form"][
                    int(rng.integers(4))
                ],
            )
        elif choice == 5:  # multipart with mangled parts
            body, mkind = multipart([("f.png", good), ("g.png", rng.bytes(100))])
            cut = bytearray(body)
            for at in rng.integers(0, len(cut), int(rng.integers(1, 6))):
                cut[at] = int(rng.integers(256))
            yield bytes(cut), mkind
        elif choice == 6:  # a chunk header of another format glued on
            prefix = [b"GIF89a", b"\xff\xd8\xff\xe0", b"BM", b"II*\0", b"RIFF\0\0\0\0WEBP", b"P6\n"]
            yield prefix[int(rng.integers(len(prefix)))] + rng.bytes(200), kind
        else:  # a good image behind garbage
            yield rng.bytes(int(rng.integers(1, 50))) + good, kind


def test_fuzz_every_answer_is_json_and_the_server_survives(server, good_png, saved_models):
    from imgclf.predict import rank_images

    rng = np.random.default_rng(2024)
    conn = server.connection(timeout=30)
    statuses: dict[int, int] = {}
    try:
        for (body, kind), _ in zip(_mutants(good_png, rng), range(FUZZ_CASES), strict=False):
            headers = {"Content-Type": kind} if kind else {}
            try:
                conn.request("POST", PREDICT, body=body, headers=headers)
                response = conn.getresponse()
            except (http.client.HTTPException, OSError):  # closed after a 413: reconnect
                conn.close()
                conn = server.connection(timeout=30)
                conn.request("POST", PREDICT, body=body, headers=headers)
                response = conn.getresponse()
            answer = json.loads(response.read())
            statuses[response.status] = statuses.get(response.status, 0) + 1
            assert response.status == 200 or 400 <= response.status < 500, (response.status, answer)
            assert ("error" in answer) == (response.status != 200), answer
            if response.will_close:
                conn.close()
                conn = server.connection(timeout=30)
    finally:
        conn.close()
    assert sum(statuses.values()) == FUZZ_CASES and statuses.get(400, 0) > FUZZ_CASES // 3
    status, got = server.post(PREDICT, good_png)
    from imgclf.datasets.folder import read_image

    image = read_image("x.png", mode="L", data=good_png).reshape(1, -1)
    assert (
        status == 200 and got["top"] == rank_images(saved_models["digits-linear"], image)[0]["top"]
    )
