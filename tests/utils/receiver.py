"""A real HTTP webhook receiver on 127.0.0.1 (a thread with http.server) that checks Hardcase's signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_hardcase_webhook(secret: str, body: bytes, headers, tolerance_s: int = 300) -> bool:
    """The README's receiver snippet, verbatim: HMAC-SHA256 over "timestamp.body" within the replay window."""
    timestamp = headers.get("X-Hardcase-Timestamp", "")
    signature = headers.get("X-Hardcase-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False  # missing, or too old / too far ahead: a replay
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), signature)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    secret: str = ""
    fail_first: int = 0  # answer 500 to this many requests, then 200
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer_for(self, verified: bool) -> int:
        if not verified:
            return 401
        return 500 if len(self.received) < self.fail_first else 200


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(fail_first=fail_first)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items()}
            with lock:
                verified = verify_hardcase_webhook(receiver.secret, body, self.headers)
                status = receiver.answer_for(verified)
                receiver.received.append(Received(headers, body, verified, status))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no")

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/hardcase"
    with serving(server):
        yield receiver


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """Serves in a daemon thread for the duration of the block, then shuts down and closes the socket."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
