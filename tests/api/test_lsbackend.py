"""Hardcase as a Label Studio ML backend, driven by requests shaped as Label Studio 1.23 sends them."""

from __future__ import annotations

import socket

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.models import User
from app.ingest.models import Item
from app.jobs.models import Job
from app.labels.models import Annotation
from app.lsbackend import service as ls_service
from app.lsbackend.predict import task_score
from app.main import create_app
from app.projects.service import get_by_name
from app.queue.models import Hardness
from tests.utils.accounts import item_ids
from tests.utils.factories import b64, item, make_key, make_project, png_bytes
from tests.utils.label_studio import (
    annotation_event,
    basic_auth,
    choice,
    deleted_event,
    ls_annotation,
    ls_project,
    ls_task,
    predict_request,
    rectangle,
    setup_request,
)
from tests.utils.worker import celery_worker, wait_until

LS = "/ls/roadwork"


@pytest.fixture(autouse=True)
def empty_queue(redis_url):
    """Events queued by a test without a worker must not reach a later test's worker."""
    redis.Redis.from_url(redis_url).delete("cpu")
    yield
    redis.Redis.from_url(redis_url).delete("cpu")


@pytest.fixture
def roadwork(db):
    return make_project(db, "roadwork", box_classes=["cone", "sign"])


@pytest.fixture
def ls_key(db, roadwork) -> str:
    """The key Label Studio holds: read + ingest, for this project only."""
    return make_key(db, scopes=["read", "ingest"], project_id=roadwork.id)


def ingest(app, db, items: list[dict]) -> dict[str, int]:
    response = TestClient(app).post(
        "/api/v1/projects/roadwork/predictions", json={"items": items}, headers={"X-API-Key": make_key(db)}
    )
    assert response.status_code == 201, response.text
    return item_ids(db, get_by_name(db_session=db, name="roadwork"))


def photo(external_id: str) -> str:
    return f"https://cams.example/{external_id}.jpg"


# --- connecting ------------------------------------------------------------------------------------------


def test_health_setup_and_versions_answer_label_studio_with_its_basic_auth(app, ls_key):
    client = TestClient(app, headers=basic_auth(ls_key))
    health = client.get(f"{LS}/health")
    assert health.status_code == 200, health.text
    assert health.json() == {
        "status": "UP",
        "model_class": "Hardcase",
        "model_version": "hardcase/roadwork/cascade",
    }
    setup = client.post(f"{LS}/setup", json=setup_request())
    assert setup.status_code == 200 and setup.json() == {"model_version": "hardcase/roadwork/cascade"}
    assert client.get(f"{LS}/versions").json() == {"versions": ["hardcase/roadwork/cascade"]}


def test_the_backend_refuses_a_missing_or_wrong_key_and_a_key_of_another_project(app, db, ls_key):
    other = make_project(db, "other")
    assert TestClient(app).get(f"{LS}/health").status_code == 401
    assert TestClient(app, headers=basic_auth("hc_wrong")).get(f"{LS}/health").status_code == 401
    assert (
        TestClient(app, headers={"Authorization": "Basic !!notbase64"}).get(f"{LS}/health").status_code == 401
    )
    foreign = make_key(db, scopes=["read", "ingest"], project_id=other.id)
    assert TestClient(app, headers=basic_auth(foreign)).get(f"{LS}/health").status_code == 404
    read_only = make_key(db, scopes=["read"], project_id=get_by_name(db_session=db, name="roadwork").id)
    event = {"action": "START_TRAINING", "project": ls_project()}
    assert TestClient(app, headers=basic_auth(read_only)).post(f"{LS}/webhook", json=event).status_code == 403
    # the key as the user name with an empty password, and as a bearer token, work too
    assert TestClient(app, headers=basic_auth("", user=ls_key)).get(f"{LS}/health").status_code == 200
    assert (
        TestClient(app, headers={"Authorization": f"Bearer {ls_key}"}).get(f"{LS}/health").status_code == 200
    )


def test_setup_refuses_a_labeling_config_without_an_image_with_a_422(app, ls_key):
    client = TestClient(app, headers=basic_auth(ls_key))
    for schema in ("<View><Text name='t' value='$text'/></View>", "<View><Image"):
        response = client.post(f"{LS}/setup", json=setup_request(schema))
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "schema"


# --- predictions -----------------------------------------------------------------------------------------


