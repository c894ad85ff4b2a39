"""Shared pieces of the benchmarks: a scratch database, a real uvicorn server on a free loopback port."""

from __future__ import annotations

import argparse
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

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REPO_ROOT = Path(__file__).resolve().parents[1]


def pg_admin_url() -> str:
    return os.environ.get("HARDCASE_BENCH_PG", DEFAULT_PG_ADMIN_URL)


def add_environment_options(parser: argparse.ArgumentParser) -> None:
    """Where the benchmark's servers live: options, defaulting to the environment, defaulting to localhost."""
    parser.add_argument(
        "--pg-admin-url",
        default=pg_admin_url(),
        help="PostgreSQL URL whose server gets the scratch databases (env HARDCASE_BENCH_PG)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("HARDCASE_BENCH_REDIS", "redis://127.0.0.1:6379/15"),
        help="broker for the API servers started here (env HARDCASE_BENCH_REDIS; pick a free db number)",
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        default=Path(os.environ.get("HARDCASE_BENCH_APP_ROOT", REPO_ROOT)),
        help="checkout whose app/ the API servers run (env HARDCASE_BENCH_APP_ROOT): measure an older commit "
        "against this one in the same period",
    )


def add_baseline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline-root",
        type=Path,
        default=os.environ.get("HARDCASE_BENCH_BASELINE_ROOT"),
        help="a checkout of older code measured in the same run (env HARDCASE_BENCH_BASELINE_ROOT)",
    )


def apply_environment_options(args: argparse.Namespace) -> None:
    os.environ["HARDCASE_BENCH_PG"] = args.pg_admin_url
    os.environ["HARDCASE_BENCH_REDIS"] = args.redis_url
    os.environ["HARDCASE_BENCH_APP_ROOT"] = str(args.app_root)


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
    with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_admin_url().rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def api_server(
    database_url: str, data_dir: Path, workers: int = 1, root: Path | None = None, **env: str
) -> Iterator[str]:
    """uvicorn serving Hardcase from `root` (default: --app-root) on 127.0.0.1 (loopback only); yields its URL."""
    root = root or Path(os.environ.get("HARDCASE_BENCH_APP_ROOT", REPO_ROOT))
    port = free_port()
    environment = {
        **os.environ,
        "HARDCASE_DATABASE_URL": database_url,
        "HARDCASE_DATA_DIR": str(data_dir),
        "HARDCASE_BROKER_URL": os.environ.get("HARDCASE_BENCH_REDIS", "redis://127.0.0.1:6379/15"),
        **env,
    }
    cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    log = None
    if workers > 1:  # as the product runs them (`hardcase serve --workers N`); its request log goes to a file
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
        data_dir.mkdir(parents=True, exist_ok=True)
        log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(cmd, env=environment, cwd=root, stdout=log, stderr=log)
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
            raise RuntimeError("API server did not start" + (f" (log: {log.name})" if log else ""))
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if log is not None:
            log.close()


FILL_SQL = """
WITH new_items AS (
    INSERT INTO items (project_id, external_id, camera_id, is_night, captured_at, meta, created_at)
    SELECT %(project)s, 'fill-' || lpad(g::text, 9, '0'), 'cam-' || (g %% 50), g %% 5 = 0,
           now() - (g %% 100000) * interval '1 minute', '{}', now()
    FROM generate_series(%(start)s, %(stop)s - 1) AS g
    RETURNING id
), new_predictions AS (
    INSERT INTO predictions (item_id, project_id, model, model_version, score, boxes, extra, received_at)
    SELECT new_items.id, %(project)s, m, '1', random(), '[]', '{}', now()
    FROM new_items, unnest(ARRAY['yolo-cones', 'vit-roadwork', 'qwen2.5-vl']) AS m
)
INSERT INTO hardness (item_id, project_id, priority, box_disagreement, n_models, likely_positive, status,
                      annotation_count, skip_count, updated_at)
SELECT id, %(project)s, random(), 0, 3, false, 'pending', 0, 0, now() FROM new_items
"""


def sql_fill(url: str, project_id: int, start: int, stop: int) -> None:
    """Items start..stop-1 of a project, three predictions each and their hardness rows, inserted server-side
    (the database's own speed on this schema, indexes and foreign keys included)."""
    with psycopg.connect(url) as conn:
        for chunk in range(start, stop, 100_000):
            conn.execute(
                FILL_SQL, {"project": project_id, "start": chunk, "stop": min(stop, chunk + 100_000)}
            )
            conn.commit()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")
    )
