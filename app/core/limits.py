"""Request limits at the edge, before any route runs: body size, JSON nesting depth, text a database can store.

A pure ASGI middleware. The body is counted while it arrives (Content-Length is refused up front), so an
oversized upload is answered 413 without being read to the end. Clean bodies pay only byte scans (C speed);
the body is parsed here only when a scan found a candidate problem, to name the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import error_body

_NOT_A_BRACKET = bytes(code for code in range(256) if code not in b"[]{}")
_TEMPLATE_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_PART_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    status: int
    field: str
    message: str


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (PostgreSQL refuses NUL; UTF-8 cannot encode a lone surrogate)."""
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether JSON nesting passes `max_depth`, in C-speed passes (no parse): strings are cut out at their
    quotes, the brackets left are kept, and numpy finds the deepest point of their running sum."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    # Drop escaped backslashes first, so every \" left is an escaped quote; then quotes delimit strings.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_A_BRACKET)
    if len(brackets) <= max_depth:
        return False
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0)) > max_depth


def _suspect_escapes(body: bytes) -> bool:
    """\\u0000, or a \\uD800-\\uDFFF escape that may be half a surrogate pair (the parse decides)."""
    return b"\\u0000" in body or b"\\ud" in body or b"\\uD" in body


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _bad_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if (why := text_problem(value)) is not None:
            yield path or "body", why
    elif isinstance(value, list):
        for index, element in enumerate(value):
            yield from _bad_strings(element, _join(path, index))
    elif isinstance(value, dict):
        for key, element in value.items():
            if (why := text_problem(key)) is not None:
                yield path or "body", f"a key {why}"  # the key itself may not be printable
            else:
                yield from _bad_strings(element, _join(path, key))


def json_problem(body: bytes, *, max_depth: int, field: str = "") -> Problem | None:
    if json_too_deep(body, max_depth):
        return Problem(422, field or "body", f"JSON is nested deeper than the limit of {max_depth} levels")
    if not _suspect_escapes(body):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parser answers
    for path, why in _bad_strings(parsed, field):
        return Problem(422, path, why)
    return None


def _urlencoded_problem(raw: bytes, *, where: str) -> Problem | None:
    if b"%00" not in raw and b"\x00" not in raw:
        return None
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return Problem(422, key.replace("\x00", "") or where, "must not contain NUL characters (%00)")
    return None


def _multipart_text_parts(body: bytes, boundary: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, value) of each part that is not a file; file parts (binary, NUL bytes are normal) are skipped."""
    delimiter = b"--" + boundary
    position = body.find(delimiter)
    while position != -1:
        start = position + len(delimiter)
        header_end = body.find(b"\r\n\r\n", start)
        end = body.find(b"\r\n" + delimiter, header_end)
        if header_end == -1 or end == -1:
            return
        headers = body[start:header_end]
        if b"filename" not in headers.lower():
            name = _PART_NAME.search(headers)
            yield (name.group(1).decode("latin-1") if name else "form"), body[header_end + 4 : end]
        position = end + 2


def _multipart_problem(body: bytes, content_type: str, *, max_depth: int) -> Problem | None:
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        return None
    for name, value in _multipart_text_parts(body, boundary.group(1).encode("latin-1")):
        if b"\x00" in value:
            return Problem(422, name, "must not contain NUL characters")
        if value.lstrip()[:1] in (b"{", b"["):
            problem = json_problem(value, max_depth=max_depth)
            if problem is not None:
                return problem
    return None


def body_problem(body: bytes, content_type: str, *, max_depth: int) -> Problem | None:
    if content_type.startswith("multipart/form-data"):
        return _multipart_problem(body, content_type, max_depth=max_depth)
    if content_type.startswith("application/x-www-form-urlencoded"):
        return _urlencoded_problem(body, where="form")
    # Routes parse JSON whatever the content type says (FastAPI does without one; ingest does for any).
    return json_problem(body, max_depth=max_depth)


def _path_param_named(scope: Scope) -> str:
    """The path parameter holding the NUL, found through the documented path templates."""
    openapi = getattr(scope.get("app"), "openapi", None)
    if openapi is None:
        return "path"
    for template in openapi().get("paths", {}):
        pieces = _TEMPLATE_PARAM.split(template)  # literal, name, literal, name, ..., literal
        if len(pieces) == 1:
            continue
        pattern = "".join(
            re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>.*?)" for index, piece in enumerate(pieces)
        )
        match = re.fullmatch(pattern, scope["path"], flags=re.DOTALL)
        if match is not None:
            for name, value in match.groupdict().items():
                if "\x00" in value:
                    return name
    return "path"


def url_problem(scope: Scope) -> Problem | None:
    if "\x00" in scope.get("path", ""):
        return Problem(422, _path_param_named(scope), "must not contain NUL characters (%00)")
    return _urlencoded_problem(scope.get("query_string", b""), where="query")


def too_large(limit: int) -> Problem:
    return Problem(
        413, "body", f"the request body is larger than the limit of {limit} bytes ({limit / 2**20:g} MiB)"
    )


class RequestLimits:
    """Refuses, before the route runs: bodies over `max_body_bytes` (413), JSON nested deeper than
    `max_json_depth`, and NUL or lone surrogates in JSON, form fields, query or path (422 naming the field)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app, self.max_body_bytes, self.max_json_depth = app, max_body_bytes, max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = url_problem(scope)
        headers = Headers(scope=scope)
        if problem is None:
            problem = self._declared_length_problem(headers)
        if problem is not None:
            await _answer(problem, scope, receive, send)
            return
        if not _may_have_body(headers):
            await self.app(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            problem = too_large(self.max_body_bytes)
        else:
            problem = body_problem(body, headers.get("content-type", ""), max_depth=self.max_json_depth)
        if problem is not None:
            await _answer(problem, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _declared_length_problem(self, headers: Headers) -> Problem | None:
        declared = headers.get("content-length")
        if declared is None:
            return None
        if not declared.isdigit():
            return Problem(400, "Content-Length", "Content-Length must be a number of bytes")
        return too_large(self.max_body_bytes) if int(declared) > self.max_body_bytes else None

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _may_have_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client to disconnect, as the server would

    return replayed


async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    body = error_body(problem.message, [{"field": problem.field, "message": problem.message}])
    headers = {"Connection": "close"} if problem.status == 413 else None
    await JSONResponse(body, status_code=problem.status, headers=headers)(scope, receive, send)
