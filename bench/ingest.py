"""Ingestion throughput through the HTTP API into PostgreSQL and SQLite, against a one-item-per-request baseline.

    python bench/ingest.py --items 50000 --models 3

Prints items/s and predictions/s per backend and the ratio to the naive baseline measured in the same run.
Peer figure for scale (issue 2): Label Studio 1.23 imports ~1,300 tasks/s with one prediction each (SQLite).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from app.auth.keys import create_api_key
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.projects.schemas import ProjectCreate
from app.projects.service import create
from bench.common import api_server, scratch_database

LABEL_STUDIO_TASKS_PER_S = 1300
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


def seed(database_url: str) -> str:
    sessions = make_sessionmaker(make_engine(database_url))
    with session_scope(sessions) as session:
        create(db_session=session, project_in=ProjectCreate(name="bench"))
        _, secret = create_api_key(db_session=session, name="bench")
    return secret


def post_batches(base: str, key: str, batches: list[list[dict]], concurrency: int) -> float:
    def send(batch: list[dict]) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120) as client:
            response = client.post("/api/v1/projects/bench/predictions", json={"items": batch})
            assert response.status_code == 201, response.text[:500]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, batches))
    return time.perf_counter() - start


def run_backend(
    backend: str, n_items: int, n_models: int, batch_size: int, baseline_items: int, concurrency: int
) -> dict:
    with scratch_database(backend) as url, tempfile.TemporaryDirectory() as tmp:
        key = seed(url)
        items = [make_item(i, n_models) for i in range(n_items + baseline_items)]
        with api_server(url, Path(tmp), HARDCASE_MAX_BATCH_ITEMS=str(batch_size)) as base:
            batched = [items[i : i + batch_size] for i in range(0, n_items, batch_size)]
            elapsed = post_batches(base, key, batched, concurrency)
            naive = [[item] for item in items[n_items:]]
            naive_elapsed = post_batches(base, key, naive, 1)
    rate = n_items / elapsed
    naive_rate = baseline_items / naive_elapsed
    return {
        "backend": backend,
        "items_per_s": rate,
        "predictions_per_s": rate * n_models,
        "seconds": elapsed,
        "naive_items_per_s": naive_rate,
        "ratio_vs_naive": rate / naive_rate,
        "ratio_vs_label_studio": rate / LABEL_STUDIO_TASKS_PER_S,
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
    args = parser.parse_args()
    print(
        f"ingest {args.items} items x {args.models} predictions (image references), batches of "
        f"{args.batch_size}, {args.concurrency} client threads; baseline: {args.baseline_items} single-item requests"
    )
    print(
        f"{'backend':<11} {'items/s':>9} {'preds/s':>9} {'seconds':>8} {'naive items/s':>14} "
        f"{'x naive':>8} {'x LabelStudio':>14}"
    )
    for backend in args.backends.split(","):
        r = run_backend(
            backend, args.items, args.models, args.batch_size, args.baseline_items, args.concurrency
        )
        print(
            f"{r['backend']:<11} {r['items_per_s']:>9.0f} {r['predictions_per_s']:>9.0f} {r['seconds']:>8.1f} "
            f"{r['naive_items_per_s']:>14.0f} {r['ratio_vs_naive']:>8.1f} {r['ratio_vs_label_studio']:>14.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
