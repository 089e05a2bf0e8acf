"""The little HTTP the app needs, on bare ASGI: requests, bounded bodies, JSON answers.

Every byte that comes from a client is read within limits: a body longer than
``max_body_size`` is refused with 413 as soon as its ``Content-Length`` (or the
bytes received so far) says so, without reading the rest; a body that trickles
in slower than ``body_timeout`` is refused with 408. Errors a client causes are
:class:`RequestError`\\ s, answered as ``{"error": "..."}`` with their status.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

from imgclf.errors import ImgclfError

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is in the serve extra
    _orjson = None

__all__ = [
    "JSON_TYPE",
    "Request",
    "RequestError",
    "error_body",
    "json_bytes",
    "read_body",
    "send_bytes",
    "send_json",
]

JSON_TYPE = b"application/json"


class RequestError(ImgclfError, ValueError):
    """A request the server refuses: an HTTP status and a message naming what was wrong.

    Parameters
    ----------
    status : int
        The 4xx status to answer with.
    message : str
    headers : list of (bytes, bytes), optional
        Extra response headers (``Allow`` for 405).
    """

    def __init__(self, status: int, message: str, headers: list | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class Request:
    """The parts of an ASGI HTTP scope the app reads, decoded once.

    Parameters
    ----------
    scope : dict
        The ASGI ``http`` scope.
    """

    __slots__ = ("endpoint", "headers", "method", "path", "query_string")

    def __init__(self, scope: dict):
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query_string: bytes = scope.get("query_string", b"")
        self.headers: dict[bytes, bytes] = dict(scope["headers"])  # lower-case names (ASGI)
        self.endpoint: str | None = None  # the route's pattern, once known (metrics label)

    def header(self, name: bytes, default: bytes = b"") -> bytes:
        """One header's value (a repeated header: its last value)."""
        return self.headers.get(name, default)

    def content_type(self) -> tuple[str, dict[str, str]]:
        """``("image/png", {"boundary": ...})``: the media type, lower-case, and its parameters."""
        text = self.header(b"content-type").decode("latin-1")
        kind, _, rest = text.partition(";")
        params = {}
        for part in rest.split(";"):
            key, eq, value = part.strip().partition("=")
            if eq:
                params[key.strip().lower()] = value.strip().strip('"')
        return kind.strip().lower(), params

    def query(self) -> dict[str, str]:
        """The query string's parameters (a repeated one: its last value)."""
        if not self.query_string:
            return {}
        try:
            text = self.query_string.decode("ascii")
            return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=32))
        except ValueError as exc:  # non-ASCII, or too many fields
            raise RequestError(400, f"unreadable query string ({exc})") from None

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        """``?name=N`` as an int in ``[low, high]``, else a 400 naming it."""
        text = self.query().get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise RequestError(
                400, f"query parameter {name}={text!r}: expected an integer from {low} to {high}"
            )
        return value


def _declared_length(request: Request, limit: int) -> int | None:
    """``Content-Length`` as an int (None when absent); 413 when over ``limit``."""
    text = request.header(b"content-length")
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise RequestError(400, f"Content-Length {text.decode('latin-1')[:40]!r} is not a size")
    length = int(text)
    if length > limit:
        raise RequestError(
            413, f"request body of {length:,} bytes is over the limit of {limit:,} bytes"
        )
    return length


async def read_body(receive, request: Request, limit: int, timeout: float) -> bytes:
    """The whole request body, at most ``limit`` bytes, received within ``timeout`` seconds.

    Raises
    ------
    RequestError
        413 over the limit (declared or received), 408 too slow, 400 the client left.
    """
    _declared_length(request, limit)
    task = asyncio.current_task()
    expired: list[bool] = []
    # a plain timer, not asyncio.timeout(): a tenth of its cost, on every request
    timer = asyncio.get_running_loop().call_later(timeout, _expire, task, expired)
    try:
        return await _receive_all(receive, limit)
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            raise RequestError(408, f"the request body took longer than {timeout:g} s") from None
        raise
    finally:
        timer.cancel()


def _expire(task: asyncio.Task, expired: list) -> None:
    expired.append(True)
    task.cancel()


async def _receive_all(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "the client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def json_bytes(payload) -> bytes:
    """Compact JSON, by orjson when it is installed (several times faster than json)."""
    if _orjson is not None:
        return _orjson.dumps(payload)
    return json.dumps(payload, separators=(",", ":")).encode()


def error_body(message: str) -> bytes:
    """``{"error": message}`` as JSON bytes."""
    return json_bytes({"error": message})


async def send_bytes(
    send, status: int, body: bytes, content_type: bytes, headers: list | None = None
) -> None:
    """One whole response."""
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, payload, headers: list | None = None) -> None:
    """``payload`` as a JSON response."""
    await send_bytes(send, status, json_bytes(payload), JSON_TYPE, headers)
