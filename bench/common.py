"""Shared pieces of the benchmarks: a scratch database, a real uvicorn server on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

PG_ADMIN_URL = os.environ.get("HARDCASE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A new, migrated, empty database, dropped afterwards."""
    from app.core.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    name = f"hc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def api_server(database_url: str, data_dir: Path, workers: int = 1, **env: str) -> Iterator[str]:
    """uvicorn serving Hardcase on 127.0.0.1 (loopback only); yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "HARDCASE_DATABASE_URL": database_url,
        "HARDCASE_DATA_DIR": str(data_dir),
        "HARDCASE_BROKER_URL": os.environ.get("HARDCASE_BENCH_REDIS", "redis://127.0.0.1:6379/15"),
        **env,
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=environment, cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("API server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")
    )
