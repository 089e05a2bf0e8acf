"""``multipart/form-data`` bodies (RFC 7578), already in memory and bounded in size.

Only what an upload form sends is read: parts with a ``Content-Disposition:
form-data`` header, their field name, file name and content type. At most
``max_parts`` parts and 8 KiB of headers per part; anything malformed is a
400 naming what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgclf.serve._http import RequestError

__all__ = ["Part", "parse_multipart"]

_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")  # RFC 2046's bchars
_MAX_HEADER_BYTES = 8 << 10


@dataclass(frozen=True)
class Part:
    """One part of a form: its field name, file name (or None), content type and bytes."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(body: bytes, boundary: str | None, max_parts: int) -> list[Part]:
    """The parts of a ``multipart/form-data`` body.

    Parameters
    ----------
    body : bytes
    boundary : str or None
        The ``boundary`` parameter of the request's ``Content-Type``.
    max_parts : int
        More parts than this is a 400.

    Raises
    ------
    RequestError
        400 for a missing or invalid boundary, a body without the closing
        delimiter, a part without headers or ``Content-Disposition``, too many parts.
    """
    if not boundary or not _BOUNDARY.match(boundary) or boundary.endswith(" "):
        raise RequestError(400, f"multipart body: invalid or missing boundary {boundary!r}")
    delimiter = b"--" + boundary.encode("ascii")
    start = _first_delimiter(body, delimiter)
    parts, separator = [], b"\r\n" + delimiter
    position = start + len(delimiter)
    while True:
        if body.startswith(b"--", position):
            return parts  # the closing delimiter; an epilogue after it is ignored
        if not body.startswith(b"\r\n", position):
            raise RequestError(400, "multipart body: a delimiter is not followed by CRLF")
        end = body.find(separator, position + 2)
        if end < 0:
            raise RequestError(400, "multipart body: no closing delimiter (truncated?)")
        if len(parts) == max_parts:
            raise RequestError(400, f"multipart body: more than {max_parts} parts")
        parts.append(_part(body[position + 2 : end], len(parts)))
        position = end + len(separator)


def _first_delimiter(body: bytes, delimiter: bytes) -> int:
    """Where the first delimiter starts (after an optional preamble)."""
    if body.startswith(delimiter):
        return 0
    found = body.find(b"\r\n" + delimiter)
    if found < 0:
        raise RequestError(400, "multipart body: the boundary never occurs")
    return found + 2


def _part(raw: bytes, index: int) -> Part:
    """One part: headers, a blank line, the data."""
    split = raw.find(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):  # no headers at all
        raise RequestError(400, f"multipart part {index}: no Content-Disposition header")
    if split < 0 or split > _MAX_HEADER_BYTES:
        raise RequestError(
            400, f"multipart part {index}: headers missing, unterminated or too long"
        )
    headers = {}
    for line in raw[:split].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise RequestError(400, f"multipart part {index}: malformed header line")
        headers[name.strip().lower()] = value.strip().decode("utf-8", "replace")
    disposition = headers.get(b"content-disposition")
    if disposition is None:
        raise RequestError(400, f"multipart part {index}: no Content-Disposition header")
    params = _parameters(disposition)
    return Part(
        name=params.get("name", ""),
        filename=params.get("filename"),
        content_type=headers.get(b"content-type", "text/plain").split(";")[0].strip().lower(),
        data=raw[split + 4 :],
    )


_PARAM = re.compile(r';\s*([A-Za-z0-9_\-*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _parameters(disposition: str) -> dict[str, str]:
    """``form-data; name="file"; filename="a.png"`` -> ``{"name": "file", "filename": "a.png"}``."""
    return {
        match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
        for match in _PARAM.finditer(disposition)
    }
