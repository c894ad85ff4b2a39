"""Model registry: holdout metrics computed by the registry, comparisons on the same items, promote/rollback."""

from __future__ import annotations

import hashlib

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.datasets.models import DatasetItem
from app.jobs.models import Job
from app.registry import service
from app.registry.models import HoldoutScore
from ml.evaluation import binary_metrics
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

MODELS = "/api/v1/projects/roadwork/models"


def setup_registry(app, db, min_holdout_items: int = 0):
    """A project with a frozen dataset; the promotion gate's holdout minimum is off unless a test sets it."""
    app.state.settings = app.state.settings.model_copy(update={"min_holdout_items": min_holdout_items})
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, user, 24)
    assert admin.post("/api/v1/projects/roadwork/datasets", json={"holdout_fraction": 0.5}).status_code == 201
    holdout = dict(
        db.execute(select(DatasetItem.item_id, DatasetItem.label).where(DatasetItem.split == "holdout")).all()
    )
    return project, admin, holdout


def register(app, db, project, holdout: dict[int, int], tmp_path, *, skill: float, seed: int, slice_keys=()):
    """A finished job whose model scores the holdout with the given skill, registered like the worker does."""
    job = Job(
        project_id=project.id,
        kind="distill",
        dataset_version_id=1,
        config={},
        status="succeeded",
        slice_keys=list(slice_keys),
    )
    db.add(job)
    db.flush()
    artifacts = tmp_path / f"job-{job.id}" / "artifacts"
    (artifacts / "merged").mkdir(parents=True)
    (artifacts / "merged" / "model.safetensors").write_bytes(np.random.default_rng(seed).bytes(2048))
    (artifacts / "threshold.json").write_text('{"threshold": 0.5}')
    (artifacts / "README.md").write_text("# roadwork-distill\n\n- **Method**: distill\n")
    rng = np.random.default_rng(seed)
    scores = {
        i: float(np.clip(label * skill + rng.normal(0.5 - skill / 2, 0.2), 0, 1))
        for i, label in holdout.items()
    }
    model = service.register_model_version(
        db_session=db,
        job=job,
        project=project,
        artifact_dir=artifacts,
        threshold=0.5,
        holdout_scores=scores,
        training_metrics={"val_mcc": 0.5, "auroc": float("nan")},
        files={"model": "merged"},
        settings=app.state.settings,
    )
    db.commit()
    return model, scores


def test_registration_measures_the_model_on_the_holdout_with_ml_evaluation(app, db, tmp_path):
    project, admin, holdout = setup_registry(app, db)
    model, scores = register(app, db, project, holdout, tmp_path, skill=0.6, seed=1, slice_keys=["road"])
    ids = sorted(holdout)
    expected = binary_metrics([scores[i] for i in ids], [holdout[i] for i in ids], 0.5)
    assert model.version == 1 and model.stage == "candidate" and model.name == "roadwork-distill"
    assert model.metrics["mcc"] == expected["mcc"] and model.metrics["n"] == len(holdout)
    assert {"accuracy", "precision", "recall", "f1", "auroc", "auprc", "ece", "reliability"} <= set(
        model.metrics
    )
    assert set(model.metrics["slices"]) == {"is_night", "camera_id", "road"}
    assert set(model.metrics["slices"]["camera_id"]) <= {"cam-a", "cam-b", "cam-c"}
    assert model.training_metrics["auroc"] is None  # NaN is stored as null (JSONB rejects NaN)
    stored = db.scalars(select(HoldoutScore).where(HoldoutScore.model_version_id == model.id)).all()
    assert {s.item_id: s.score for s in stored} == scores
    row = admin.get(MODELS).json()[0]
    assert row["version"] == 1 and row["dataset_version"] == 1 and row["vs_production"] is None


