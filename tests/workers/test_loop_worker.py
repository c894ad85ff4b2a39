# ruff: noqa: F811 - pytest fixtures imported from the training tests are redefined as parameters
"""Loop runs through a REAL Celery worker with a tiny ViT: labels arrive and the beat sweep starts a run by
itself that freezes, trains and promotes a better model; a model trained on flipped labels is rejected with its
reason; a worker SIGKILLed mid-run is replaced and the run finishes exactly once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.datasets.models import DatasetVersion
from app.ingest.models import Prediction
from app.jobs.models import Job
from app.loop.models import ACTIVE, LoopRun
from app.registry.models import ModelVersion, StageChange
from app.webhooks.models import WebhookDelivery
from tests.utils.factories import b64, item, make_key, make_project, png_bytes
from tests.utils.labeled_data import client_as, seed_labeled_items
from tests.utils.loop import fix_holdout, policy_body, seed_production
from tests.utils.worker import celery_worker, kill_worker, wait_until
from tests.workers.test_training import tiny_config, tiny_vit  # noqa: F401 - the tiny model fixture
from tests.workers.test_training_worker import worker_settings  # noqa: F401 - fixture
from workers.celery_app import make_celery
from workers.loop import PRODUCTION_COLUMN

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

API = "/api/v1/projects/roadwork"


def loop_project(app, db, tiny_vit, tmp_path, production_scores, steps: int = 6):
    """50 labeled photos (30 of them the holdout), version 1 frozen, a stand-in production model scored with
    `production_scores`, an automatic policy, then 10 new labels (returned)."""
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 50)
    fix_holdout(db, project, items, 30, night=0)
    assert admin.post(f"{API}/datasets", json={}).status_code == 201
    seed_production(db, app.state.settings, project, production_scores, tmp_path)
    assert admin.post(f"{API}/webhooks", json={"url": "https://hooks.example/x"}).status_code == 201
    job = {
        "kind": "classifier_lora",
        "base_model": str(tiny_vit),
        "config": tiny_config(steps, checkpoint_every=5),
    }
    body = policy_body(new_labels=10, jobs=[job], min_holdout_items=20, slice_keys=[])
    assert admin.put(f"{API}/policy", json=body).status_code == 200, admin.get(f"{API}/policy").text
    return admin, seed_labeled_items(db, app.state.blobs, project, annotator, 10, start_index=50, seed=3)


def decided(sessions) -> LoopRun | None:
    with sessions() as session:
        run = session.scalar(select(LoopRun).order_by(LoopRun.id.desc()))
        return run if run is not None and run.state not in ACTIVE else None


def sweep_until_decided(settings, sessions, timeout_s: float = 240) -> LoopRun:
    celery = make_celery(settings)

    def done():
        celery.send_task("hardcase.reap_jobs", queue="cpu")  # what beat sends every 30 s
        celery.send_task("hardcase.loop_sweep", queue="cpu")
        return decided(sessions)

    return wait_until(done, timeout_s=timeout_s, interval_s=2.0, message="loop run decided")


def count(sessions, query) -> int:
    with sessions() as session:
        return session.scalar(query)


def test_new_labels_start_a_run_by_itself_that_promotes_a_better_model(
    app,
    db,
    tiny_vit,
    sessions,
    worker_settings,
    tmp_path,
):
    # production is wrong on every holdout item: a freshly trained model beats it with confidence
    admin, _ = loop_project(app, db, tiny_vit, tmp_path, lambda i, truth, night: 1.0 - truth)
    unlabeled = [
        item(f"pool-{n}", image={"base64": b64(png_bytes(color=(40 * n, 90, 200)))}) for n in range(4)
    ]
    ingest = TestClient(app, headers={"X-API-Key": make_key(db)})
    assert ingest.post(f"{API}/predictions", json={"items": unlabeled}).status_code == 201
    with celery_worker(worker_settings, queues="cpu,gpu"):
        run = sweep_until_decided(worker_settings, sessions)
        # the queue follows the new model: the pending pool scored by it (one ranking column), then re-ranked
        own = select(func.count()).select_from(Prediction).where(Prediction.model == PRODUCTION_COLUMN)
        wait_until(lambda: count(sessions, own) == 4, timeout_s=60, message="pool scored by the new model")
    assert run.trigger == "labels" and run.state == "promoted", run.reason
    assert [e["event"] for e in run.timeline] == ["triggered", "dataset", "jobs", "evaluated", "promoted"]
    assert run.figures["candidates"][0]["vs_production"]["ci_low"] > 0
    production = admin.get(f"{API}/models/production").json()
    assert production["version"] == 2 and production["version"] == run.figures["chosen"]
    assert (
        count(
            sessions,
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.event == "model.promoted"),
        )
        == 1
    )
    assert admin.post(f"{API}/models/rollback", json={}).json()["version"] == 1  # reversible in one call


def test_a_model_trained_on_flipped_labels_is_rejected_with_its_reason(
    app,
    db,
    tiny_vit,
    sessions,
    worker_settings,
    tmp_path,
):
    admin, new = loop_project(app, db, tiny_vit, tmp_path, lambda i, truth, night: float(truth))
    flip_labels(db, new)
    with celery_worker(worker_settings, queues="cpu,gpu"):
        run = sweep_until_decided(worker_settings, sessions)
    assert run.state == "rejected" and "not better than production v1 with confidence" in run.reason, (
        run.reason
    )
    assert admin.get(f"{API}/models/production").json()["version"] == 1


def flip_labels(db, items) -> None:
    from app.labels.models import Annotation

    for annotation in db.scalars(select(Annotation).where(Annotation.item_id.in_([it.id for it in items]))):
        annotation.label = 1 - annotation.label
    db.commit()


def test_a_run_whose_worker_was_sigkilled_mid_training_finishes_exactly_once(
    app,
    db,
    tiny_vit,
    sessions,
    worker_settings,
    tmp_path,
):
    loop_project(app, db, tiny_vit, tmp_path, lambda i, truth, night: 1.0 - truth, steps=60)
    celery = make_celery(worker_settings)
    with celery_worker(worker_settings, queues="cpu,gpu") as first:
        celery.send_task("hardcase.loop_sweep", queue="cpu")

        def training() -> bool:
            with sessions() as session:
                job = session.scalar(select(Job).order_by(Job.id.desc()))
                return job is not None and job.progress_step >= 12

        wait_until(training, timeout_s=120, message="the run's job past a checkpoint")
        kill_worker(first)
    with celery_worker(worker_settings, queues="cpu,gpu"):
        run = sweep_until_decided(worker_settings, sessions)
    assert run.state == "promoted", run.reason
    assert count(sessions, select(func.count()).select_from(LoopRun)) == 1
    assert count(sessions, select(func.count()).select_from(DatasetVersion)) == 2  # v1 by hand, v2 by the run
    [job_id] = run.job_ids
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "succeeded" and job.attempts == 2
        assert (
            session.scalar(
                select(func.count()).select_from(ModelVersion).where(ModelVersion.job_id == job_id)
            )
            == 1
        )
        promotions = session.scalars(select(StageChange.note).where(StageChange.action == "promote")).all()
    assert sorted(promotions) == ["", f"loop run {run.id}"]
    assert [e["event"] for e in run.timeline].count("dataset") == 1
