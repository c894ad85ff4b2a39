"""Job system benchmark (issue 4): time from `POST /jobs` to the first training step and the wall time of a whole
tiny job, through a real uvicorn server, a real Celery worker process and Redis; then the LoRA / full
fine-tune training speed ratio from bench.train_speed.

    python -m bench.jobs [--backend sqlite|postgresql] [--items 40] [--steps 30] [--jobs 3] [--skip-train-speed]

The first job of a fresh worker pays for importing torch/transformers in the worker (cold); later ones do not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import redis

from app.auth.users import create_user
from app.core.blobs import BlobStore, blob_uri
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.ingest.models import Item
from app.labels.models import Annotation
from app.projects.schemas import ProjectCreate
from app.projects.service import create as create_project
from bench.common import REPO_ROOT, api_server, scratch_database
from ml.sample_data import roadwork_pool

BROKER = os.environ.get("HARDCASE_BENCH_REDIS", "redis://127.0.0.1:6379/15")
PASSWORD = "bench-password"
FINISHED = ("succeeded", "failed", "cancelled")


def seed(database_url: str, data_dir: Path, n_items: int) -> None:
    """A project with `n_items` real photos, half roadwork, each labeled once (consensus with overlap 1)."""
    pool, _ = roadwork_pool()
    rng = np.random.default_rng(0)
    positives = [p for p in pool if p["label"] == 1]
    negatives = [p for p in pool if p["label"] == 0]
    photos = [positives[i] for i in rng.permutation(len(positives))[: n_items // 2]]
    photos += [negatives[i] for i in rng.permutation(len(negatives))[: n_items - n_items // 2]]
    blobs = BlobStore((data_dir / "blobs").resolve())
    engine = make_engine(database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        admin = create_user(db_session=session, username="bench-admin", password=PASSWORD, role="admin")
        project = create_project(db_session=session, project_in=ProjectCreate(name="roadwork"))
        start = datetime(2026, 6, 1, tzinfo=UTC)
        for index, photo in enumerate(photos):
            sha = blobs.put(photo["image"].read_bytes())
            item = Item(
                project_id=project.id,
                external_id=f"photo-{index}",
                image_uri=blob_uri(sha),
                camera_id=f"cam-{index % 3}",
                is_night=bool(photo["is_night"]),
                captured_at=start + timedelta(minutes=index),
                meta={},
            )
            session.add(item)
            session.flush()
            session.add(
                Annotation(
                    item_id=item.id, project_id=project.id, annotator_id=admin.id, label=photo["label"]
                )
            )
    engine.dispose()


@contextmanager
def worker_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "cpu,gpu", "-c", "1"]
    cmd += ["--loglevel", "INFO", "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while "ready." not in log_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def logged_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    response = client.post("/api/v1/auth/login", json={"username": "bench-admin", "password": PASSWORD})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def time_job(client: httpx.Client, base_model: Path, steps: int) -> dict[str, float]:
    """Seconds from POST /jobs to the first reported training step, and to the job's end."""
    config = {
        "max_steps": steps,
        "batch_size": 8,
        "eval_every": max(1, steps // 3),
        "checkpoint_every": steps,
    }
    config |= {"image_size": 32, "augment": False, "device": "auto"}
    body = {"kind": "classifier_lora", "dataset_version": 1, "base_model": str(base_model), "config": config}
    posted = time.perf_counter()
    response = client.post("/api/v1/projects/roadwork/jobs", json=body)
    response.raise_for_status()
    job_id, first_step = response.json()["id"], None
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        now = time.perf_counter()
        if first_step is None and job["progress"]["step"] >= 1:
            first_step = now - posted
        if job["status"] in FINISHED:
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
            return {
                "first_step_s": first_step or now - posted,
                "wall_s": now - posted,
                "log": job["log_tail"],
            }
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=3, help="jobs in a row on one worker (the first is cold)")
    parser.add_argument("--skip-train-speed", action="store_true")
    args = parser.parse_args()

    from ml.tiny import build_tiny_vit_classifier

    redis.Redis.from_url(BROKER).flushdb()
    with scratch_database(args.backend) as url, tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        seed(url, data_dir, args.items)
        base_model = build_tiny_vit_classifier(Path(tmp) / "tiny-vit")
        env = {**os.environ, "HARDCASE_DATABASE_URL": url, "HARDCASE_DATA_DIR": str(data_dir)}
        env |= {"HARDCASE_BROKER_URL": BROKER, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        # a 32-wide tiny model only loses to thread contention on a small CPU box (see tests/ml/conftest.py)
        env.setdefault("OMP_NUM_THREADS", "1")
        with api_server(url, data_dir) as base, worker_process(env, Path(tmp) / "worker.log"):
            client = logged_in(base)
            client.post("/api/v1/projects/roadwork/datasets", json={}).raise_for_status()
            runs = [time_job(client, base_model, args.steps) for _ in range(args.jobs)]
    print(f"backend {args.backend}, broker {BROKER}, {args.items} items, {args.steps} steps per job")
    for index, run in enumerate(runs):
        label = "cold" if index == 0 else "warm"
        print(
            f"job {index + 1} ({label}): POST -> first step {run['first_step_s']:.2f} s, whole job {run['wall_s']:.2f} s"
        )
    if len(runs) > 1:
        warm = runs[1:]
        print(
            f"warm median: first step {statistics.median(r['first_step_s'] for r in warm):.2f} s, "
            f"whole job {statistics.median(r['wall_s'] for r in warm):.2f} s"
        )
    print("log of the last job:\n" + runs[-1]["log"])
    if not args.skip_train_speed:
        sys.argv = [sys.argv[0]]
        from bench import train_speed

        train_speed.main()


if __name__ == "__main__":
    main()
