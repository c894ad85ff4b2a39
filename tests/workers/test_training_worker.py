"""Jobs through a REAL Celery worker process: train to a model version, cancel within seconds, and survive a
SIGKILLed worker (the reaper re-sends, a new worker resumes from the checkpoint, exactly one model)."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import select

from app.jobs.models import FINISHED, Job
from app.registry.models import ModelVersion
from tests.utils.worker import celery_worker, kill_worker, wait_until
from tests.workers.test_training import create_job, tiny_vit  # noqa: F401 - the tiny model fixture
from workers.celery_app import make_celery

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


@pytest.fixture
def worker_settings(settings, redis_url):
    """Heartbeat every second (stale after 3 s) and an empty broker for this test's worker."""
    redis.Redis.from_url(redis_url).flushdb()
    return settings.model_copy(update={"job_heartbeat_s": 1})


def job_row(sessions, job_id: int) -> Job:
    with sessions() as session:
        return session.get(Job, job_id)


def finished(sessions, job_id: int) -> Job | None:
    job = job_row(sessions, job_id)
    return job if job.status in FINISHED else None


def model_versions(sessions, job_id: int) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(ModelVersion.version).where(ModelVersion.job_id == job_id)))


def test_a_worker_process_trains_a_job_into_a_model_version(app, db, tiny_vit, sessions, worker_settings):  # noqa: F811
    job_id = create_job(app, db, tiny_vit, steps=8, checkpoint_every=4)
    with celery_worker(worker_settings, queues="cpu,gpu"):
        job = wait_until(lambda: finished(sessions, job_id), timeout_s=120, message="job finished")
    assert job.status == "succeeded", job.error
    assert job.attempts == 1 and job.progress_step == 8
    admin_view = app.state.sessionmaker()
    try:
        model = admin_view.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
        assert model.version == 1 and model.stage == "candidate"
        assert {"mcc", "f1", "auroc", "ece", "slices"} <= set(model.metrics)
    finally:
        admin_view.close()


def test_cancelling_a_running_job_stops_it_within_seconds(app, db, tiny_vit, sessions, worker_settings):  # noqa: F811
    job_id = create_job(app, db, tiny_vit, steps=20000, checkpoint_every=10000, eval_every=10000)
    from tests.utils.labeled_data import client_as

    admin, _ = client_as(app, db, "admin", "canceller")
    with celery_worker(worker_settings, queues="cpu,gpu") as proc:
        wait_until(
            lambda: job_row(sessions, job_id).progress_step >= 3, timeout_s=90, message="training started"
        )
        assert admin.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
        asked = time.monotonic()
        job = wait_until(lambda: finished(sessions, job_id), timeout_s=30, message="job cancelled")
        stopped_after = time.monotonic() - asked
        assert proc.poll() is None  # stopped by the flag, not by killing the worker
    assert job.status == "cancelled" and stopped_after < 5.0
    assert job.progress_step < 20000 and model_versions(sessions, job_id) == []


def test_a_job_whose_worker_was_sigkilled_resumes_from_its_checkpoint_on_a_new_worker(
    app,
    db,
    tiny_vit,  # noqa: F811
    sessions,
    worker_settings,
):
    job_id = create_job(app, db, tiny_vit, steps=300, checkpoint_every=5, eval_every=100)
    with celery_worker(worker_settings, queues="cpu,gpu") as first:
        wait_until(
            lambda: job_row(sessions, job_id).progress_step >= 12, timeout_s=90, message="past a checkpoint"
        )
        kill_worker(first)
    killed_at = job_row(sessions, job_id)
    assert killed_at.status == "running" and killed_at.attempts == 1 and killed_at.progress_step < 300
    celery = make_celery(worker_settings)
    with celery_worker(worker_settings, queues="cpu,gpu"):

        def taken_over() -> bool:
            celery.send_task("hardcase.reap_jobs", queue="cpu")  # what beat sends every 30 s
            return job_row(sessions, job_id).attempts == 2

        wait_until(taken_over, timeout_s=60, interval_s=1.0, message="reaper re-sent the job")
        job = wait_until(lambda: finished(sessions, job_id), timeout_s=120, message="job finished")
    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and job.progress_step == 300
    # resumed right after a checkpoint (every 5 steps) at or beyond what the row showed at the kill, not at 0
    assert job.attempt_first_step > killed_at.progress_step - 5 and (job.attempt_first_step - 1) % 5 == 0
    assert "resumed from checkpoint" in job.log_tail
    assert model_versions(sessions, job_id) == [1]
