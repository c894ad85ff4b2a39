"""Webhook endpoints (admins only), events recorded where they happen, signatures a receiver can check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.drift import service as drift_service
from app.drift.config import DriftSettings
from app.ingest.models import Item, Prediction
from app.jobs import service as jobs_service
from app.jobs.models import Job
from app.users.service import add_member
from app.webhooks import service
from app.webhooks.models import WebhookDelivery
from app.webhooks.schemas import WebhookCreate
from app.webhooks.signing import body_bytes, signature, signed_headers, verify
from tests.utils.dashboard_data import seed_training
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as
from tests.utils.receiver import verify_hardcase_webhook

HOOKS = "/api/v1/projects/roadwork/webhooks"


@pytest.fixture(autouse=True)
def test_broker(request, redis_url):
    """Events emitted through the test's own session go to the test's Redis (not the default embedded one), and
    the deliveries queued there are never consumed here: leave no task for a later worker test."""
    if "db" in request.fixturenames:
        request.getfixturevalue("db").info["settings"] = request.getfixturevalue("settings")
    yield
    redis.Redis.from_url(redis_url).delete("cpu")


def admin_free_client(app) -> TestClient:
    return TestClient(app)


def deliveries(db: Session) -> list[WebhookDelivery]:
    db.rollback()
    rows = list(db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
    db.commit()
    return rows


def test_an_admin_creates_lists_updates_and_deletes_a_webhook_and_sees_the_secret_once(app, db):
    make_project(db)
    admin, _ = client_as(app, db, "admin")
    created = admin.post(HOOKS, json={"url": "https://hooks.example/hc", "events": ["model.promoted"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["model.promoted"] and body["is_active"]
    listed = admin.get(HOOKS).json()
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0] and body["secret"].startswith(listed[0]["secret_hint"].rstrip("…"))
    patched = admin.patch(f"{HOOKS}/{body['id']}", json={"is_active": False, "events": ["drift.alarm"]})
    assert patched.status_code == 200 and patched.json()["events"] == ["drift.alarm"]
    assert not patched.json()["is_active"]
    assert admin.delete(f"{HOOKS}/{body['id']}").status_code == 204
    assert admin.get(f"{HOOKS}/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"url": "ftp://hooks.example/x"},
        {"url": "javascript:alert(1)"},
        {"url": "http://"},
        {"url": "https://hooks.example:99999/x"},
        {"url": "https://hooks.example/a b"},
        {"url": "https://hooks.example/x", "events": ["model.deleted"]},
        {"url": "https://hooks.example/x", "events": []},
        {"url": "https://hooks.example/x", "secret": "mine"},
        {"url": "https://x.example/" + "a" * 2100},
    ],
)
def test_a_webhook_needs_an_http_or_https_url_and_known_events(app, db, payload):
    make_project(db)
    admin, _ = client_as(app, db, "admin")
    response = admin.post(HOOKS, json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["errors"]


def test_only_admins_manage_webhooks_and_keys_cannot(app, db):
    project = make_project(db)
    reviewer, user = client_as(app, db, "reviewer")
    add_member(db_session=db, project_id=project.id, user_id=user.id)
    db.commit()
    assert reviewer.get(HOOKS).status_code == 403
    assert reviewer.post(HOOKS, json={"url": "https://hooks.example/x"}).status_code == 403
    key = make_key(db, scopes=["ingest", "read", "models", "metrics"])
    keyed = admin_free_client(app).get(HOOKS, headers={"X-API-Key": key})
    assert keyed.status_code == 401  # webhooks take no service keys, whatever their scopes


def test_a_webhook_of_another_project_is_not_found(app, db):
    make_project(db)
    make_project(db, name="other")
    admin, _ = client_as(app, db, "admin")
    other = admin.post("/api/v1/projects/other/webhooks", json={"url": "https://hooks.example/x"}).json()
    assert admin.get(f"{HOOKS}/{other['id']}").status_code == 404
    assert admin.post(f"{HOOKS}/{other['id']}/test").status_code == 404
    assert admin.get(f"{HOOKS}/{other['id']}/deliveries").status_code == 404
    assert admin.get(f"{HOOKS}/{2**40}").status_code == 422


def test_promote_and_rollback_record_one_delivery_per_subscribed_endpoint(app, db):
    project = make_project(db)
    seed_training(db, project)
    db.commit()
    admin, _ = client_as(app, db, "admin")
    models_hook = admin.post(
        HOOKS, json={"url": "https://a.example/h", "events": ["model.promoted", "model.rolled_back"]}
    )
    admin.post(HOOKS, json={"url": "https://b.example/h", "events": ["job.finished"]})
    assert admin.post("/api/v1/projects/roadwork/models/2/promote", json={}).status_code == 200
    assert admin.post("/api/v1/projects/roadwork/models/rollback", json={}).status_code == 200
    rows = deliveries(db)
    assert [(d.event, d.endpoint_id, d.status) for d in rows] == [
        ("model.promoted", models_hook.json()["id"], "pending"),
        ("model.rolled_back", models_hook.json()["id"], "pending"),
    ]
    promoted = rows[0].payload
    assert promoted["project"] == "roadwork" and promoted["event"] == "model.promoted"
    assert promoted["data"]["model"]["version"] == 2 and promoted["data"]["replaced_version"] == 1
    assert (
        rows[1].payload["data"]["model"]["version"] == 1 and rows[1].payload["data"]["replaced_version"] == 2
    )
    log = admin.get(f"{HOOKS}/deliveries").json()
    assert [d["event"] for d in log] == ["model.rolled_back", "model.promoted"]


def test_a_refused_promotion_records_no_event(app, db):
    project = make_project(db)
    seed_training(db, project)
    db.commit()
    admin, _ = client_as(app, db, "admin")
    admin.post(HOOKS, json={"url": "https://a.example/h"})
    assert admin.post("/api/v1/projects/roadwork/models/1/promote", json={}).status_code == 409
    assert deliveries(db) == []


def test_a_finished_job_emits_job_finished_with_its_state(app, db):
    project = make_project(db)
    done, _running = seed_training(db, project)
    queued = Job(
        project_id=project.id, kind="distill", dataset_version_id=done.dataset_version_id, status="queued"
    )
    db.add(queued)
    db.commit()
    admin, _ = client_as(app, db, "admin")
    admin.post(HOOKS, json={"url": "https://a.example/h", "events": ["job.finished"]})
    jobs_service.request_cancel(db_session=db, job=db.get(Job, queued.id))
    db.commit()
    (row,) = deliveries(db)
    assert row.event == "job.finished"
    assert (
        row.payload["data"]["job"]["id"] == queued.id and row.payload["data"]["job"]["status"] == "cancelled"
    )


def test_a_transaction_that_rolls_back_records_and_sends_nothing(db):
    project = make_project(db)
    service.create_endpoint(
        db_session=db, project=project, webhook_in=WebhookCreate(url="https://a.example/h"), user_id=None
    )
    db.commit()
    service.emit(db_session=db, project_id=project.id, event="model.promoted", data={"model": {}})
    db.rollback()
    assert deliveries(db) == []
    db.commit()
    assert db.info.get("after_commit_callbacks") == []


def _drifting_predictions(db: Session, project, shift: bool) -> None:
    rng = np.random.default_rng(3)
    reference, recent = rng.beta(2, 5, 160), rng.beta(5, 2, 80) if shift else rng.beta(2, 5, 80)
    start = utcnow()
    for index, score in enumerate(np.concatenate([reference, recent])):
        item = Item(project_id=project.id, external_id=f"d-{shift}-{index}", meta={})
        db.add(item)
        db.flush()
        db.add(
            Prediction(
                item_id=item.id,
                project_id=project.id,
                model="det",
                score=float(score),
                boxes=[],
                received_at=start - timedelta(minutes=300 - index),
            )
        )
    db.commit()


def test_a_drift_alarm_is_emitted_when_a_model_starts_drifting_not_on_every_check(db):
    project = make_project(db)
    service.create_endpoint(
        db_session=db, project=project, webhook_in=WebhookCreate(url="https://a.example/h"), user_id=None
    )
    _drifting_predictions(db, project, shift=True)
    small = DriftSettings(recent_size=80, reference_size=160, min_samples=40, p_value=0.05)
    first = drift_service.check_project(db_session=db, project=project, settings=small)
    db.commit()
    second = drift_service.check_project(db_session=db, project=project, settings=small)
    db.commit()
    assert first[0].is_drift and second[0].is_drift
    (row,) = deliveries(db)
    assert row.event == "drift.alarm" and row.payload["data"]["model"] == "det"
    assert row.payload["data"]["check_id"] == first[0].id and row.payload["data"]["p_value"] < 0.05


def test_the_signature_covers_timestamp_and_body_and_a_receiver_rejects_replays():
    secret, body = "whsec_test", body_bytes({"event": "webhook.test", "data": {"n": 1}})
    headers = signed_headers(secret, body, event="webhook.test", delivery_id=7)
    assert verify(secret, body, headers["X-Hardcase-Timestamp"], headers["X-Hardcase-Signature"])
    assert verify_hardcase_webhook(secret, body, headers)  # the README snippet agrees
    assert not verify_hardcase_webhook("whsec_other", body, headers)
    assert not verify_hardcase_webhook(secret, body + b" ", headers)
    old = signed_headers(secret, body, event="webhook.test", delivery_id=7, now=1_000_000)
    assert old["X-Hardcase-Signature"] == signature(secret, 1_000_000, body)
    assert not verify_hardcase_webhook(secret, body, old)  # outside the 5-minute replay window
    assert not verify(secret, body, "not-a-number", headers["X-Hardcase-Signature"])


def test_back_off_doubles_from_the_base_and_stays_below_the_cap():
    settings = Settings(webhook_retry_base_s=10, webhook_retry_max_s=60, visibility_timeout_s=3600)
    assert [service.backoff_s(settings, n) for n in range(1, 6)] == [10, 20, 40, 60, 60]
    short_visibility = Settings(webhook_retry_base_s=10, webhook_retry_max_s=900, visibility_timeout_s=30)
    assert service.backoff_s(short_visibility, 8) == pytest.approx(27)


def test_the_webhooks_page_shows_endpoints_test_buttons_and_the_delivery_log_to_admins_only(app, db):
    make_project(db)
    admin, _ = client_as(app, db, "admin")
    hook = admin.post(HOOKS, json={"url": "https://hooks.example/hc", "description": "CI"}).json()
    admin.post(f"{HOOKS}/{hook['id']}/test")
    page = admin.get("/projects/roadwork/webhooks")
    assert page.status_code == 200
    assert "https://hooks.example/hc" in page.text and f'data-webhook-test="{hook["id"]}"' in page.text
    assert "webhook.test" in page.text and "pending" in page.text
    assert hook["secret"] not in page.text
    assert 'href="/projects/roadwork/webhooks"' in page.text  # the admin's nav links the page
    annotator, _ = client_as(app, db, "annotator")
    assert annotator.get("/projects/roadwork/webhooks").status_code == 403
    assert TestClient(app).get("/projects/roadwork/webhooks", follow_redirects=False).status_code == 303


def test_the_readme_receiver_snippet_accepts_a_signed_event_and_rejects_a_forged_one():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = next(
        block for block in readme.split("```python\n")[1:] if "def verify_hardcase_webhook" in block
    )
    namespace: dict = {}
    exec(snippet.split("```")[0], namespace)  # noqa: S102 (our own README)
    secret, body = "whsec_readme", body_bytes({"event": "model.promoted"})
    headers = signed_headers(secret, body, event="model.promoted", delivery_id=1)
    assert namespace["verify_hardcase_webhook"](secret, body, headers)
    assert not namespace["verify_hardcase_webhook"](secret, b'{"event":"model.rolled_back"}', headers)


def test_only_pending_deliveries_long_past_their_next_try_are_resent_by_the_sweep(db):
    project = make_project(db)
    service.create_endpoint(
        db_session=db, project=project, webhook_in=WebhookCreate(url="https://a.example/h"), user_id=None
    )
    lost, fresh, done = (
        service.emit(db_session=db, project_id=project.id, event="model.promoted", data={"model": {}})[0]
        for _ in range(3)
    )
    lost.next_attempt_at = done.next_attempt_at = utcnow() - timedelta(minutes=10)
    done.status = "succeeded"
    db.commit()
    assert service.overdue_deliveries(db_session=db, grace_s=300) == [lost.id]