def test_predict_answers_one_prediction_per_task_in_order_and_the_lowest_score_is_the_hardest(
    app, db, ls_key
):
    scores = {f"frame-{i}": {"det": 0.5 + 0.09 * i, "clf": 0.45 + 0.1 * i} for i in range(5)}
    ids = ingest(app, db, [item(name, scores=s) for name, s in scores.items()])
    order = ["frame-3", "frame-0", "frame-4", "unknown", "frame-1", "frame-2"]
    tasks = [ls_task(10 + n, {"photo": photo(name)}) for n, name in enumerate(order)]
    tasks[0]["data"] = {
        "photo": "https://elsewhere.example/x.jpg",
        "external_id": "frame-3",
    }  # the id decides
    response = TestClient(app, headers=basic_auth(ls_key)).post(f"{LS}/predict", json=predict_request(tasks))

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(tasks)
    assert results[3] == {"result": [], "score": 1.0, "model_version": "hardcase/roadwork/cascade"}
    db.expire_all()
    priority = {h.item_id: h.priority for h in db.scalars(select(Hardness))}
    for name, result in zip(order, results, strict=True):
        if name != "unknown":
            assert result["score"] == pytest.approx(task_score(priority[ids[name]]))
    by_label_studio = [
        name for name, r in sorted(zip(order, results, strict=True), key=lambda p: p[1]["score"])
    ]
    hardest_first = sorted(scores, key=lambda name: -priority[ids[name]])
    assert [n for n in by_label_studio if n != "unknown"] == hardest_first
    unsure, sure = (
        results[1]["result"][0],
        results[2]["result"][0],
    )  # frame-0 (0.5, 0.45), frame-4 (0.86, 0.85)
    assert (sure["from_name"], sure["to_name"], sure["type"]) == ("answer", "img", "choices")
    assert sure["value"] == {"choices": ["Positive"]} and sure["score"] > 0.8
    assert unsure["value"] == {"choices": ["Negative"]} and unsure["score"] < 0.55


def test_predicted_boxes_come_in_label_studio_percent_coordinates(app, db, ls_key):
    frame = item("boxed", image={"base64": b64(png_bytes(200, 100))})
    frame["predictions"] = [
        {"model": "yolo", "model_version": "8", "score": 0.9, "boxes": [[0.1, 0.2, 0.5, 0.6, "cone", 0.8]]},
        {"model": "yolo", "model_version": "9", "score": 0.9, "boxes": [[0.2, 0.3, 0.4, 0.9, "sign", 0.7]]},
    ]
    ingest(app, db, [frame])
    tasks = [ls_task(1, {"photo": "/data/upload/7/boxed.png", "external_id": "boxed"})]
    response = TestClient(app, headers=basic_auth(ls_key)).post(f"{LS}/predict", json=predict_request(tasks))

    assert response.status_code == 200, response.text
    regions = response.json()["results"][0]["result"]
    boxes = [r for r in regions if r["type"] == "rectanglelabels"]
    assert len(boxes) == 1  # the latest version of the detector
    box = boxes[0]
    assert (box["from_name"], box["to_name"]) == ("boxes", "img")
    assert (box["original_width"], box["original_height"]) == (200, 100)
    value = box["value"]
    assert (value["x"], value["y"], value["width"], value["height"]) == pytest.approx((20, 30, 20, 60))
    assert value["rectanglelabels"] == ["sign"] and box["score"] == pytest.approx(0.7)


def test_predict_refuses_a_batch_without_tasks_with_a_422(app, ls_key):
    client = TestClient(app, headers=basic_auth(ls_key))
    assert client.post(f"{LS}/predict", json={"project": "7.1"}).status_code == 422
    assert client.post(f"{LS}/predict", json={"tasks": [1, 2]}).status_code == 422


# --- webhooks --------------------------------------------------------------------------------------------


def test_an_event_hardcase_does_not_take_is_acknowledged_and_ignored(app, ls_key):
    client = TestClient(app, headers=basic_auth(ls_key))
    response = client.post(f"{LS}/webhook", json={"action": "TASKS_CREATED", "tasks": [{"id": 1}]})
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "action": "TASKS_CREATED", "outcome": None}
    assert client.post(f"{LS}/webhook", json={"tasks": []}).status_code == 422


def annotations_of(db, username: str) -> list[Annotation]:
    db.rollback()
    db.expire_all()  # the sessions keep objects across commits: read what the worker wrote
    user = db.scalar(select(User).where(User.username == username))
    rows = (
        []
        if user is None
        else list(
            db.scalars(select(Annotation).where(Annotation.annotator_id == user.id).order_by(Annotation.id))
        )
    )
    db.commit()
    return rows


