"""A multiclass project end to end through a REAL Celery worker: classifier_lora and distill (with its
defaults) train on three classes, the registry measures them at the argmax with per-class figures and compares
them, and the promoted model's onnxruntime predictor returns the class probabilities the registry stored."""

from __future__ import annotations

import numpy as np
import pytest

from app.client import HardcaseClient
from app.core.blobs import blob_uri
from app.ingest.models import Item, Prediction
from app.labels.models import Annotation
from ml.sample_data import roadwork_pool
from tests.api.test_production_predictor import AppTransport
from tests.ml.conftest import MULTICLASS, multiclass_class_of
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as, stored_holdout
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_default_jobs_worker import SMALL_IMAGE_JOB, model_of
from tests.workers.test_training_worker import finished, worker_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
PER_CLASS = 14


def seed_multiclass_items(db, blobs, project, annotator) -> list[Item]:
    """PER_CLASS real photos of each class, two cascade models' class probabilities, one human label each."""
    rng = np.random.default_rng(3)
    pool, _ = roadwork_pool()
    items = []
    for k in range(len(MULTICLASS)):
        photos = [p for p in pool if multiclass_class_of(p) == k][:PER_CLASS]
        for photo in photos:
            index = len(items)
            item = Item(
                project_id=project.id,
                external_id=f"photo-{index}",
                image_uri=blob_uri(blobs.put(photo["image"].read_bytes())),
                camera_id=f"cam-{index % 3}",
                is_night=bool(photo["is_night"]),
            )
            db.add(item)
            db.flush()
            for model, skill in (("vlm", 2.0), ("clf", 1.0)):
                logits = rng.normal(0.0, 1.0, len(MULTICLASS))
                logits[k] += skill
                probs = (np.exp(logits) / np.exp(logits).sum()).tolist()
                db.add(
                    Prediction(
                        item_id=item.id, project_id=project.id, model=model, model_version="1", probs=probs
                    )
                )
            db.add(Annotation(item_id=item.id, project_id=project.id, annotator_id=annotator.id, label=k))
            items.append(item)
    db.commit()
    return items


def test_a_multiclass_project_trains_compares_and_serves_class_probabilities(
    app,
    db,
    sessions,
    tmp_path,
    worker_settings,  # noqa: F811
):
    project = make_project(db, "kinds", kind="multiclass", classes=list(MULTICLASS))
    admin, annotator = client_as(app, db, "admin")
    seed_multiclass_items(db, app.state.blobs, project, annotator)
    assert admin.post("/api/v1/projects/kinds/datasets", json={}).status_code == 201
    jobs = {}
    for kind in ("distill", "classifier_lora"):
        body = {"kind": kind, "dataset_version": 1, "config": SMALL_IMAGE_JOB}
        response = admin.post("/api/v1/projects/kinds/jobs", json=body)
        assert response.status_code == 201, response.text
        jobs[kind] = response.json()["id"]

    with celery_worker(worker_settings, queues="cpu,gpu"):
        for kind, job_id in jobs.items():
            job = wait_until(lambda j=job_id: finished(sessions, j), timeout_s=240, message=f"{kind} job")
            assert job.status == "succeeded", f"{kind}: {job.error}"

    distill = model_of(sessions, jobs["distill"])
    assert distill.threshold == 0.0 and distill.metrics["decision"] == "argmax"
    assert set(distill.metrics["per_class"]) == set(MULTICLASS)
    assert (
        distill.metrics["mcc_ci"]["ci_low"] <= distill.metrics["mcc"] <= distill.metrics["mcc_ci"]["ci_high"]
    )
    promote = {"force": True, "reason": "test holdout is small"}
    assert admin.post(f"/api/v1/projects/kinds/models/{distill.version}/promote", json=promote).is_success
    rows = {r["version"]: r for r in admin.get("/api/v1/projects/kinds/models").json()}
    classifier = model_of(sessions, jobs["classifier_lora"])
    versus = rows[classifier.version]["vs_production"]
    assert versus["n"] == distill.metrics["n"] and versus["production_version"] == distill.version
    assert versus["ci_low"] <= versus["mean"] <= versus["ci_high"]
    page = admin.get(f"/projects/kinds/models?version={distill.version}").text
    assert "data-per-class" in page and "dashcam_roadwork" in page and ">argmax<" in page

    stored = stored_holdout(sessions, app.state.blobs, distill.id, column="probs")
    paths = [path for path, _ in stored]
    key = make_key(db, scopes=["models"])
    with HardcaseClient(
        "http://hardcase", api_key=key, project="kinds", transport=AppTransport(app)
    ) as client:
        predictor = client.production_model(cache_dir=tmp_path / "cache")
    assert predictor.classes == list(MULTICLASS) and predictor.threshold is None
    probs = predictor.scores(paths)
    np.testing.assert_allclose(probs, [p for _, p in stored], atol=1e-4)
    assert predictor.predict(paths) == [MULTICLASS[k] for k in np.argmax(probs, axis=1)]