def test_a_second_model_is_compared_to_production_with_a_paired_bootstrap(app, db, tmp_path):
    project, admin, holdout = setup_registry(app, db)
    register(app, db, project, holdout, tmp_path, skill=0.2, seed=2)
    assert admin.post(f"{MODELS}/1/promote", json={"note": "first"}).status_code == 200
    better, _ = register(app, db, project, holdout, tmp_path, skill=0.8, seed=3)
    versus = better.metrics["vs_production"]
    assert better.metrics["vs_production_version"] == 1 and versus["n"] == len(holdout)
    assert (
        versus["ci_low"] <= versus["mean"] <= versus["ci_high"] and versus["mcc"] > versus["production_mcc"]
    )
    table = {r["version"]: r for r in admin.get(MODELS).json()}
    assert table[1]["stage"] == "production" and table[1]["vs_production"] is None
    assert table[2]["vs_production"]["production_version"] == 1
    assert table[2]["vs_production"]["mean"] == versus["mean"]


def test_the_downloaded_card_names_the_registry_version(app, db, tmp_path):
    import zipfile

    project, _, holdout = setup_registry(app, db)
    register(app, db, project, holdout, tmp_path, skill=0.5, seed=1)
    second, _ = register(app, db, project, holdout, tmp_path, skill=0.6, seed=2)
    with zipfile.ZipFile(second.artifact_archive) as archive:
        card = archive.read("artifacts/README.md").decode()
    assert second.version == 2
    assert card.splitlines()[2] == "- **Registry**: project `roadwork`, model version v2"
    assert "v1" not in card


def test_promotion_archives_the_previous_model_and_rollback_restores_it(app, db, tmp_path):
    project, admin, holdout = setup_registry(app, db)
    for seed in (1, 2, 3):
        register(app, db, project, holdout, tmp_path, skill=0.5, seed=seed)
    assert admin.post(f"{MODELS}/rollback").status_code == 409
    admin.post(f"{MODELS}/1/promote")
    admin.post(f"{MODELS}/2/promote")
    stages = {r["version"]: r["stage"] for r in admin.get(MODELS).json()}
    assert stages == {1: "archived", 2: "production", 3: "candidate"}
    assert admin.post(f"{MODELS}/2/promote").status_code == 409
    restored = admin.post(f"{MODELS}/rollback", json={"note": "v2 misses night cones"})
    assert restored.status_code == 200 and restored.json()["version"] == 1
    stages = {r["version"]: r["stage"] for r in admin.get(MODELS).json()}
    assert stages == {1: "production", 2: "archived", 3: "candidate"}
    assert admin.post(f"{MODELS}/3/rollback").status_code == 409  # never served: promote it instead
    assert admin.post(f"{MODELS}/2/rollback").json()["stage"] == "production"
    history = admin.get(f"{MODELS}/history").json()
    assert [(h["version"], h["action"]) for h in history[:2]] == [(2, "rollback"), (1, "archive")]
    assert history[-1]["action"] == "promote" and history[-1]["user_id"] is not None
    assert any(h["note"] == "v2 misses night cones" for h in history)


def test_only_admins_promote(app, db, tmp_path):
    project, _, holdout = setup_registry(app, db)
    register(app, db, project, holdout, tmp_path, skill=0.5, seed=1)
    reviewer, _ = client_as(app, db, "reviewer", "rev", project=project)
    assert reviewer.post(f"{MODELS}/1/promote").status_code == 403
    assert reviewer.post(f"{MODELS}/rollback").status_code == 403