def test_annotations_from_label_studio_webhooks_become_append_only_hardcase_annotations(
    app, db, settings, ls_key
):
    ids = ingest(app, db, [item("frame-1"), item("frame-2")])
    client = TestClient(app, headers=basic_auth(ls_key))
    task = ls_task(21, {"photo": photo("frame-1")})
    created = annotation_event(
        "ANNOTATION_CREATED",
        ls_annotation(501, 21, [choice("Positive"), rectangle(10, 20, 30, 40, "cone")], user_id=3),
        task,
    )
    updated = annotation_event(
        "ANNOTATION_UPDATED", ls_annotation(501, 21, [choice("Negative")], user_id=3), task
    )

    with celery_worker(settings, queues="cpu"):
        answer = client.post(f"{LS}/webhook", json=created)
        assert answer.status_code == 200 and answer.json()["status"] == "queued"  # the worker does the work
        first = wait_until(lambda: annotations_of(db, "ls:3"), 30, message="the created annotation")
        assert [(a.item_id, a.label, a.state) for a in first] == [(ids["frame-1"], 1, "current")]
        assert first[0].boxes == [pytest.approx([0.1, 0.2, 0.4, 0.6, 0])] and first[0].duration_ms == 4200

        client.post(f"{LS}/webhook", json=updated)
        client.post(f"{LS}/webhook", json=updated)  # redelivered: changes nothing
        history = wait_until(lambda: (rows := annotations_of(db, "ls:3")) and len(rows) == 2 and rows, 30)
        client.post(f"{LS}/webhook", json=deleted_event([501]))
        wait_until(lambda: annotations_of(db, "ls:3")[-1].state == "retracted", 30, message="the deletion")

    final = annotations_of(db, "ls:3")
    assert [(a.label, a.state) for a in final] == [(1, "superseded"), (0, "retracted")]
    assert final[1].supersedes_id == history[0].id
    db.rollback()
    author = db.scalar(select(User).where(User.username == "ls:3"))
    assert author.is_active is False  # attribution only: nobody logs in as a Label Studio user
    assert db.get(Hardness, ids["frame-1"]).status == "pending"  # no answer left: back in the queue


def test_start_training_freezes_the_labels_and_queues_the_default_job_through_a_worker(
    app, db, settings, ls_key, roadwork
):
    frames = [item(f"f{i}", image={"base64": b64(png_bytes(color=(i * 20, 0, 0)))}) for i in range(12)]
    ids = ingest(app, db, frames)
    project = get_by_name(db_session=db, name="roadwork")
    for i, name in enumerate(sorted(ids)):
        ls_service.record_answer(
            db_session=db,
            project=project,
            item=db.get(Item, ids[name]),
            ls_annotation_id=900 + i,
            username="ls:1",
            answer=(i % 2, []),
        )
    db.commit()
    client = TestClient(app, headers=basic_auth(ls_key))
    with celery_worker(settings, queues="cpu"):
        response = client.post(f"{LS}/webhook", json={"action": "START_TRAINING", "project": ls_project()})
        assert response.status_code == 200 and response.json()["status"] == "queued"

        def enqueued_job():
            db.rollback()
            db.expire_all()
            found = db.scalar(select(Job).where(Job.project_id == roadwork.id))
            db.commit()
            return found if found is not None and found.enqueued_at is not None else None  # sent to gpu

        queued = wait_until(enqueued_job, 60, message="the training job, handed to the gpu queue")
    assert queued.kind == "classifier_lora" and queued.created_by is None


def test_with_the_broker_down_an_annotation_event_is_recorded_in_the_request(settings, db, ls_key):
    ids = ingest_with_key(settings, db)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens once the probe is closed
    app = create_app(settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{closed}/0"}))
    task = ls_task(31, {"photo": photo("frame-1")})
    event = annotation_event(
        "ANNOTATION_CREATED", ls_annotation(601, 31, [choice("Negative")], user_id=8), task
    )
    response = TestClient(app, headers=basic_auth(ls_key)).post(f"{LS}/webhook", json=event)
    app.state.engine.dispose()

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "handled" and response.json()["outcome"].startswith(
        "annotation created"
    )
    assert [(a.item_id, a.label, a.state) for a in annotations_of(db, "ls:8")] == [
        (ids["frame-1"], 0, "current")
    ]


def ingest_with_key(settings, db) -> dict[str, int]:
    app = create_app(settings)
    try:
        return ingest(app, db, [item("frame-1")])
    finally:
        app.state.engine.dispose()


def test_a_multiclass_project_predicts_the_most_probable_class_as_the_configs_choice(app, db):
    pets = make_project(db, "pets", kind="multiclass", classes=["cat", "dog", "bird"])
    key = make_key(db, scopes=["read", "ingest"], project_id=pets.id)
    frame = item("pet-1", scores={})
    frame["predictions"] = [
        {"model": "a", "score": None, "probs": [0.2, 0.7, 0.1]},
        {"model": "b", "score": None, "probs": [0.3, 0.5, 0.2]},
    ]
    ingested = TestClient(app).post(
        "/api/v1/projects/pets/predictions", json={"items": [frame]}, headers={"X-API-Key": make_key(db)}
    )
    assert ingested.status_code == 201, ingested.text
    config = (
        '<View><Image name="i" value="$img"/><Choices name="pet" toName="i">'
        '<Choice value="Cat"/><Choice value="Dog"/><Choice value="Bird"/></Choices></View>'
    )
    tasks = [ls_task(1, {"img": photo("pet-1")})]
    response = TestClient(app, headers=basic_auth(key)).post(
        "/ls/pets/predict", json=predict_request(tasks, label_config=config)
    )
    assert response.status_code == 200, response.text
    (region,) = response.json()["results"][0]["result"]
    assert (region["from_name"], region["to_name"], region["value"]) == ("pet", "i", {"choices": ["Dog"]})
    assert region["score"] == pytest.approx(0.6)
