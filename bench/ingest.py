"""Ingestion throughput through the HTTP API into PostgreSQL and SQLite, against baselines measured in the same run.

    python -m bench.ingest --items 50000 --models 3
    python -m bench.ingest --app-root /tmp/hardcase-before      # the same client against an older checkout
    python -m bench.ingest --workers 2 --concurrency 4           # two API processes (hardcase serve --workers 2)

Clients reuse their connections (one httpx.Client per sending thread), as a real cascade does. Per backend it
prints absolute items/s and predictions/s, then two ratios measured here, on the same database server:
  x naive    against one item per request (the same client, connection reused);
  % ceiling  of the database's own speed: the same number of items, three predictions each and their hardness
             rows inserted by one server-side INSERT ... SELECT from generate_series into the same tables
             (indexes and foreign keys included; PostgreSQL only). No Python, no network, no parsing: what
             the API could reach at best.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from app.auth.keys import create_api_key
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.projects.schemas import ProjectCreate
from app.projects.service import create
from bench.common import (
    add_environment_options,
    api_server,
    apply_environment_options,
    scratch_database,
    sql_fill,
)

MODELS = ("yolo-cones", "vit-roadwork", "qwen2.5-vl")


def make_item(index: int, n_models: int) -> dict:
    return {
        "external_id": f"frame-{index:08d}",
        "image": {"url": f"s3://roadwork-frames/cam-{index % 50}/{index:08d}.jpg"},
        "metadata": {
            "captured_at": f"2026-11-{1 + index % 28:02d}T{index % 24:02d}:00:00Z",
            "camera_id": f"cam-{index % 50}",
            "is_night": index % 5 == 0,
        },
        "predictions": [
            {
                "model": MODELS[m % len(MODELS)] + (f"-{m}" if m >= len(MODELS) else ""),
                "model_version": "1",
                "score": ((index * 7919 + m * 104729) % 1000) / 1000,
            }
            for m in range(n_models)
        ],
    }


def seed(database_url: str) -> tuple[str, int]:
    """The benchmark's project and key, and a second project for the server-side ceiling."""
    sessions = make_sessionmaker(make_engine(database_url))
    with session_scope(sessions) as session:
        create(db_session=session, project_in=ProjectCreate(name="bench"))
        ceiling = create(db_session=session, project_in=ProjectCreate(name="ceiling"))
        _, secret = create_api_key(db_session=session, name="bench")
    return secret, ceiling.id


def post_batches(base: str, key: str, batches: list[bytes], concurrency: int) -> float:
    """Sends the (JSON-encoded) batches from `concurrency` threads, each with one kept-alive connection."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def send(batch: bytes) -> None:
        if not hasattr(local, "client"):
            headers = {"X-API-Key": key, "content-type": "application/json"}
            local.client = httpx.Client(base_url=base, headers=headers, timeout=120)
            clients.append(local.client)
        response = local.client.post("/api/v1/projects/bench/predictions", content=batch)
        assert response.status_code == 201, response.text[:500]

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, batches))
        return time.perf_counter() - start
    finally:
        for client in clients:
            client.close()


def encode(items: list[dict]) -> bytes:
    return json.dumps({"items": items}).encode()


def ceiling_items_per_s(url: str, project_id: int, n_items: int) -> float | None:
    """Items/s of the server-side INSERT ... SELECT into the same tables (PostgreSQL; None elsewhere)."""
    if not url.startswith("postgresql"):
        return None
    start = time.perf_counter()
    sql_fill(url, project_id, 0, n_items)
    return n_items / (time.perf_counter() - start)


def run_backend(args: argparse.Namespace, backend: str) -> dict:
    n_items, batch_size = args.items, args.batch_size
    with scratch_database(backend) as url, tempfile.TemporaryDirectory() as tmp:
        key, ceiling_project = seed(url)
        items = [make_item(i, args.models) for i in range(n_items + args.baseline_items)]
        with api_server(url, Path(tmp), args.workers, HARDCASE_MAX_BATCH_ITEMS=str(batch_size)) as base:
            batched = [encode(items[i : i + batch_size]) for i in range(0, n_items, batch_size)]
            elapsed = post_batches(base, key, batched, args.concurrency)
            naive = [encode([item]) for item in items[n_items:]]
            naive_elapsed = post_batches(base, key, naive, 1)
        ceiling = ceiling_items_per_s(url, ceiling_project, n_items)
    rate = n_items / elapsed
    return {
        "backend": backend,
        "items_per_s": rate,
        "predictions_per_s": rate * args.models,
        "seconds": elapsed,
        "naive_items_per_s": args.baseline_items / naive_elapsed,
        "ceiling_items_per_s": ceiling,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--baseline-items", type=int, default=1000, help="items sent one per request")
    parser.add_argument("--concurrency", type=int, default=2, help="client threads sending batches")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--workers", type=int, default=1, help="API server processes (uvicorn --workers)")
    add_environment_options(parser)
    args = parser.parse_args()
    apply_environment_options(args)
    print(
        f"ingest {args.items} items x {args.models} predictions (image references), batches of "
        f"{args.batch_size}, {args.concurrency} client threads, {args.workers} server process(es); baseline: {args.baseline_items} single-item "
        f"requests; app from {args.app_root}"
    )
    print(
        f"{'backend':<11} {'items/s':>9} {'preds/s':>9} {'seconds':>8} {'naive items/s':>14} "
        f"{'x naive':>8} {'ceiling items/s':>16} {'% ceiling':>10}"
    )
    for backend in args.backends.split(","):
        r = run_backend(args, backend)
        ceiling = r["ceiling_items_per_s"]
        ceiling_text = (
            f"{ceiling:>16.0f} {100 * r['items_per_s'] / ceiling:>9.0f}%"
            if ceiling
            else f"{'-':>16} {'-':>10}"
        )
        print(
            f"{r['backend']:<11} {r['items_per_s']:>9.0f} {r['predictions_per_s']:>9.0f} {r['seconds']:>8.1f} "
            f"{r['naive_items_per_s']:>14.0f} {r['items_per_s'] / r['naive_items_per_s']:>8.1f} {ceiling_text}",
            flush=True,
        )


if __name__ == "__main__":
    main()
