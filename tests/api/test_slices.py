"""Slice specialists: a dataset version frozen for a metadata slice, the registry's slice gate (the paired
bootstrap against the production generalist on the slice's holdout items), and the routing table the
production endpoint hands the cascade."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update

from app.client import RoutedPredictor
from app.datasets.models import DatasetItem, DatasetVersion
from app.ingest.models import Item
from app.jobs.models import Job
from app.registry import service
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

DATASETS = "/api/v1/projects/roadwork/datasets"
MODELS = "/api/v1/projects/roadwork/models"
NIGHT = {"key": "is_night", "value": True}


def night_project(app, db, n: int = 60):
    """Items with every second one at night (both classes in each half); v1 freezes the whole stream."""
    app.state.settings = app.state.settings.model_copy(update={"min_holdout_items": 0})
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, user, n)
    night_ids = [item.id for index, item in enumerate(items) if index % 2 == 0]
    db.execute(update(Item).where(Item.project_id == project.id).values(is_night=False))
    db.execute(update(Item).where(Item.id.in_(night_ids)).values(is_night=True))
    db.commit()
    assert admin.post(DATASETS, json={"holdout_fraction": 0.5}).status_code == 201
    return project, admin, set(night_ids)


def split_of(db, version: int) -> dict[int, str]:
    query = (
        select(DatasetItem.item_id, DatasetItem.split)
        .join(DatasetVersion, DatasetVersion.id == DatasetItem.dataset_version_id)
        .where(DatasetVersion.version == version)
    )
    return dict(db.execute(query).all())


def test_a_version_frozen_for_the_night_slice_trains_on_night_items_and_keeps_the_whole_holdout(app, db):
    _, admin, night = night_project(app, db)
    response = admin.post(DATASETS, json={"slice": NIGHT})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filters"]["slice"] == NIGHT
    splits = split_of(db, body["version"])
    assert {i for i, s in splits.items() if s != "holdout"} <= night
    holdout = {i for i, s in splits.items() if s == "holdout"}
    assert holdout == {i for i, s in split_of(db, 1).items() if s == "holdout"}
    assert holdout - night, "the holdout keeps the day items: the registry picks the slice out of it"
    stats = body["stats"]["slice"]
    assert stats["label"] == "is_night = true" and stats["holdout"] == len(holdout & night)
    assert stats["train"] + stats["val"] == len(splits) - len(holdout)
    assert "small_slice_holdout" in {w["code"] for w in body["stats"]["warnings"]}


def test_a_numeric_range_slice_selects_by_metadata_value(app, db):
    _, admin, _ = night_project(app, db)
    for item in db.scalars(select(Item)):
        item.meta = {**item.meta, "lux": item.id % 10}
    db.commit()
    response = admin.post(DATASETS, json={"slice": {"key": "lux", "min": 0, "max": 5}})
    assert response.status_code == 201, response.text
    trained = {i for i, s in split_of(db, 2).items() if s != "holdout"}
    assert trained and all(i % 10 < 5 for i in trained)


def test_a_malformed_or_empty_slice_is_a_422_naming_the_field(app, db):
    _, admin, _ = night_project(app, db)
    for spec, field in [
        ({"key": "is_night"}, "slice"),
        ({"key": "lux", "value": 1, "min": 0}, "slice"),
        ({"key": "lux", "min": 5, "max": 1}, "slice"),
        ({"key": "bad key", "value": 1}, "slice"),
        ({"key": "lux", "min": "low"}, "slice.min"),
        ({"key": "lux", "value": {"a": 1}}, "slice.value"),
        ({"key": "is_night", "value": True, "extra": 1}, "slice.extra"),
    ]:
        response = admin.post(DATASETS, json={"slice": spec})
        assert response.status_code == 422, (spec, response.text)
        assert any(e["field"].startswith(field) for e in response.json()["errors"]), (spec, response.json())
    response = admin.post(DATASETS, json={"slice": {"key": "camera_id", "value": "no-such-camera"}})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "slice"


def register(app, db, project, dataset_version: int, scores: dict[int, float], seed: int):
    """A finished job's model with the given holdout scores, registered as the worker does."""
    db.commit()  # a fresh snapshot: the API froze versions since this session last read
    dataset_id = db.scalar(select(DatasetVersion.id).where(DatasetVersion.version == dataset_version))
    job = Job(
        project_id=project.id, kind="distill", dataset_version_id=dataset_id, config={}, status="succeeded"
    )
    db.add(job)
    db.flush()
    artifacts = app.state.settings.data_dir / f"job-{job.id}" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "model.bin").write_bytes(np.random.default_rng(seed).bytes(256))
    (artifacts / "README.md").write_text("# model\n")
    model = service.register_model_version(
        db_session=db,
        job=job,
        project=project,
        artifact_dir=artifacts,
        threshold=0.5,
        holdout_scores=scores,
        training_metrics={},
        files={"model": "model.bin"},
        settings=app.state.settings,
    )
    db.commit()
    return model


def holdout_truth(db) -> dict[int, int]:
    query = select(DatasetItem.item_id, DatasetItem.label).where(
        DatasetItem.split == "holdout", DatasetItem.dataset_version_id == 1
    )
    return {i: int(label != 0) for i, label in db.execute(query)}


def scores_for(truth: dict[int, int], good: set[int], seed: int) -> dict[int, float]:
    """Right (with margin) on `good` items, a coin toss elsewhere."""
    rng = np.random.default_rng(seed)
    return {i: (0.9 if y else 0.1) if i in good else float(rng.uniform()) for i, y in truth.items()}


