"""GET /metrics: scraped and parsed with prometheus_client's parser; the numbers move when work happens."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.core.db import utcnow
from tests.utils.accounts import logged_in, make_user
from tests.utils.dashboard_data import drift_alarm, seed_training
from tests.utils.factories import item, make_key, make_project
from tests.utils.labeled_data import client_as

PREDICTIONS_ROUTE = "/api/v1/projects/{project}/predictions"


def scrape(client, key: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_for_admins_and_keys_with_the_metrics_scope(app, client, db):
    project = make_project(db)
    assert client.get("/metrics").status_code == 401
    read_key = make_key(db, scopes=["read"])
    assert client.get("/metrics", headers={"X-API-Key": read_key}).status_code == 403
    bound = make_key(db, scopes=["metrics"], project_id=project.id)
    assert client.get("/metrics", headers={"X-API-Key": bound}).status_code == 403
    annotator, _ = client_as(app, db, "annotator")
    assert annotator.get("/metrics").status_code == 403
    admin, _ = client_as(app, db, "admin")
    assert admin.get("/metrics").status_code == 200
    assert scrape(client, make_key(db, scopes=["metrics"]))


def test_ingest_lease_and_annotation_move_their_counters_gauges_and_histograms(app, client, db):
    project = make_project(db)
    metrics_key = make_key(db, scopes=["metrics"])
    ingest_key = make_key(db)
    make_user(db, "ann", project=project)
    before = scrape(client, metrics_key)

    batch = {"items": [item(f"m-{i}", scores={"det": 0.2 + 0.2 * i, "clf": 0.5}) for i in range(3)]}
    batch["items"].append({"external_id": "", "predictions": []})  # rejected
    response = client.post(
        "/api/v1/projects/roadwork/predictions", json=batch, headers={"X-API-Key": ingest_key}
    )
    assert response.status_code == 207, response.text
    after_ingest = scrape(client, metrics_key)
    assert (
        value(after_ingest, "hardcase_ingest_items_total", project="roadwork")
        - value(before, "hardcase_ingest_items_total", project="roadwork")
        == 3
    )
    assert (
        value(after_ingest, "hardcase_ingest_predictions_total", project="roadwork")
        - value(before, "hardcase_ingest_predictions_total", project="roadwork")
        == 6
    )
    assert (
        value(after_ingest, "hardcase_ingest_rejected_items_total", project="roadwork")
        - value(before, "hardcase_ingest_rejected_items_total", project="roadwork")
        == 1
    )
    assert value(after_ingest, "hardcase_queue_depth", project="roadwork") == 3
    assert value(after_ingest, "hardcase_queue_leased", project="roadwork") == 0
    ingest_requests = dict(method="POST", route=PREDICTIONS_ROUTE, status="207")
    assert (
        value(after_ingest, "hardcase_http_request_duration_seconds_count", **ingest_requests)
        - value(before, "hardcase_http_request_duration_seconds_count", **ingest_requests)
        == 1
    )
    assert not any("/projects/roadwork/" in dict(labels).get("route", "") for _, labels in after_ingest)

    ann = logged_in(app, "ann")
    leased = ann.post("/api/v1/projects/roadwork/queue/next")
    assert leased.status_code == 200, leased.text
    after_lease = scrape(client, metrics_key)
    assert value(after_lease, "hardcase_queue_leased", project="roadwork") == 1
    assert value(after_lease, "hardcase_queue_depth", project="roadwork") == 2
    assert (
        value(after_lease, "hardcase_queue_lease_duration_seconds_count", project="roadwork")
        - value(before, "hardcase_queue_lease_duration_seconds_count", project="roadwork")
        == 1
    )
    assert value(after_lease, "hardcase_queue_lease_duration_seconds_sum", project="roadwork") > value(
        before, "hardcase_queue_lease_duration_seconds_sum", project="roadwork"
    )

    item_id = leased.json()["item"]["id"]
    answered = ann.post(f"/api/v1/projects/roadwork/items/{item_id}/annotations", json={"label": 1})
    assert answered.status_code in (200, 201), answered.text
    after_label = scrape(client, metrics_key)
    assert (
        value(after_label, "hardcase_annotations_total", project="roadwork")
        - value(before, "hardcase_annotations_total", project="roadwork")
        == 1
    )
    assert value(after_label, "hardcase_queue_leased", project="roadwork") == 0
    assert value(after_label, "hardcase_queue_items", project="roadwork", status="done") == 1


def test_job_states_stage_changes_and_drift_alarms_are_exported(app, client, db):
    project = make_project(db)
    seed_training(db, project)
    db.add(
        drift_alarm(
            project.id,
            "det",
            now=utcnow(),
            p_value=0.001,
            n_reference=200,
            n_recent=100,
            distance=0.4,
            boosted_items=0,
            reference_days=7,
            recent_hours=24,
        )
    )
    db.commit()
    metrics_key = make_key(db, scopes=["metrics"])
    before = scrape(client, metrics_key)
    assert value(before, "hardcase_jobs", project="roadwork", kind="classifier_lora", state="succeeded") == 1
    assert value(before, "hardcase_jobs", project="roadwork", kind="distill", state="running") == 1
    assert value(before, "hardcase_drift_alarming", project="roadwork") == 1
    admin, _ = client_as(app, db, "admin")
    assert admin.post("/api/v1/projects/roadwork/models/2/promote", json={}).status_code == 200
    after = scrape(client, metrics_key)
    changes = dict(project="roadwork", event="model.promoted")
    assert (
        value(after, "hardcase_model_stage_changes_total", **changes)
        - value(before, "hardcase_model_stage_changes_total", **changes)
        == 1
    )


def test_every_hardcase_metric_follows_prometheus_naming(client, db):
    make_project(db)
    text = client.get("/metrics", headers={"X-API-Key": make_key(db, scopes=["metrics"])}).text
    families = [f for f in text_string_to_metric_families(text) if f.name.startswith("hardcase_")]
    assert {f.name for f in families} >= {
        "hardcase_http_request_duration_seconds",
        "hardcase_queue_depth",
        "hardcase_queue_leased",
        "hardcase_jobs",
        "hardcase_drift_alarming",
    }
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert not {"user", "user_id", "item", "item_id", "path", "external_id"} & set(sample.labels)
