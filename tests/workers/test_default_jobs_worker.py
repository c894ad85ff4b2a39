"""Every job kind the form offers, with its DEFAULT base model, trains to a registry version through a real
Celery worker on a machine without a model hub; a classifier then warm-starts from the production model."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.jobs.models import Job
from app.registry.models import ModelVersion
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training_worker import finished, worker_settings  # noqa: F401 - fixture
from tests.workers.test_vlm_and_yolo_jobs_worker import VLM_TRAINING, add_human_boxes, submit

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

# Sizes only (steps, batch, pixels): the base model is each kind's default.
SMALL_IMAGE_JOB = {"max_steps": 2, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2, "device": "cpu"}
SMALL = {
    "classifier_lora": SMALL_IMAGE_JOB,
    "distill": SMALL_IMAGE_JOB,
    "pretrain": {"max_steps": 2, "batch_size": 8, "device": "cpu"},
    "yolo": {"image_size": 64, "epochs": 1, "batch": 8, "device": "cpu"},
    "vlm_sft": {**VLM_TRAINING, "max_steps": 1},
    "vlm_dpo": {**VLM_TRAINING, "max_steps": 1, "vlm_model_name": "vlm"},
    "vlm_distill": {**VLM_TRAINING, "max_steps": 1},  # the default teacher is the builtin tiny VLM too
}


def model_of(sessions, job_id: int) -> ModelVersion:
    with sessions() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))


def test_every_kind_trains_from_its_default_base_and_a_classifier_warm_starts_from_production(
    app,
    db,
    sessions,
    worker_settings,  # noqa: F811
):
    project = make_project(db, "roadwork", box_classes=["cone", "barrier", "sign"])
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 32)
    assert add_human_boxes(db, items) >= 8
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201
    kinds = {k["name"] for k in admin.get("/api/v1/jobs/kinds").json()}
    assert kinds == set(SMALL), f"give every job kind small sizes in SMALL: {sorted(kinds - set(SMALL))}"
    jobs = {kind: submit(admin, kind, None, SMALL[kind]) for kind in sorted(kinds)}

    with celery_worker(worker_settings, queues="cpu,gpu"):
        done = {
            kind: wait_until(lambda j=job_id: finished(sessions, j), timeout_s=300, message=f"{kind} job")
            for kind, job_id in jobs.items()
        }
        for kind, job in done.items():
            assert job.status == "succeeded", f"{kind}: {job.error}"
        classifier = model_of(sessions, jobs["classifier_lora"])
        promote = {"force": True, "reason": "test holdout is small"}
        assert admin.post(
            f"/api/v1/projects/roadwork/models/{classifier.version}/promote", json=promote
        ).is_success
        choices = admin.get("/api/v1/projects/roadwork/base-models?kind=classifier_lora").json()
        assert {f"registry:v{classifier.version}", "registry:production"} <= {c["name"] for c in choices}
        warm_id = submit(admin, "classifier_lora", "registry:production", SMALL_IMAGE_JOB)
        warm = wait_until(lambda: finished(sessions, warm_id), timeout_s=180, message="warm start")
    assert warm.status == "succeeded", warm.error

    with sessions() as session:
        configs = {session.get(Job, m.job_id).kind: m for m in session.scalars(select(ModelVersion))}
    assert set(configs) == set(SMALL)
    assert classifier.name == "roadwork-classifier_lora-full"  # random-init builtin: full fine-tune
    warm_model = model_of(sessions, warm_id)
    assert warm_model.name == "roadwork-classifier_lora-lora-warm-start"
    card = (artifact_dir_of(worker_settings, warm_id) / "README.md").read_text()
    assert f"warm start from roadwork-classifier_lora-full v{classifier.version}" in card
    assert "LoRA r=8 alpha=16 of a registry model (warm start)" in card


def artifact_dir_of(settings, job_id: int):
    return settings.jobs_dir / str(job_id) / "artifacts"
