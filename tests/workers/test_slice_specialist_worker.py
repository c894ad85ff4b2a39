"""A night-slice specialist through a REAL Celery worker: a generalist and a specialist (trained only on night
items, with the gamma illumination step) reach the registry, the specialist is routed the night slice, and the
client's predictor sends night items to it and the rest to the generalist, reproducing the registry's scores."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, update

from app.client import HardcaseClient, RoutedPredictor
from app.core.blobs import sha_from_uri
from app.datasets.service import item_metadata
from app.ingest.models import Item
from app.registry.models import HoldoutScore, ModelVersion
from tests.api.test_production_predictor import TINY_DISTILL, AppTransport
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as, seed_labeled_items
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training_worker import finished, worker_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

NIGHT = {"key": "is_night", "value": True}
# classifier_lora on its default base (builtin ViT, 64 px), a few steps: the slice and the illumination are under test
SPECIALIST = {
    "max_steps": 4,
    "batch_size": 8,
    "eval_every": 4,
    "checkpoint_every": 4,
    "device": "cpu",
    "threshold_grid": 200,
    "illumination": "gamma",
}


def submit(admin, kind: str, dataset_version: int, config: dict) -> int:
    response = admin.post(
        "/api/v1/projects/roadwork/jobs",
        json={"kind": kind, "dataset_version": dataset_version, "config": config},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def model_of(sessions, job_id: int) -> ModelVersion:
    with sessions() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))


def stored_holdout(sessions, model: ModelVersion) -> dict[int, float]:
    with sessions() as session:
        rows = session.execute(
            select(HoldoutScore.item_id, HoldoutScore.score).where(HoldoutScore.model_version_id == model.id)
        )
        return dict(rows.all())


def test_a_night_specialist_trained_by_a_worker_is_routed_the_night_slice_and_the_client_follows_the_route(
    app,
    db,
    sessions,
    worker_settings,  # noqa: F811
    tmp_path,
):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 48)
    db.execute(update(Item).where(Item.project_id == project.id).values(is_night=False))
    db.execute(update(Item).where(Item.id.in_([it.id for it in items[::2]])).values(is_night=True))
    db.commit()
    assert admin.post("/api/v1/projects/roadwork/datasets", json={"holdout_fraction": 0.4}).status_code == 201
    frozen = admin.post("/api/v1/projects/roadwork/datasets", json={"slice": NIGHT})
    assert frozen.status_code == 201 and frozen.json()["filters"]["slice"] == NIGHT
    generalist_job = submit(admin, "distill", 1, TINY_DISTILL)
    specialist_job = submit(admin, "classifier_lora", 2, SPECIALIST)

    with celery_worker(worker_settings, queues="cpu,gpu"):
        for job_id in (generalist_job, specialist_job):
            job = wait_until(lambda j=job_id: finished(sessions, j), timeout_s=300, message=f"job {job_id}")
            assert job.status == "succeeded", job.error

    generalist, specialist = model_of(sessions, generalist_job), model_of(sessions, specialist_job)
    assert specialist.metrics["slice"]["label"] == "is_night = true"
    assert specialist.metrics["slice"]["vs_production"] is None  # nothing was in production yet
    force = {"force": True, "reason": "the test holdout is tiny"}
    models = "/api/v1/projects/roadwork/models"
    assert admin.post(f"{models}/{generalist.version}/promote", json=force).status_code == 200
    row = admin.get(f"{models}/{specialist.version}").json()
    assert row["slice"] == NIGHT and row["slice_vs_production"]["n"] > 0
    promoted = admin.post(f"{models}/{specialist.version}/promote", json=force)
    assert promoted.status_code == 200 and promoted.json()["serves_slice"], promoted.text

    key = make_key(db, scopes=["models"], project_id=project.id)
    with HardcaseClient(
        "http://testserver", api_key=key, project="roadwork", transport=AppTransport(app)
    ) as client:
        info = client.production_info()
        assert info["version"] == generalist.version
        assert [(r["slice"], r["version"]) for r in info["routes"]] == [(NIGHT, specialist.version)]
        predictor = client.production_model(cache_dir=tmp_path / "cache")
    assert isinstance(predictor, RoutedPredictor)
    assert predictor.routes[0][1].config["illumination"] == "gamma"
    assert predictor.default.config["illumination"] == "none"

    with sessions() as session:
        holdout = list(session.scalars(select(Item).where(Item.id.in_(stored_holdout(sessions, generalist)))))
        paths = [str(app.state.blobs.path_for(sha_from_uri(item.image_uri))) for item in holdout]
        metadata = [item_metadata(item) for item in holdout]
    general, special = stored_holdout(sessions, generalist), stored_holdout(sessions, specialist)
    expected = [
        special[it.id] if meta["is_night"] else general[it.id]
        for it, meta in zip(holdout, metadata, strict=True)
    ]
    assert {m["is_night"] for m in metadata} == {True, False}
    np.testing.assert_allclose(predictor.scores(paths, metadata), expected, atol=1e-4)
