"""Ingestion: idempotency, images, per-item errors, auth — on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.core.blobs import sha_from_uri
from app.ingest.models import Item, Prediction
from tests.utils.factories import b64, item, make_key, make_project, png_bytes

URL = "/api/v1/projects/roadwork/predictions"


@pytest.fixture
def key(db) -> str:
    make_project(db)
    return make_key(db)


def post(client, key: str, body, **kwargs):
    return client.post(URL, json=body, headers={"X-API-Key": key}, **kwargs)


def counts(db) -> tuple[int, int]:
    db.rollback()  # end the read snapshot: see what the app committed since
    return db.scalar(select(func.count()).select_from(Item)), db.scalar(
        select(func.count()).select_from(Prediction)
    )


def test_a_batch_creates_items_and_predictions(client, db, key):
    response = post(client, key, {"items": [item("a"), item("b")]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["items_created"], body["predictions_created"], body["errors"]) == (2, 6, [])
    assert counts(db) == (2, 6)


def test_resending_a_batch_creates_no_duplicates(client, db, key):
    batch = {"items": [item("a"), item("b")]}
    post(client, key, batch)
    again = post(client, key, batch).json()
    assert (again["items_created"], again["predictions_created"]) == (0, 0)
    assert counts(db) == (2, 6)


def test_a_new_model_version_adds_a_prediction(client, db, key):
    post(client, key, {"items": [item("a")]})
    newer = item("a", scores={"det": 0.4})
    newer["predictions"][0]["model_version"] = "2"
    body = post(client, key, {"items": [newer]}).json()
    assert body["predictions_created"] == 1
    assert counts(db) == (1, 4)


def test_compact_cascade_form_is_accepted_as_a_probability(client, db, key):
    compact = {
        "external_id": "c",
        "predictions": [
            {"model": "cascade", "confidence": 0.8, "vote_ratio": 0.67, "roadwork_detected": False}
        ],
    }
    assert post(client, key, {"items": [compact]}).status_code == 201
    pred = db.scalar(select(Prediction))
    assert pred.score == pytest.approx(0.2)
    assert pred.extra == {"confidence": 0.8, "vote_ratio": 0.67, "roadwork_detected": False}


def test_base64_image_is_stored_once_by_content_hash(client, db, key, app):
    data = png_bytes(40, 30)
    body = post(
        client,
        key,
        {"items": [item("a", image={"base64": b64(data)}), item("b", image={"base64": b64(data)})]},
    ).json()
    assert body["images_stored"] == 2 and body["errors"] == []
    items = db.scalars(select(Item).order_by(Item.external_id)).all()
    assert {i.sha256 for i in items} == {sha_from_uri(items[0].image_uri)}
    assert (items[0].width, items[0].height) == (40, 30)
    stored = list(app.state.blobs.root.rglob("*"))
    assert len([p for p in stored if p.is_file()]) == 1


def test_multipart_upload_stores_the_image(client, db, key):
    batch = {"items": [item("m", image={"file": "frame.png"})]}
    response = client.post(
        URL,
        headers={"X-API-Key": key},
        data={"batch": json.dumps(batch)},
        files={"frame.png": ("frame.png", png_bytes(10, 12), "image/png")},
    )
    assert response.status_code == 201, response.text
    assert db.scalar(select(Item.height)) == 12


def test_bad_items_are_reported_and_good_items_kept(client, db, key):
    bad_score = item("bad-score", scores={"det": 1.7})
    not_image = item("not-image", image={"base64": b64(b"definitely not a png")})
    response = post(client, key, {"items": [item("good"), bad_score, not_image, item("good")]})
    assert response.status_code == 207
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert set(errors) == {"items[1].predictions[0].score", "items[2].image", "items[3].external_id"}
    assert "duplicate" in errors["items[3].external_id"]
    assert counts(db) == (1, 3)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"[]", 422, "items"),
        (b'{"items": "x"}', 422, "items"),
        (b'{"items": []}', 422, "items"),
        (json.dumps({"items": [item(str(i)) for i in range(51)]}).encode(), 413, "items"),
    ],
)
def test_malformed_batches_get_a_4xx_naming_the_field(client, key, body, status, field):
    response = client.post(URL, content=body, headers={"X-API-Key": key, "content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == field


def test_every_item_rejected_is_a_422_with_reasons(client, db, key):
    response = post(client, key, {"items": [{"external_id": 5}, {"predictions": []}]})
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["items[0].external_id", "items[1].external_id"]
    assert counts(db) == (0, 0)


def test_huge_declared_dimensions_are_refused_before_decoding(client, db, key):
    buffer = io.BytesIO()
    Image.new("L", (2500, 2500)).save(buffer, format="PNG")  # 6.25 MP > the test limit of 4 MP, tiny file
    response = post(client, key, {"items": [item("bomb", image={"base64": b64(buffer.getvalue())})]})
    assert response.status_code == 422
    assert "pixels" in response.json()["errors"][0]["message"]


def test_unknown_project_is_a_404(client, key):
    response = client.post(
        "/api/v1/projects/nope/predictions", json={"items": [item("a")]}, headers={"X-API-Key": key}
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "project"


def test_missing_wrong_revoked_and_unscoped_keys_are_refused(client, db, key):
    assert post(client, "", {"items": [item("a")]}).status_code == 401
    assert post(client, "hc_wrong", {"items": [item("a")]}).status_code == 401
    read_only = make_key(db, scopes=["read"])
    assert post(client, read_only, {"items": [item("a")]}).status_code == 403
    from app.auth.keys import find_active_key, revoke

    revoke(db_session=db, key_id=find_active_key(db_session=db, secret=key).id)
    db.commit()
    assert post(client, key, {"items": [item("a")]}).status_code == 401


def test_a_key_scoped_to_another_project_is_refused_as_if_the_project_did_not_exist(client, db, key):
    other = make_project(db, name="other")
    other_key = make_key(db, project_id=other.id)
    refused = post(client, other_key, {"items": [item("a")]})
    assert refused.status_code == 404 and refused.json()["errors"][0]["field"] == "project"


def test_items_can_be_listed_and_filtered(client, db, key):
    post(
        client,
        key,
        {
            "items": [
                item("day", camera_id="cam-1"),
                item("night", camera_id="cam-2", is_night=True),
                item("only-det", scores={"det": 0.5}, camera_id="cam-2"),
            ]
        },
    )
    headers = {"X-API-Key": key}
    page = client.get(
        "/api/v1/projects/roadwork/items", params={"camera_id": "cam-2"}, headers=headers
    ).json()
    assert {i["external_id"] for i in page["items"]} == {"night", "only-det"} and page["total"] == 2
    night = client.get("/api/v1/projects/roadwork/items", params={"is_night": True}, headers=headers).json()
    assert [i["external_id"] for i in night["items"]] == ["night"]
    vlm = client.get("/api/v1/projects/roadwork/items", params={"model": "vlm"}, headers=headers).json()
    assert vlm["total"] == 2
    one = client.get("/api/v1/projects/roadwork/items/day", headers=headers).json()
    assert sorted(p["model"] for p in one["predictions"]) == ["clf", "det", "vlm"]
    paged = client.get(
        "/api/v1/projects/roadwork/items", params={"limit": 1, "offset": 1}, headers=headers
    ).json()
    assert len(paged["items"]) == 1 and paged["total"] == 3
    assert client.get("/api/v1/projects/roadwork/items/zzz", headers=headers).status_code == 404
    bad = client.get("/api/v1/projects/roadwork/items", params={"limit": 0}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "limit"
