"""Annotations: validation, leases, overlap and consensus, corrections and undo keep history."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.labels.models import Annotation
from app.labels.service import consensus_for_items
from app.queue.models import Hardness
from tests.utils.accounts import (
    item_ids,
    logged_in,
    make_user,
    seed_project,
    spread_scores,
)

BASE = "/api/v1/projects/roadwork"


def lease(user) -> int:
    response = user.post(f"{BASE}/queue/next")
    assert response.status_code == 200, response.text
    return response.json()["item"]["id"]


def annotate(user, item_id: int, **body):
    return user.post(f"{BASE}/items/{item_id}/annotations", json=body)


def status_of(db, item_id: int) -> str:
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    status = db.get(Hardness, item_id).status
    db.commit()
    return status


@pytest.fixture
def two_annotators(app, client, db):
    project, _ = seed_project(db, client, spread_scores(3), overlap=2)
    make_user(db, "ann", project=project)
    make_user(db, "bob", project=project)
    return project, logged_in(app, "ann"), logged_in(app, "bob")


def test_an_annotation_needs_a_live_lease(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    response = annotate(ann, item_ids(db, project)["item-0"], label=1)
    assert response.status_code == 409 and response.json()["errors"][0]["field"] == "lease"


def test_overlap_one_annotation_finishes_the_item(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    item_id = lease(ann)
    response = annotate(ann, item_id, label=1, duration_ms=2500)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["item_status"] == "done"
    assert body["annotation"]["label"] == 1 and body["annotation"]["duration_ms"] == 2500
    assert ann.post(f"{BASE}/queue/next").status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [({"label": 2}, "label"), ({}, "label"), ({"label": 1, "boxes": [[0, 0, 1, 1, 0]]}, "boxes")],
)
def test_bad_labels_are_422_naming_the_field(app, client, db, body, field):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    response = annotate(ann, lease(ann), **body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_detection_boxes_are_checked_box_by_box(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1), kind="detection", box_classes=["cone", "sign"])
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    item_id = lease(ann)
    bad = annotate(ann, item_id, boxes=[[0.1, 0.1, 0.2, 0.2, 1], [0.5, 0.5, 0.4, 0.9, 0]])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "boxes[1]"
    wrong_class = annotate(ann, item_id, boxes=[[0.1, 0.1, 0.2, 0.2, 2]])
    assert wrong_class.json()["errors"][0]["field"] == "boxes[0]"
    good = annotate(ann, item_id, boxes=[[0.1, 0.1, 0.2, 0.2, 1]])
    assert good.status_code == 201 and good.json()["annotation"]["label"] == 1


def test_overlap_two_agreeing_annotators_reach_consensus(two_annotators, db):
    project, ann, bob = two_annotators
    item_id = lease(ann)
    assert annotate(ann, item_id, label=1).json()["item_status"] == "pending"
    assert lease(ann) != item_id  # never the item ann labeled already
    assert lease(bob) == item_id
    assert annotate(bob, item_id, label=1).json()["item_status"] == "done"
    consensus = consensus_for_items(db_session=db, project=project, item_ids=[item_id])[item_id]
    db.commit()
    assert (consensus.label, consensus.source, consensus.votes) == (1, "majority", {1: 2})


def test_overlap_two_tie_goes_to_review(two_annotators, db):
    project, ann, bob = two_annotators
    item_id = lease(ann)
    annotate(ann, item_id, label=1)
    assert lease(bob) == item_id
    assert annotate(bob, item_id, label=0).json()["item_status"] == "review"
    consensus = consensus_for_items(db_session=db, project=project, item_ids=[item_id])[item_id]
    db.commit()
    assert (consensus.label, consensus.source) == (None, "tie")


def test_a_correction_supersedes_and_keeps_the_history(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    item_id = lease(ann)
    first = annotate(ann, item_id, label=1).json()["annotation"]["id"]
    fixed = annotate(ann, item_id, label=0, supersedes=first)
    assert fixed.status_code == 201 and fixed.json()["item_status"] == "done"
    again = annotate(ann, item_id, label=1, supersedes=first)
    assert again.status_code == 409
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    rows = db.execute(select(Annotation.label, Annotation.state).order_by(Annotation.id)).all()
    db.commit()
    assert rows == [(1, "superseded"), (0, "current")]


def test_undo_retracts_keeps_history_and_hands_the_item_back(app, client, db):
    project, _ = seed_project(db, client, spread_scores(2))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    item_id = lease(ann)
    annotation_id = annotate(ann, item_id, label=1).json()["annotation"]["id"]
    undone = ann.post(f"{BASE}/annotations/{annotation_id}/undo")
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["item"]["id"] == item_id and body["lease_expires_at"]
    assert status_of(db, item_id) == "leased"
    assert ann.post(f"{BASE}/annotations/{annotation_id}/undo").status_code == 409
    relabel = annotate(ann, item_id, label=0)
    assert relabel.status_code == 201 and relabel.json()["item_status"] == "done"
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    states = db.execute(select(Annotation.label, Annotation.state).order_by(Annotation.id)).all()
    db.commit()
    assert states == [(1, "retracted"), (0, "current")]


def test_only_your_own_latest_annotation_can_be_undone(two_annotators):
    _, ann, bob = two_annotators
    first_item = lease(ann)
    first = annotate(ann, first_item, label=1).json()["annotation"]["id"]
    second_item = lease(ann)
    annotate(ann, second_item, label=0)
    assert ann.post(f"{BASE}/annotations/{first}/undo").status_code == 409
    assert bob.post(f"{BASE}/annotations/{first}/undo").status_code == 403
