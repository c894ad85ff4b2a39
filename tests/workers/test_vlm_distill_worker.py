"""vlm_distill through a REAL Celery worker: a tiny Qwen3-VL teacher (built from a config) answers the pool,
unlabeled items included, a tiny Qwen2-VL student learns its answer distributions and reaches the registry
with holdout metrics and its agreement with the teacher."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from app.datasets.models import DatasetItem
from app.labels.models import Annotation
from app.registry.models import ModelVersion
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training_worker import finished, worker_settings  # noqa: F401 - fixture
from tests.workers.test_vlm_and_yolo_jobs_worker import VLM_TRAINING

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def test_a_distilled_vlm_student_trained_by_a_worker_reaches_the_registry(app, db, sessions, worker_settings):  # noqa: F811
    from ml.training.vlm.tiny import build_tiny_qwen3_vl

    teacher = build_tiny_qwen3_vl(worker_settings.data_dir / "teacher-qwen3-vl", seed=7)
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, annotator, 28)
    datasets = "/api/v1/projects/roadwork/datasets"
    assert admin.post(datasets, json={}).status_code == 201  # fixes the holdout
    train_ids = list(db.scalars(select(DatasetItem.item_id).where(DatasetItem.split == "train")))[:4]
    db.execute(delete(Annotation).where(Annotation.item_id.in_(train_ids)))  # the unlabeled pool
    db.commit()
    frozen = admin.post(datasets, json={"include_unlabeled": True})
    assert frozen.status_code == 201 and frozen.json()["stats"]["classes"]["unlabeled"] == 4

    config = {**VLM_TRAINING, "max_steps": 2, "teacher": str(teacher), "temperature": 2.0, "alpha": 0.5}
    body = {"kind": "vlm_distill", "dataset_version": 2, "config": config}
    response = admin.post("/api/v1/projects/roadwork/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    with celery_worker(worker_settings, queues="cpu,gpu"):
        job = wait_until(lambda: finished(sessions, job_id), timeout_s=300, message="vlm_distill job")
    assert job.status == "succeeded", job.error
    assert "4 without a human answer" in job.log_tail

    with sessions() as session:
        model = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
    assert model.kind == "vlm_distill" and model.name == "roadwork-vlm_distill-lora"
    assert model.metrics["n"] > 0 and -1 <= model.metrics["mcc"] <= 1
    assert 0 <= model.training_metrics["teacher_agreement"] <= 1
    assert {"adapter", "processor"} <= set(model.files)
    row = admin.get(f"/api/v1/projects/roadwork/models/{model.version}").json()
    assert row["kind"] == "vlm_distill" and row["mcc_ci"] is not None
