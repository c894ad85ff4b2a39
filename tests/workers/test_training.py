"""The training task in-process on both databases: a tiny ViT job from a frozen dataset to a model version."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from app.jobs.models import Job, JobMetric
from app.registry.models import ModelVersion
from ml.tiny import build_tiny_vit_classifier
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items
from workers.training import DbReporter, JobLost, execute_job, retry_or_fail

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    return build_tiny_vit_classifier(tmp_path_factory.mktemp("models") / "tiny-vit")


def tiny_config(steps: int = 6, checkpoint_every: int = 3, eval_every: int = 3) -> dict:
    return {
        "max_steps": steps,
        "batch_size": 8,
        "eval_every": eval_every,
        "checkpoint_every": checkpoint_every,
        "image_size": 32,
        "ema_decay": 0.0,
        "augment": False,
        "device": "cpu",
        "threshold_grid": 200,
        "calibrate": False,
    }


def create_job(app, db, tiny_vit: Path, n_items: int = 24, **config) -> int:
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, user, n_items)
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201
    body = {
        "kind": "classifier_lora",
        "dataset_version": 1,
        "base_model": str(tiny_vit),
        "config": tiny_config(**config),
    }
    response = admin.post("/api/v1/projects/roadwork/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_job_runs_to_a_registered_model_with_holdout_metrics(app, db, tiny_vit, sessions, settings):
    job_id = create_job(app, db, tiny_vit)
    outcome = execute_job(job_id, sessions=sessions, settings=settings, worker_id="w-test", task_id="t-1")
    assert outcome == "succeeded"
    db.rollback()  # end the read snapshot (SQLite keeps one per transaction)
    db.expire_all()
    job = db.get(Job, job_id)
    assert (job.status, job.attempts, job.progress_step, job.progress_total) == ("succeeded", 1, 6, 6)
    assert job.attempt_first_step == 1 and job.heartbeat_at is None and job.error is None
    assert "registered model version 1" in job.log_tail
    assert re.search(
        r"^\d\d:\d\d:\d\d device: (cpu|cuda:\d+ \(.+\))$", job.log_tail, re.M
    )  # the job page's device
    names = set(db.scalars(select(JobMetric.name).where(JobMetric.job_id == job_id)))
    assert {"train_loss", "val_mcc"} <= names
    model = db.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
    assert model.version == 1 and -1.0 <= model.metrics["mcc"] <= 1.0 and model.metrics["n"] >= 2
    assert (settings.jobs_dir / str(job_id) / "checkpoints").is_dir()
    assert Path(model.artifact_archive).stat().st_size == model.artifact_bytes
    # a second delivery of the same message finds the job finished and changes nothing
    assert (
        execute_job(job_id, sessions=sessions, settings=settings, worker_id="w-2", task_id="t-2")
        == "finished"
    )
    assert db.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id)) == model.id


def test_a_job_that_cannot_start_fails_with_its_traceback(app, db, tiny_vit, sessions, settings):
    job_id = create_job(app, db, tiny_vit)
    db.get(Job, job_id).config = {**tiny_config(), "base_model": str(tiny_vit / "missing")}
    db.commit()
    assert execute_job(job_id, sessions=sessions, settings=settings, worker_id="w", task_id="t") == "failed"
    db.rollback()  # end the read snapshot (SQLite keeps one per transaction)
    db.expire_all()
    job = db.get(Job, job_id)
    assert job.status == "failed" and "Traceback" in job.error and job.finished_at is not None


def test_the_reporter_throttles_writes_and_stops_when_the_job_changed_hands(
    app, db, tiny_vit, sessions, settings
):
    job_id = create_job(app, db, tiny_vit)
    job = db.get(Job, job_id)
    job.status, job.worker_id = "running", "me"
    db.commit()
    reporter = DbReporter(sessions, job_id, "me", flush_interval_s=60.0)
    reporter.progress(1, 10)  # the first write goes out at once
    for step in range(2, 6):
        reporter.progress(step, 10)
        reporter.metrics(step, {"train_loss": 1.0 / step, "auroc": float("nan")})
    db.rollback()  # end the read snapshot (SQLite keeps one per transaction)
    db.expire_all()
    assert db.get(Job, job_id).progress_step == 1
    reporter.flush(force=True)
    db.rollback()  # end the read snapshot (SQLite keeps one per transaction)
    db.expire_all()
    assert db.get(Job, job_id).progress_step == 5
    assert db.scalars(select(JobMetric.name).where(JobMetric.job_id == job_id)).all() == ["train_loss"] * 4
    db.get(Job, job_id).worker_id = "someone-else"
    db.commit()
    reporter.progress(6, 10)
    with pytest.raises(JobLost):
        reporter.flush(force=True)
    assert not reporter.cancelled()
    db.get(Job, job_id).cancel_requested_at = db.get(Job, job_id).created_at
    db.commit()
    reporter._last_cancel_poll = 0.0
    assert reporter.cancelled()


def test_a_transient_error_requeues_the_job_and_a_real_bug_fails_it(
    app, db, tiny_vit, sessions, settings, redis_url
):
    job_id = create_job(app, db, tiny_vit)
    broker = redis.Redis.from_url(redis_url)
    broker.delete("gpu")
    job = db.get(Job, job_id)
    job.status, job.worker_id, job.attempts = "running", "me", 1
    db.commit()
    assert retry_or_fail(sessions, job_id, "me", ConnectionError("broker blip"), settings) == "retrying"
    db.rollback()
    db.expire_all()
    job = db.get(Job, job_id)
    assert (job.status, job.worker_id) == ("queued", None) and "ConnectionError: broker blip" in job.error
    assert broker.llen("gpu") == 1  # re-sent with a back-off countdown
    job.status, job.worker_id, job.attempts = "running", "me", 2
    db.commit()
    assert retry_or_fail(sessions, job_id, "me", ValueError("config: nonsense"), settings) == "failed"
    db.rollback()
    db.expire_all()
    assert db.get(Job, job_id).status == "failed"
    broker.delete("gpu")
