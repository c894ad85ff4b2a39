"""What the label page relies on: binary answers that carry boxes by class name, failed submits that keep the
lease, leases that follow the page (reclaim, heartbeat, release beacon), progress toward a goal, the key map."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import select, update

from app.core.blobs import BlobStore
from app.core.db import utcnow
from app.demo import seed_demo
from app.labels.models import Annotation
from app.projects.models import Project
from app.projects.service import BOX_CLASS_KEYS, get_by_name, key_scheme
from app.queue.models import Hardness
from app.queue.ranking import rerank_project
from app.queue.service import item_payload
from tests.utils.accounts import item_ids, logged_in, make_user, seed_project, spread_scores
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

BASE = "/api/v1/projects/roadwork"
BOX_CLASSES = ["cone", "barrier", "sign"]
CONE = [0.1, 0.2, 0.3, 0.5]


def lease(user, holding: list[int] | None = None) -> int | None:
    response = user.post(f"{BASE}/queue/next", json=None if holding is None else {"holding": holding})
    assert response.status_code in (200, 204), response.text
    return response.json()["item"]["id"] if response.status_code == 200 else None


def annotate(user, item_id: int, **body):
    return user.post(f"{BASE}/items/{item_id}/annotations", json=body)


def hardness(db, item_id: int) -> Hardness:
    db.rollback()  # see what the app committed
    row = db.get(Hardness, item_id)
    db.commit()
    return row


@pytest.fixture
def boxed(app, client, db):
    """A binary roadwork project whose yes is justified by boxes, and an annotator on it."""
    project, _ = seed_project(db, client, spread_scores(3), box_classes=BOX_CLASSES)
    make_user(db, "ann", project=project)
    return project, logged_in(app, "ann")


def test_a_yes_on_a_binary_project_with_box_classes_keeps_its_boxes_matched_by_class_name(boxed, db):
    _, ann = boxed
    item_id = lease(ann)
    response = annotate(ann, item_id, label=1, boxes=[[*CONE, "barrier"], [0.5, 0.5, 0.6, 0.7, 2]])
    assert response.status_code == 201, response.text
    assert [box[4] for box in response.json()["annotation"]["boxes"]] == [1, 2]
    db.rollback()
    stored = db.scalar(select(Annotation).where(Annotation.item_id == item_id))
    db.commit()
    assert [BOX_CLASSES[box[4]] for box in stored.boxes] == ["barrier", "sign"]


def test_a_no_with_boxes_is_refused_and_the_lease_is_kept(boxed, db):
    _, ann = boxed
    item_id = lease(ann)
    response = annotate(ann, item_id, label=0, boxes=[[*CONE, "cone"]])
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "boxes" and "cannot carry boxes" in error["message"]
    row = hardness(db, item_id)
    assert (row.status, row.lease_owner is not None) == ("leased", True)
    assert annotate(ann, item_id, label=1, boxes=[[*CONE, "cone"]]).status_code == 201


def test_an_unknown_box_class_is_422_naming_the_class_and_the_known_ones(boxed):
    _, ann = boxed
    response = annotate(ann, lease(ann), label=1, boxes=[[*CONE, "traffic_cone"]])
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "boxes[0]"
    assert "'traffic_cone'" in error["message"] and "cone, barrier, sign" in error["message"]


def test_a_binary_project_without_box_classes_refuses_boxes_with_a_reason(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    response = annotate(ann, lease(ann), label=1, boxes=[[*CONE, 0]])
    assert response.status_code == 422
    assert "declares no box classes" in response.json()["errors"][0]["message"]


def test_after_a_failed_submit_the_holder_gets_its_item_back_not_a_204(boxed):
    _, ann = boxed
    held = [lease(ann) for _ in range(3)]
    assert annotate(ann, held[0], label=0, boxes=[[*CONE, "cone"]]).status_code == 422
    assert lease(ann, holding=[]) == held[0]  # a reloaded page: the hardest item it holds, not "empty"
    assert lease(ann, holding=held) is None  # the page that holds them all is told the pool is empty


def test_leases_left_by_a_closed_page_go_back_to_the_same_user_first(boxed, app, db):
    project, ann = boxed
    make_user(db, "bob", project=project)
    bob = logged_in(app, "bob")
    closed_tab = lease(ann)
    bobs = lease(bob)
    new_page = lease(ann, holding=[])
    assert new_page == closed_tab
    assert lease(ann, holding=[new_page]) not in (closed_tab, bobs)
    progress = ann.get(f"{BASE}/progress").json()
    assert progress["leased"] == 3 and progress["leased_by_others"] == 1


def test_the_heartbeat_renews_own_leases_and_reports_lost_ones(boxed, app, db):
    project, ann = boxed
    make_user(db, "bob", project=project)
    bob = logged_in(app, "bob")
    mine, theirs = lease(ann), lease(bob)
    soon = utcnow() + timedelta(seconds=5)
    db.execute(update(Hardness).where(Hardness.item_id == mine).values(lease_expires_at=soon))
    db.commit()
    response = ann.post(f"{BASE}/queue/renew", json={"item_ids": [mine, theirs]})
    assert response.status_code == 200, response.text
    assert (response.json()["renewed"], response.json()["lost"]) == ([mine], [theirs])
    row = hardness(db, mine)
    assert row.lease_expires_at.replace(tzinfo=None) > soon.replace(tzinfo=None) + timedelta(seconds=30)


def test_the_release_beacon_is_a_form_post_with_the_csrf_field(boxed, app, db):
    project, ann = boxed
    make_user(db, "bob", project=project)
    bob = logged_in(app, "bob")
    first, second, theirs = lease(ann), lease(ann), lease(bob)
    token = ann.headers.pop("X-CSRF-Token")
    without_token = ann.post(f"{BASE}/queue/release", data={"item_ids": f"{first}"})
    assert without_token.status_code == 403
    response = ann.post(
        f"{BASE}/queue/release", data={"item_ids": f"{first},{second},{theirs}", "csrf_token": token}
    )
    assert response.status_code == 200, response.text
    assert response.json()["released"] == sorted([first, second])
    assert [hardness(db, i).status for i in (first, second, theirs)] == ["pending", "pending", "leased"]
    bad = ann.post(f"{BASE}/queue/release", data={"item_ids": "1,x", "csrf_token": token})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "item_ids"


def test_instructions_and_daily_goal_are_set_on_create_and_patch_and_shown_in_progress(app, client, db):
    make_user(db, "root", role="admin")
    root = logged_in(app, "root")
    created = root.post(
        "/api/v1/projects", json={"name": "signs", "instructions": "Box *every* sign.", "daily_goal": 40}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["instructions"], created.json()["daily_goal"]) == ("Box *every* sign.", 40)
    patched = root.patch("/api/v1/projects/signs", json={"daily_goal": 0, "instructions": "## Rules"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["daily_goal"], patched.json()["instructions"]) == (0, "## Rules")
    assert root.patch("/api/v1/projects/signs", json={"daily_goal": -1}).status_code == 422
    assert root.get("/api/v1/projects/signs/progress").json()["daily_goal"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"box_classes": ["cone", "cone"]}, "box_classes"),
        ({"kind": "multiclass", "classes": ["a", "b", "c"], "box_classes": ["cone"]}, "box_classes"),
        ({"classes": ["a", "b", "c"]}, "classes"),
    ],
)
def test_projects_whose_classes_the_page_could_not_offer_are_422(app, db, fields, field):
    make_user(db, "root", role="admin")
    response = logged_in(app, "root").post("/api/v1/projects", json={"name": "odd", **fields})
    assert response.status_code == 422
    assert field in str(response.json())


def test_the_key_scheme_gives_answers_digits_and_box_classes_letters_only(db):
    boxed = make_project(db, "boxed", box_classes=[f"c{i}" for i in range(12)])
    plain = make_project(db, "plain")
    many = make_project(db, "many", kind="multiclass", classes=[f"k{i}" for i in range(11)])
    scheme = key_scheme(boxed)
    answer_keys = {key for answer in scheme["answers"] for key in answer["keys"]}
    box_keys = [c["key"] for c in scheme["box_classes"]]
    assert answer_keys == {"1", "2", "y", "n"}
    assert len(set(box_keys)) == 12 and all(k.isalpha() for k in box_keys)
    assert not set(box_keys) & (answer_keys | set(scheme["actions"].values()))
    assert set(BOX_CLASS_KEYS).isdisjoint(scheme["actions"].values())
    assert key_scheme(plain)["boxes"] is False and key_scheme(plain)["box_classes"] == []
    assert [a["keys"] for a in key_scheme(many)["answers"]][8:] == [["9"], [], []]


def test_box_disagreement_ranks_a_binary_project_between_its_detectors_only(client, db):
    project = make_project(db, box_classes=["cone"])
    key = make_key(db)
    cone, elsewhere = [*CONE, "cone", 0.9], [0.6, 0.6, 0.9, 0.9, "cone", 0.8]

    def frame(name, yolo, rtdetr):
        return {
            "external_id": name,
            "image": {"url": f"https://cams.example/{name}.jpg"},
            "predictions": [
                {"model": "yolo", "score": 0.9, "boxes": yolo},
                {"model": "rtdetr", "score": 0.9, "boxes": rtdetr},
                {"model": "vit", "score": 0.9},  # a classifier: no boxes, no say on boxes
            ],
        }

    batch = [frame("torn", [cone], [elsewhere]), frame("same", [cone], [cone]), frame("missed", [cone], [])]
    response = client.post(f"{BASE}/predictions", json={"items": batch}, headers={"X-API-Key": key})
    assert response.status_code == 201, response.text
    ids = item_ids(db, project)
    scores = {name: db.get(Hardness, ids[name]).box_disagreement for name in ids}
    db.commit()
    assert scores == {"torn": 1.0, "same": 0.0, "missed": 1.0}
    shown = item_payload(db_session=db, project=db.get(Project, project.id), item_id=ids["same"])
    db.commit()
    assert not any("boxes disagree" in reason for reason in shown["hardness"]["reasons"])


def test_one_labeling_pass_feeds_the_detector_export_of_a_binary_project(app, db):
    project = make_project(db, box_classes=["cone", "barrier"])
    client, reviewer = client_as(app, db, "reviewer", project=project)
    items = seed_labeled_items(db, BlobStore(app.state.settings.resolved_blob_dir), project, reviewer, 20)
    rerank_project(db_session=db, project=project)  # queue rows for the items seeded without ingest
    positive = next(i for i in items if i.meta["truth"] == 1)
    first = db.scalar(select(Annotation.id).where(Annotation.item_id == positive.id))
    db.commit()
    corrected = client.post(
        f"{BASE}/items/{positive.id}/annotations",
        json={"label": 1, "boxes": [[0.1, 0.2, 0.3, 0.6, "barrier"]], "supersedes": first},
    )
    assert corrected.status_code == 201, corrected.text
    assert client.post(f"{BASE}/datasets", json={}).status_code == 201
    yolo = zipfile.ZipFile(io.BytesIO(client.get(f"{BASE}/datasets/1/export?format=yolo").content))
    [label_file] = [n for n in yolo.namelist() if n.endswith(f"/{positive.id}.txt")]
    assert yolo.read(label_file).decode().split()[0] == "1"
    [data_yaml] = [n for n in yolo.namelist() if n.endswith("data.yaml")]
    assert yaml.safe_load(yolo.read(data_yaml))["names"] == {0: "cone", 1: "barrier"}
    coco = zipfile.ZipFile(io.BytesIO(client.get(f"{BASE}/datasets/1/export?format=coco").content))
    boxes = [
        (ann, json.loads(coco.read(n)))
        for n in coco.namelist()
        if n.endswith(".json")
        for ann in json.loads(coco.read(n))["annotations"]
        if ann["image_id"] == positive.id
    ]
    [(ann, doc)] = boxes
    assert {c["id"]: c["name"] for c in doc["categories"]}[ann["category_id"]] == "barrier"


def test_the_demo_takes_a_yes_with_the_detectors_named_boxes(app, settings, db):
    seed_demo(settings, limit=30)
    project = get_by_name(db_session=db, name="roadwork")
    assert "cone" in project.box_classes and "traffic_cone" not in project.box_classes
    assert all(c["key"] for c in key_scheme(project)["box_classes"])
    db.commit()
    annotator = logged_in(app, "annotator", os.environ.get("HARDCASE_DEMO_PASSWORD", "annotator"))
    for _ in range(30):
        leased = annotator.post("/api/v1/projects/roadwork/queue/next").json()["item"]
        boxes = [b for p in leased["predictions"] for b in p["boxes"]]
        if boxes:
            break
        annotator.post(f"/api/v1/projects/roadwork/queue/{leased['id']}/skip")
    assert boxes and all(isinstance(b[4], str) for b in boxes)  # the cascade names its classes
    response = annotator.post(
        f"/api/v1/projects/roadwork/items/{leased['id']}/annotations",
        json={"label": 1, "boxes": [b[:5] for b in boxes]},
    )
    assert response.status_code == 201, response.text
    saved = response.json()["annotation"]["boxes"]
    assert [project.box_classes[b[4]] for b in saved] == [b[4] for b in boxes]


def test_the_heartbeat_takes_back_a_lapsed_lease_nobody_else_took(boxed, db):
    _, ann = boxed
    mine = lease(ann)
    lapsed = utcnow() - timedelta(seconds=5)
    db.execute(update(Hardness).where(Hardness.item_id == mine).values(lease_expires_at=lapsed))
    db.commit()
    response = ann.post(f"{BASE}/queue/renew", json={"item_ids": [mine]})
    assert (response.json()["renewed"], response.json()["lost"]) == ([mine], [])
    row = hardness(db, mine)
    assert (row.status, row.lease_owner is not None) == ("leased", True)


def test_the_label_page_offers_only_what_the_project_takes(app, db):
    classes = ["car", "truck", "bus"]
    many = make_project(
        db, "vehicles", kind="multiclass", classes=classes, instructions="<b>hi</b> **there**"
    )
    plain = make_project(db, "plain")
    for project in (many, plain):
        make_user(db, f"ann-{project.name}", project=project)
    page = logged_in(app, "ann-vehicles").get("/projects/vehicles/label").text
    assert [f'aria-keyshortcuts="{i}"' in page for i in (1, 2, 3)] == [True, True, True]
    assert "box-layer" not in page and "boxes.js" not in page
    assert "&lt;b&gt;hi&lt;/b&gt; <strong>there</strong>" in page
    plain_page = logged_in(app, "ann-plain").get("/projects/plain/label").text
    assert "box-layer" not in plain_page and 'aria-keyshortcuts="n 1"' in plain_page
    assert "<script>" not in plain_page.split('id="label-config">')[1].split("</script>")[0]
