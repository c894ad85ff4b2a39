"""Request latency by route template (`/api/v1/projects/{project}/items`), never by raw path."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics.definitions import REQUEST_SECONDS

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")  # set by the router once it matched, on this same scope dict
    path = getattr(route, "path", None)
    if path:
        return path
    return "/static" if scope.get("path", "").startswith("/static/") else UNMATCHED


class RequestMetrics:
    """Pure ASGI middleware (no body buffering); observes every HTTP request, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"  # a client picks the method
            REQUEST_SECONDS.labels(method, route_template(scope), str(status)).observe(
                time.perf_counter() - start
            )
