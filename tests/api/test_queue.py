"""The labeling queue: ranking on ingest, hardest-first leases, expiry, release/skip, access, images."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from app.core.db import utcnow
from app.queue import service as queue_service
from app.queue.models import Hardness
from app.queue.service import item_payload
from tests.utils.accounts import (
    item_ids,
    logged_in,
    make_user,
    seed_project,
    spread_scores,
)
from tests.utils.factories import b64, item, make_key, make_project, png_bytes

NEXT = "/api/v1/projects/roadwork/queue/next"
PROGRESS = "/api/v1/projects/roadwork/progress"


def hardness(db, item_id: int) -> Hardness:
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    row = db.get(Hardness, item_id)
    db.commit()  # SQLite: a reading test session must not keep the write lock the app needs
    return row


def _values(row: Hardness) -> dict:
    return {c.key: getattr(row, c.key) for c in Hardness.__table__.columns}


def test_ingest_stores_the_ranking_of_every_item(client, db):
    project, _ = seed_project(
        db, client, {"torn": {"det": 0.9, "vlm": 0.1}, "sure": {"det": 0.97, "vlm": 0.96}}
    )
    ids = item_ids(db, project)
    torn = _values(hardness(db, ids["torn"]))
    sure = _values(hardness(db, ids["sure"]))
    assert torn["status"] == sure["status"] == "pending"
    assert torn["priority"] > sure["priority"]
    assert torn["disagreement"] > sure["disagreement"]
    assert torn["mean_score"] == pytest.approx(0.5)
    assert torn["reasons"] is None  # built for the item the label page shows, not per item on ingest
    shown = item_payload(db_session=db, project=project, item_id=ids["torn"])["hardness"]["reasons"]
    db.commit()
    assert any("disagree" in reason for reason in shown)


def test_a_new_models_prediction_rescores_that_item_only(client, db):
    project, key = seed_project(db, client, {"a": {"det": 0.9}, "b": {"det": 0.9}})
    ids = item_ids(db, project)
    priority_a = hardness(db, ids["a"]).priority
    stamp_b = hardness(db, ids["b"]).updated_at
    response = client.post(
        "/api/v1/projects/roadwork/predictions",
        json={"items": [item("a", scores={"vlm": 0.05}), item("b", scores={"det": 0.9})]},
        headers={"X-API-Key": key},
    )
    assert response.json()["predictions_created"] == 1
    after_a = hardness(db, ids["a"])
    assert after_a.n_models == 2 and after_a.priority > priority_a
    assert hardness(db, ids["b"]).updated_at == stamp_b


def test_items_without_predictions_join_the_pool_with_zero_priority(client, db):
    project = make_project(db)
    key = make_key(db)
    bare = {"external_id": "bare", "image": {"url": "https://x/y.jpg"}}
    client.post("/api/v1/projects/roadwork/predictions", json={"items": [bare]}, headers={"X-API-Key": key})
    bare_id = item_ids(db, project)["bare"]
    row = hardness(db, bare_id)
    assert (row.status, row.priority, row.n_models) == ("pending", 0.0, 0)
    shown = item_payload(db_session=db, project=project, item_id=bare_id)["hardness"]["reasons"]
    db.commit()
    assert shown == ["no model scored it"]


def test_leases_come_hardest_first_with_the_label_page_payload(app, client, db):
    project, _ = seed_project(db, client, spread_scores(4))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    served = []
    for _ in range(4):
        response = ann.post(NEXT)
        assert response.status_code == 200, response.text
        served.append(response.json()["item"]["external_id"])
    assert served == ["item-0", "item-1", "item-2", "item-3"]
    body = response.json()
    assert body["item"]["image_url"].endswith(f"/items/{body['item']['id']}/image")
    assert {p["model"] for p in body["item"]["predictions"]} == {"det", "clf"}
    assert body["item"]["metadata"]["camera_id"] == "cam-1"
    assert body["item"]["hardness"]["reasons"]
    assert body["lease_expires_at"]
    assert ann.post(NEXT).status_code == 204  # an API caller keeps the four it holds
    # a page that holds none of them (closed, reloaded) gets its user's own work back, never "empty"
    assert ann.post(NEXT, json={"holding": []}).json()["item"]["external_id"] == "item-0"


def test_an_expired_lease_returns_the_item_to_the_pool(app, client, db):
    project, _ = seed_project(db, client, spread_scores(2))
    make_user(db, "ann", project=project)
    make_user(db, "bob", project=project)
    ann, bob = logged_in(app, "ann"), logged_in(app, "bob")
    first = ann.post(NEXT).json()["item"]["id"]
    db.execute(
        update(Hardness)
        .where(Hardness.item_id == first)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.commit()
    assert bob.post(NEXT).json()["item"]["id"] == first


def test_release_puts_the_item_back_for_anyone_and_skip_for_others_only(app, client, db):
    project, _ = seed_project(db, client, spread_scores(2))
    make_user(db, "ann", project=project)
    make_user(db, "bob", project=project)
    ann, bob = logged_in(app, "ann"), logged_in(app, "bob")
    hardest = ann.post(NEXT).json()["item"]["id"]
    assert ann.post(f"/api/v1/projects/roadwork/queue/{hardest}/release").json()["status"] == "pending"
    assert ann.post(NEXT).json()["item"]["id"] == hardest
    assert ann.post(f"/api/v1/projects/roadwork/queue/{hardest}/skip").json()["status"] == "pending"
    assert ann.post(NEXT).json()["item"]["id"] != hardest
    assert bob.post(NEXT).json()["item"]["id"] == hardest


def test_release_without_a_lease_is_409(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    item_id = item_ids(db, project)["item-0"]
    response = logged_in(app, "ann").post(f"/api/v1/projects/roadwork/queue/{item_id}/release")
    assert response.status_code == 409


def test_an_item_skipped_by_three_people_goes_to_review(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    for name in ("a1", "a2", "a3"):
        make_user(db, name, project=project)
        user = logged_in(app, name)
        leased = user.post(NEXT).json()["item"]["id"]
        status = user.post(f"/api/v1/projects/roadwork/queue/{leased}/skip").json()["status"]
    assert status == "skipped"


def test_near_duplicates_are_not_served_back_to_back(app, client, db):
    project = make_project(db)
    key = make_key(db)
    t0 = "2026-11-01T08:00:00+00:00"
    batch = [
        item("a", scores={"det": 0.50}, camera_id="cam-1", captured_at=t0),
        item("a-again", scores={"det": 0.51}, camera_id="cam-1", captured_at="2026-11-01T08:00:10+00:00"),
        item("elsewhere", scores={"det": 0.55}, camera_id="cam-2", captured_at=t0),
    ]
    client.post("/api/v1/projects/roadwork/predictions", json={"items": batch}, headers={"X-API-Key": key})
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    order = [ann.post(NEXT).json()["item"]["external_id"] for _ in range(3)]
    assert order == ["a", "elsewhere", "a-again"]


def test_annotators_only_reach_projects_they_are_assigned_to(app, client, db):
    seed_project(db, client, spread_scores(1))
    other = make_project(db, name="other")
    make_user(db, "ann", project=other)
    ann = logged_in(app, "ann")
    response = ann.post(NEXT)  # 404, as for a project that does not exist: its existence is not leaked
    assert response.status_code == 404 and response.json()["errors"][0]["field"] == "project"
    assert ann.get("/api/v1/projects/roadwork/progress").status_code == 404


def test_admins_reach_every_project_and_a_stranger_gets_401(app, client, db):
    seed_project(db, client, spread_scores(1))
    make_user(db, "boss", role="admin")
    assert logged_in(app, "boss").post(NEXT).status_code == 200
    assert client.post(NEXT).status_code == 401


def test_progress_counts_the_pool_and_the_users_work(app, client, db):
    project, _ = seed_project(db, client, spread_scores(3))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    leased = ann.post(NEXT).json()["item"]["id"]
    ann.post(f"/api/v1/projects/roadwork/items/{leased}/annotations", json={"label": 1, "duration_ms": 1200})
    ann.post(NEXT)
    progress = ann.get("/api/v1/projects/roadwork/progress").json()
    assert progress == {
        "done_today": 1,
        "done_total": 1,
        "queue_size": 1,
        "leased": 1,
        "leased_by_others": 0,
        "labeled": 1,
        "in_review": 0,
        "agreement_rate": None,  # nobody else labeled the item: no agreement figure, not 100%
        "daily_goal": 0,
    }


def test_a_large_pools_counts_are_reused_for_seconds_while_the_users_own_work_is_always_counted(
    app, client, db, monkeypatch
):
    """At a million items counting the pool costs more than a label: a pool at or over the threshold is counted
    at most every POOL_COUNTS_MAX_AGE_S, and the caller's own counts stay exact."""
    project, _ = seed_project(db, client, spread_scores(3))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    monkeypatch.setattr(queue_service, "_pool_counts", {})
    monkeypatch.setattr(queue_service, "POOL_COUNTS_EXACT_BELOW", 3)  # these three items are a large pool
    assert ann.get(PROGRESS).json()["queue_size"] == 3
    leased = ann.post(NEXT).json()["item"]["id"]
    ann.post(f"/api/v1/projects/roadwork/items/{leased}/annotations", json={"label": 1})

    reused = ann.get(PROGRESS).json()
    assert (reused["queue_size"], reused["labeled"], reused["done_total"]) == (3, 0, 1)

    monkeypatch.setattr(queue_service, "POOL_COUNTS_MAX_AGE_S", 0.0)
    counted = ann.get(PROGRESS).json()
    assert (counted["queue_size"], counted["labeled"], counted["done_total"]) == (2, 1, 1)


