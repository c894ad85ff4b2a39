"""VLM SFT, VLM DPO and YOLO jobs through a REAL Celery worker on real roadwork photos with human boxes:
each ends as a model version in the registry with holdout metrics comparable to the classifiers'."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sqlalchemy import select

from app.core.blobs import sha_from_uri
from app.jobs.models import Job
from app.labels.models import Annotation
from app.registry.models import ModelVersion
from ml.sample_data import roadwork_pool
from ml.training.vlm.tiny import build_tiny_qwen2_vl
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items, stored_holdout
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training_worker import finished, worker_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

VLM_TRAINING = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "learning_rate": 1e-3,
    "lora_r": 4,
    "lora_alpha": 8,
    "logging_steps": 1,
    "save_steps": 1,
    "max_image_pixels": 112 * 112,
    "eval_batch_size": 16,
}
YOLO_TRAINING = {"model": "yolov8n.yaml", "image_size": 64, "epochs": 1, "batch": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("models") / "tiny-qwen2-vl")


def add_human_boxes(db, items) -> int:
    """The annotators also drew the boxes of every positive photo (from the sample data's box files)."""
    boxes_by_sha = {
        hashlib.sha256(p["image"].read_bytes()).hexdigest(): p["boxes"] for p in roadwork_pool()[0]
    }
    annotations = {a.item_id: a for a in db.scalars(select(Annotation))}
    drawn = 0
    for item in items:
        boxes = boxes_by_sha.get(sha_from_uri(item.image_uri))
        if item.meta["truth"] and boxes:
            annotations[item.id].boxes = boxes
            drawn += 1
    db.commit()
    return drawn


def submit(admin, kind: str, base_model: str | None, config: dict) -> int:
    body = {"kind": kind, "dataset_version": 1, "base_model": base_model, "config": config}
    response = admin.post("/api/v1/projects/roadwork/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_vlm_sft_dpo_and_yolo_jobs_train_into_the_registry(
    app,
    db,
    sessions,
    worker_settings,  # noqa: F811
    tiny_vlm,
    tmp_path,
):
    _, box_classes = roadwork_pool()
    project = make_project(db, "roadwork", box_classes=box_classes)
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 32)
    assert add_human_boxes(db, items) >= 8
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201

    jobs = {
        "vlm_sft": submit(admin, "vlm_sft", str(tiny_vlm), VLM_TRAINING),
        "vlm_dpo": submit(admin, "vlm_dpo", str(tiny_vlm), {**VLM_TRAINING, "vlm_model_name": "vlm"}),
        "yolo": submit(admin, "yolo", None, YOLO_TRAINING),
    }
    with celery_worker(worker_settings, queues="cpu,gpu"):
        done = {
            kind: wait_until(lambda j=job_id: finished(sessions, j), timeout_s=240, message=f"{kind} job")
            for kind, job_id in jobs.items()
        }
    for kind, job in done.items():
        assert job.status == "succeeded", f"{kind}: {job.error}"

    with sessions() as session:
        versions = {session.get(Job, m.job_id).kind: m for m in session.scalars(select(ModelVersion))}
    assert set(versions) == {"vlm_sft", "vlm_dpo", "yolo"}
    for kind, model in versions.items():
        assert {"mcc", "auroc", "f1"} <= set(model.metrics), kind
        assert 0.0 <= model.threshold <= 1.0
    yolo_metrics = admin.get("/api/v1/projects/roadwork/models").json()
    assert any("map50" in str(row) for row in yolo_metrics), "the detector's mAP reaches the registry"
    assert_the_promoted_detector_runs_on_onnxruntime(app, db, sessions, versions["yolo"], tmp_path)


def assert_the_promoted_detector_runs_on_onnxruntime(app, db, sessions, model, tmp_path) -> None:
    """The promoted YOLO version's ultralytics ONNX export comes back from production_model() as an
    OnnxDetector whose image scores are close to the registry's stored ones (same weights, PIL letterbox)."""
    from app.client import HardcaseClient, OnnxDetector
    from tests.api.test_production_predictor import AppTransport
    from tests.utils.factories import make_key

    admin, _ = client_as(app, db, "admin", "promoter")
    promote = {"force": True, "reason": "test holdout is small"}
    assert admin.post(f"/api/v1/projects/roadwork/models/{model.version}/promote", json=promote).is_success
    stored = stored_holdout(sessions, app.state.blobs, model.id)
    key = make_key(db, scopes=["models"])
    with HardcaseClient("http://h", api_key=key, project="roadwork", transport=AppTransport(app)) as client:
        detector = client.production_model(cache_dir=tmp_path / "cache")
    assert isinstance(detector, OnnxDetector) and detector.threshold == pytest.approx(model.threshold)
    paths = [path for path, _ in stored]
    assert np.allclose(detector.scores(paths), [score for _, score in stored], atol=0.05)
