"""Where a label request's time goes (issue 12): one annotator, one kept-alive connection, a lean client.

Times endpoints of increasing depth on one uvicorn server over a database `bench.queue` loaded: `/healthz`
(the HTTP stack alone), `auth/me` (+ the session check), then `queue/next` and the label submit back to back.
The client is `http.client`, so the figures are the server's and not an HTTP library's. With `--baseline-root`
the older checkout's server is measured in the same run, the two alternating `--rounds` times.

    python -m bench.queue --items 1000000 --database hc_1m --skip leases   # load once
    python -m bench.request_path --database hc_1m --baseline-root /tmp/before --rounds 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from bench.common import (
    REPO_ROOT,
    add_baseline_option,
    add_environment_options,
    api_server,
    apply_environment_options,
    pg_admin_url,
)
from bench.queue import PASSWORD, PROJECT


class LeanClient:
    """One kept-alive connection with the browser's cookie and CSRF header, as the label page sends them."""

    def __init__(self, base_url: str, username: str) -> None:
        login = httpx.post(f"{base_url}/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        login.raise_for_status()
        cookie = "; ".join(f"{name}={value}" for name, value in login.cookies.items())
        self.headers = {"Cookie": cookie, "X-CSRF-Token": login.json()["csrf_token"]}
        host, port = base_url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port))

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {**self.headers, "Content-Length": str(len(data)), "Content-Type": "application/json"}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()


def timed(fn, repeat: int, warmup: int = 30) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(base_url: str, username: str, labels: int) -> dict[str, list[float]]:
    client = LeanClient(base_url, username)
    figures = {
        "healthz": timed(lambda: client.call("GET", "/healthz"), 200),
        "auth/me": timed(lambda: client.call("GET", "/api/v1/auth/me"), 200),
    }
    figures["queue/next"], figures["submit"] = [], []
    for _ in range(labels):
        start = time.perf_counter()
        status, data = client.call("POST", f"/api/v1/projects/{PROJECT}/queue/next")
        leased = time.perf_counter()
        assert status == 200, data
        item_id = json.loads(data)["item"]["id"]
        body = {"label": 0, "duration_ms": 1500}
        status, data = client.call("POST", f"/api/v1/projects/{PROJECT}/items/{item_id}/annotations", body)
        assert status == 201, data
        figures["queue/next"].append((leased - start) * 1000)
        figures["submit"].append((time.perf_counter() - leased) * 1000)
    return figures


def p50_p95(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):6.2f} / {ordered[int(len(ordered) * 0.95)]:6.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="a database `bench.queue --database` loaded")
    parser.add_argument("--labels", type=int, default=300, help="next + submit pairs per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--username", default="annotator0", help="one of the annotators bench.queue made")
    add_baseline_option(parser)
    add_environment_options(parser)
    args = parser.parse_args(argv)
    apply_environment_options(args)
    url = pg_admin_url().rsplit("/", 1)[0] + f"/{args.database}"
    roots = [("before", args.baseline_root)] if args.baseline_root else []
    roots.append(("after", args.app_root or REPO_ROOT))
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(args.rounds):
        for name, root in roots:
            with (
                TemporaryDirectory() as tmp,
                api_server(url, Path(tmp), root=root, PYTHONPATH=str(root)) as base,
            ):
                for endpoint, times in measure(base, args.username, args.labels).items():
                    results[name][endpoint] += times
    print(f"{'ms, p50 / p95':<14}" + "".join(f"{name:>18}" for name, _ in roots))
    for endpoint in ("healthz", "auth/me", "queue/next", "submit"):
        print(f"{endpoint:<14}" + "".join(f"{p50_p95(results[name][endpoint]):>18}" for name, _ in roots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