def test_the_cascade_pulls_production_and_its_artifact_with_a_models_key(app, db, tmp_path):
    project, admin, holdout = setup_registry(app, db)
    client = TestClient(app)
    models_key = make_key(db, scopes=["models"])
    read_key = make_key(db, scopes=["read"])
    assert client.get(f"{MODELS}/production", headers={"X-API-Key": models_key}).status_code == 404
    model, _ = register(app, db, project, holdout, tmp_path, skill=0.5, seed=1)
    admin.post(f"{MODELS}/1/promote")
    assert client.get(f"{MODELS}/production").status_code == 401
    assert client.get(f"{MODELS}/production", headers={"X-API-Key": read_key}).status_code == 403
    production = client.get(f"{MODELS}/production", headers={"X-API-Key": models_key}).json()
    assert production["version"] == 1 and production["threshold"] == 0.5
    assert production["metrics"]["mcc"] == model.metrics["mcc"]
    artifact = client.get(production["artifact_url"], headers={"X-API-Key": models_key})
    assert artifact.status_code == 200 and artifact.headers["content-type"] == "application/zip"
    assert hashlib.sha256(artifact.content).hexdigest() == production["artifact_sha256"]
    assert artifact.headers["x-artifact-sha256"] == production["artifact_sha256"]
    assert admin.get(f"{MODELS}/production").json()["version"] == 1
    assert admin.get(f"{MODELS}/7").status_code == 404


def test_each_model_reports_its_holdout_mcc_with_a_bootstrap_interval(app, db, tmp_path):
    project, admin, holdout = setup_registry(app, db)
    model, _ = register(app, db, project, holdout, tmp_path, skill=0.25, seed=1)
    row = admin.get(f"{MODELS}/1").json()
    ci = row["mcc_ci"]
    assert ci["n"] == len(holdout) and ci["ci_low"] <= row["metrics"]["mcc"] <= ci["ci_high"]
    assert ci["ci_high"] - ci["ci_low"] > 0.1  # a dozen holdout items cannot pin an MCC down
    assert model.metrics["mcc_ci"] == ci


def test_promotion_on_a_too_small_holdout_is_refused_unless_an_admin_forces_it_with_a_reason(
    app, db, tmp_path
):
    project, admin, holdout = setup_registry(app, db, min_holdout_items=30)
    register(app, db, project, holdout, tmp_path, skill=0.8, seed=1)
    refused = admin.post(f"{MODELS}/1/promote")
    assert refused.status_code == 409, refused.text
    error = refused.json()["errors"][0]
    assert error["field"] == "gate" and f"{len(holdout)} items, fewer than the 30" in error["message"]
    assert admin.get(MODELS).json()[0]["gate"] and admin.get(MODELS).json()[0]["stage"] == "candidate"
    no_reason = admin.post(f"{MODELS}/1/promote", json={"force": True, "reason": "  "})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    forced = admin.post(
        f"{MODELS}/1/promote", json={"force": True, "reason": "first model, pilot cameras only"}
    )
    assert forced.status_code == 200 and forced.json()["stage"] == "production"
    entry = admin.get(f"{MODELS}/history").json()[0]
    assert entry["forced"] and entry["force_reason"] == "first model, pilot cameras only"
    assert entry["gate"]["holdout_n"] == len(holdout) and not entry["gate"]["passed"]


def test_a_model_worse_than_production_with_confidence_is_refused_and_one_within_noise_is_not(
    app, db, tmp_path
):
    project, admin, holdout = setup_registry(app, db)
    register(app, db, project, holdout, tmp_path, skill=0.8, seed=1)
    assert admin.post(f"{MODELS}/1/promote").status_code == 200
    register(app, db, project, holdout, tmp_path, skill=-0.8, seed=2)  # MCC about -1
    register(app, db, project, holdout, tmp_path, skill=0.8, seed=3)  # as good, up to noise
    refused = admin.post(f"{MODELS}/2/promote")
    assert refused.status_code == 409
    assert "worse than production v1 with confidence" in refused.json()["errors"][0]["message"]
    rows = {r["version"]: r for r in admin.get(MODELS).json()}
    assert rows[2]["vs_production"]["ci_high"] < 0 and "worse than production" in rows[2]["gate"][0]
    assert rows[3]["gate"] == [] and rows[3]["vs_production"]["ci_low"] <= 0
    html = admin.get("/projects/roadwork/models").text
    assert "Force promote" in html and "data-mcc-ci" in html
    assert admin.post(f"{MODELS}/3/promote").status_code == 200
    history = admin.get(f"{MODELS}/history").json()
    assert not history[0]["forced"] and history[0]["gate"] is None
