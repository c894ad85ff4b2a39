"""Real remote image sources on 127.0.0.1 for tests: moto's S3 server and a plain HTTP server."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from tests.utils.receiver import serving

S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def noisy_png(seed: int, side: int) -> bytes:
    """A PNG that compresses badly, so `side` sets its size in bytes (about 3·side² bytes)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class S3Server:
    endpoint_url: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )

    def put(self, bucket: str, key: str, data: bytes) -> str:
        client = self.client()
        with suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def settings(self) -> dict:
        return {
            "s3_endpoint_url": self.endpoint_url,
            "s3_access_key_id": S3_KEY,
            "s3_secret_access_key": S3_SECRET,
            "s3_region": S3_REGION,
        }


@contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@dataclass
class HttpServer:
    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"


@contextmanager
def http_image_server() -> Iterator[HttpServer]:
    """Serves `files` by path, answers 302 for `redirects` (path -> URL), waits `delays`; records requests."""
    port = free_port()
    state = HttpServer(f"http://127.0.0.1:{port}")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            state.requests.append(path)
            time.sleep(state.delays.get(path, 0))
            if path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[path])
                self.end_headers()
                return
            body = state.files.get(path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", port), Handler)):
        yield state
