"""The job catalogue, the form and submission offer only what the live workers can run: kinds whose packages a
worker lacks (or that need a GPU none has) are shown unavailable with the reason and refused with 422; with no
live worker, or only stale ones, nothing is refused."""

from __future__ import annotations

from datetime import timedelta

from app.core.db import utcnow
from app.jobs import capabilities
from app.jobs.models import WorkerCapability
from ml.training.capabilities import KIND_REQUIREMENTS, kind_support
from ml.training.kinds import JOB_KINDS
from tests.api.test_jobs import JOBS, first_error, project_with_dataset

NO_YOLO = "needs ultralytics (pip install 'hardcase[train]')"


def advertise(db, worker_id: str, *, queues=("cpu", "gpu"), missing: dict[str, str] | None = None, gpu=False):
    kinds = {kind: (missing or {}).get(kind) for kind in JOB_KINDS}
    capabilities.advertise(db_session=db, worker_id=worker_id, queues=list(queues), kinds=kinds, gpu=gpu)
    db.commit()


def kinds_by_name(client) -> dict[str, dict]:
    return {k["name"]: k for k in client.get("/api/v1/jobs/kinds").json()}


def test_with_no_live_worker_every_kind_is_offered_with_a_note(app, db):
    """No worker has advertised (or only a stale one): nothing is refused, the catalogue says jobs will wait."""
    _, admin = project_with_dataset(app, db)
    advertise(db, "old@host", missing={"yolo": NO_YOLO})
    db.get(WorkerCapability, "old@host").seen_at = utcnow() - timedelta(hours=1)
    db.commit()
    kinds = kinds_by_name(admin)
    assert all(k["available"] for k in kinds.values())
    assert kinds["yolo"]["availability_note"] == capabilities.NO_LIVE_WORKER
    body = {"kind": "yolo", "dataset_version": 1, "config": {"epochs": 1}}
    assert admin.post(JOBS, json=body).status_code == 201


def test_a_kind_no_live_worker_can_run_is_hidden_shown_disabled_and_refused(app, db):
    """One live worker without ultralytics: yolo is unavailable in the catalogue, the base-model list and the
    form (with the reason), and its submission is a 422 naming the kind and the missing package."""
    _, admin = project_with_dataset(app, db)
    advertise(db, "w1@host", missing={"yolo": NO_YOLO})
    kinds = kinds_by_name(admin)
    assert not kinds["yolo"]["available"] and "ultralytics" in kinds["yolo"]["availability_note"]
    assert kinds["distill"]["available"] and kinds["distill"]["availability_note"] is None

    bases = {b["name"]: b for b in admin.get("/api/v1/base-models?kind=yolo").json()}
    assert (
        bases["yolov8n.yaml"]["kinds"] == []
        and "ultralytics" in bases["yolov8n.yaml"]["unavailable_kinds"]["yolo"]
    )

    refused = admin.post(JOBS, json={"kind": "yolo", "dataset_version": 1, "config": {"epochs": 1}})
    assert refused.status_code == 422 and first_error(refused) == "kind"
    assert "w1@host: needs ultralytics" in refused.text
    accepted = admin.post(JOBS, json={"kind": "distill", "dataset_version": 1, "config": {"max_steps": 1}})
    assert accepted.status_code == 201, accepted.text

    page = admin.get("/projects/roadwork/jobs").text
    assert '<option value="yolo" disabled>' in page and "needs ultralytics" in page
    assert '<option value="classifier_lora" selected>' in page

    advertise(db, "w2@host")  # a second worker that has everything: yolo is back
    assert kinds_by_name(admin)["yolo"]["available"]


def test_a_job_asking_for_cuda_is_refused_when_no_live_worker_has_a_gpu(app, db):
    """device='cuda' needs a worker with a GPU; the 422 names config.device and the way out."""
    _, admin = project_with_dataset(app, db)
    advertise(db, "cpu-only@host")
    body = {"kind": "distill", "dataset_version": 1, "config": {"max_steps": 1, "device": "cuda"}}
    refused = admin.post(JOBS, json=body)
    assert refused.status_code == 422 and first_error(refused) == "config.device"
    assert "has no GPU" in refused.text
    advertise(db, "gpu@host", gpu=True)
    assert admin.post(JOBS, json=body).status_code == 201


def test_a_worker_that_does_not_consume_the_kinds_queue_cannot_run_it(app, db):
    """Training kinds go to the gpu queue: a worker on the cpu queue only cannot run them."""
    _, admin = project_with_dataset(app, db)
    advertise(db, "cpu-queue@host", queues=("cpu",))
    kinds = kinds_by_name(admin)
    assert not kinds["distill"]["available"] and "'gpu' queue" in kinds["distill"]["availability_note"]


def test_this_python_reports_missing_packages_by_name():
    """kind_support is None for kinds whose packages import here (the test environment has [train]; a kind not
    listed needs torch only) and names what is missing otherwise."""
    support = kind_support([*JOB_KINDS, "pretend"])
    assert support["distill"] is None and support["pretend"] is None
    KIND_REQUIREMENTS["needs-missing"] = ("torch", "no_such_package_hc")
    try:
        assert kind_support(["needs-missing"])["needs-missing"].startswith("needs no_such_package_hc")
    finally:
        del KIND_REQUIREMENTS["needs-missing"]