def test_the_image_streams_for_members_and_read_keys_and_a_url_is_refused_while_fetching_is_off(
    app, client, db
):
    """Stored images stream to members and read keys; a URL-only item is a 403 naming the empty allowlist."""
    project = make_project(db)
    key = make_key(db)
    stored = item("stored", image={"base64": b64(png_bytes())})
    client.post(
        "/api/v1/projects/roadwork/predictions",
        json={"items": [stored, item("remote")]},
        headers={"X-API-Key": key},
    )
    ids = item_ids(db, project)
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    image = ann.get(f"/api/v1/projects/roadwork/items/{ids['stored']}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == png_bytes()
    by_key = client.get(f"/api/v1/projects/roadwork/items/{ids['stored']}/image", headers={"X-API-Key": key})
    assert by_key.status_code == 200
    remote = ann.get(f"/api/v1/projects/roadwork/items/{ids['remote']}/image")
    assert remote.status_code == 403 and "HARDCASE_REMOTE_IMAGE_ALLOWLIST" in remote.json()["detail"]
    assert client.get(f"/api/v1/projects/roadwork/items/{ids['stored']}/image").status_code == 401


def test_hardness_rows_are_indexed_for_the_next_hardest_pending(db):
    index = {ix.name: [str(c) for c in ix.expressions] for ix in Hardness.__table__.indexes}
    assert "ix_hardness_next" in index
    assert index["ix_hardness_next"][:2] == ["hardness.project_id", "hardness.status"]
    assert db.scalar(select(Hardness).limit(1)) is None


@contextmanager
def _engine_listener(app, name: str, listener) -> Iterator[None]:
    event.listen(app.state.engine, name, listener)
    try:
        yield
    finally:
        event.remove(app.state.engine, name, listener)


@contextmanager
def _statements(app) -> Iterator[list[str]]:
    """The SQL statements SQLAlchemy sends inside the block."""
    seen: list[str] = []
    with _engine_listener(app, "before_cursor_execute", lambda c, cur, statement, *_: seen.append(statement)):
        yield seen


@contextmanager
def _synchronous_commit_at_commits(app) -> Iterator[list[str]]:
    """PostgreSQL's synchronous_commit as each transaction commits inside the block (nothing on SQLite)."""
    seen: list[str] = []

    def record(conn):
        if conn.dialect.name == "postgresql":
            seen.append(conn.connection.driver_connection.execute("SHOW synchronous_commit").fetchone()[0])

    with _engine_listener(app, "commit", record):
        yield seen


def test_leases_commit_without_waiting_for_the_wal_flush_and_labels_wait(app, client, db):
    """Durability by kind of state: a lease (soft state that expires anyway) commits with synchronous_commit
    off on PostgreSQL; the label it leads to commits durably. The route's project is read once per request
    (the access rule's lookup is reused), and the lease is still exclusive."""
    project, _ = seed_project(db, client, {"a": {"det": 0.5}, "b": {"det": 0.9}})
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    with _synchronous_commit_at_commits(app) as lease_commits, _statements(app) as during_lease:
        lease = ann.post(NEXT)
    assert lease.status_code == 200
    item_id = lease.json()["item"]["id"]
    label = {"label": 1, "duration_ms": 900}
    with _synchronous_commit_at_commits(app) as submit_commits:
        submitted = ann.post(f"/api/v1/projects/roadwork/items/{item_id}/annotations", json=label)
    assert submitted.status_code == 201
    postgres = app.state.engine.dialect.name == "postgresql"
    assert lease_commits == (["off"] if postgres else [])
    assert submit_commits == (["on"] if postgres else [])
    assert sum(s.lstrip().startswith("SELECT projects.") for s in during_lease) == 1
    assert hardness(db, item_id).status == "done" and hardness(db, item_id).lease_owner is None