def generalist_and_night_specialist(app, db, specialist_good_at_night: bool = True):
    project, admin, night = night_project(app, db)
    truth = holdout_truth(db)
    day = set(truth) - night
    register(app, db, project, 1, scores_for(truth, day, seed=1), seed=1)  # the generalist: weak at night
    force = {"force": True, "reason": "test"}
    assert admin.post(f"{MODELS}/1/promote", json=force).status_code == 200
    assert admin.post(DATASETS, json={"slice": NIGHT}).status_code == 201
    good = night if specialist_good_at_night else set()
    register(app, db, project, 2, scores_for(truth, good, seed=2), seed=2)
    return project, admin, truth, night


def test_a_specialist_better_on_its_slice_with_confidence_is_routed_that_slice_and_the_cascade_sees_the_table(
    app, db
):
    project, admin, truth, night = generalist_and_night_specialist(app, db)
    row = admin.get(f"{MODELS}/2").json()
    assert row["slice"] == NIGHT and row["gate"] == [] and row["serves_slice"] is False
    findings = row["slice_vs_production"]
    assert findings["n"] == len(set(truth) & night) and findings["vs_production"]["ci_low"] > 0
    promoted = admin.post(f"{MODELS}/2/promote", json={"note": "night model"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["stage"] == "candidate" and promoted.json()["serves_slice"] is True

    key = make_key(db, scopes=["models"], project_id=project.id)
    production = admin.get(f"{MODELS}/production", headers={"X-API-Key": key}).json()
    assert production["version"] == 1, "the generalist still serves everything else"
    [route] = production["routes"]
    assert route["slice"] == NIGHT and route["version"] == 2 and route["label"] == "is_night = true"
    assert route["artifact_url"].endswith("/models/2/artifact") and route["artifact_sha256"]
    history = admin.get(f"{MODELS}/history").json()
    assert history[0]["action"] == "promote_slice" and history[0]["version"] == 2
    assert admin.post(f"{MODELS}/2/promote", json={}).status_code == 409  # already serves it

    assert admin.post(f"{MODELS}/2/withdraw-slice", json={}).status_code == 200
    assert admin.get(f"{MODELS}/production").json()["routes"] == []
    assert admin.post(f"{MODELS}/2/withdraw-slice", json={}).status_code == 409


def test_a_specialist_not_better_on_its_slice_is_refused_unless_an_admin_forces_it_with_a_reason(app, db):
    _, admin, _, _ = generalist_and_night_specialist(app, db, specialist_good_at_night=False)
    row = admin.get(f"{MODELS}/2").json()
    assert row["gate"] and "on the slice is_night = true" in row["gate"][0]
    refused = admin.post(f"{MODELS}/2/promote", json={})
    assert refused.status_code == 409 and "not better than production v1" in refused.json()["detail"]
    assert admin.post(f"{MODELS}/2/promote", json={"force": True}).status_code == 422
    forced = admin.post(f"{MODELS}/2/promote", json={"force": True, "reason": "night drift"})
    assert forced.status_code == 200 and forced.json()["serves_slice"] is True
    entry = admin.get(f"{MODELS}/history").json()[0]
    assert entry["forced"] and entry["force_reason"] == "night drift" and entry["gate"]["refusals"]


def test_a_specialist_needs_a_production_generalist_and_enough_slice_items(app, db):
    project, admin, night = night_project(app, db)
    truth = holdout_truth(db)
    assert admin.post(DATASETS, json={"slice": NIGHT}).status_code == 201
    register(app, db, project, 2, scores_for(truth, night, seed=3), seed=3)
    refused = admin.post(f"{MODELS}/1/promote", json={"force": True, "reason": "x"})
    assert refused.status_code == 409 and "promote a generalist first" in refused.json()["detail"]
    register(app, db, project, 1, scores_for(truth, set(), seed=4), seed=4)
    assert admin.post(f"{MODELS}/2/promote", json={"force": True, "reason": "x"}).status_code == 200
    app.state.settings = app.state.settings.model_copy(update={"min_holdout_items": 1000})
    refused = admin.post(f"{MODELS}/1/promote", json={})
    assert refused.status_code == 409 and "items in the slice is_night = true" in refused.json()["detail"]


class Scorer:
    """A stand-in predictor that answers its own name (the routing, not the model, is under test)."""

    multiclass = False

    def __init__(self, name: str) -> None:
        self.name, self.version, self.threshold, self.classes = name, 1, 0.5, ["no", "yes"]

    def scores(self, images):
        return np.array([{"day": 0.1, "night": 0.9, "cam": 0.6}[self.name]] * len(images))

    def predict(self, images):
        return [s >= self.threshold for s in self.scores(images)]


def test_the_routed_predictor_sends_each_item_to_the_first_matching_slice_else_the_generalist():
    routed = RoutedPredictor(
        default=Scorer("day"),
        routes=[(NIGHT, Scorer("night")), ({"key": "camera_id", "value": "cam7"}, Scorer("cam"))],
    )
    metadata = [{"is_night": True, "camera_id": "cam7"}, {"is_night": False, "camera_id": "cam7"}, {}, None]
    assert routed.scores(["a", "b", "c", "d"], metadata).tolist() == [0.9, 0.6, 0.1, 0.1]
    assert routed.predict(["a", "b", "c", "d"], metadata) == [True, True, False, False]
    assert routed.scores(["a"]).tolist() == [0.1] and routed.version == 1
