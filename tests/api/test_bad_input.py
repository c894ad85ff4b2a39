"""Bad input gets a 4xx naming the field, never a 5xx: NUL and lone surrogates, explicit nulls, deep nesting,
oversized bodies and metadata; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.core.limits import RequestLimits
from app.deps import SessionDep
from app.ingest.models import Item
from app.main import create_app
from tests.utils.factories import item, make_key, make_project
from tests.utils.labeled_data import client_as

PROJECT_FIELDS = [
    "threshold",
    "overlap",
    "strategy",
    "strategy_weights",
    "question",
    "instructions",
    "daily_goal",
]


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize("field", PROJECT_FIELDS)
def test_an_explicit_null_in_a_project_patch_is_a_422_and_the_project_stays_readable(app, db, field):
    make_project(db)
    admin, _ = client_as(app, db, "admin")
    response = admin.patch("/api/v1/projects/roadwork", json={field: None})
    assert response.status_code == 422, response.text
    assert fields_of(response) == [field]
    listed = admin.get("/api/v1/projects", headers={"X-API-Key": make_key(db)})
    assert listed.status_code == 200 and listed.json()[0]["strategy_weights"] == {}


def test_an_omitted_field_keeps_its_value_in_a_project_patch(app, db):
    make_project(db, threshold=0.3)
    admin, _ = client_as(app, db, "admin")
    response = admin.patch("/api/v1/projects/roadwork", json={"overlap": 2})
    assert response.status_code == 200, response.text
    assert (response.json()["overlap"], response.json()["threshold"]) == (2, 0.3)


def test_a_project_stored_with_null_weights_is_still_listed(app, db):
    project = make_project(db)
    db.execute(text("UPDATE projects SET strategy_weights = 'null' WHERE id = :id"), {"id": project.id})
    db.commit()
    admin, _ = client_as(app, db, "admin")
    listed = admin.get("/api/v1/projects", headers={"X-API-Key": make_key(db)})
    assert listed.status_code == 200, listed.text
    assert listed.json()[0]["strategy_weights"] == {}


def test_an_explicit_null_in_a_user_patch_is_a_422_naming_the_field(app, db):
    admin, user = client_as(app, db, "admin")
    response = admin.patch(f"/api/v1/users/{user.id}", json={"role": None})
    assert response.status_code == 422 and fields_of(response) == ["role"]


@pytest.mark.parametrize(
    ("raw", "why"),
    [('"ad\\u0000min"', "NUL"), ('"\\ud800admin"', "surrogate"), ('"admin\\udc00"', "surrogate")],
)
def test_nul_or_a_lone_surrogate_in_a_json_string_is_a_422_naming_the_field(client, raw, why):
    body = f'{{"username": {raw}, "password": "whatever"}}'
    response = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert fields_of(response) == ["username"] and why in response.json()["detail"]


def test_a_surrogate_pair_written_as_escapes_is_valid_text(client, db):
    make_project(db)
    key = make_key(db)
    batch = json.dumps({"items": [item("smile-\U0001f600", note="\U0001f600")]}, ensure_ascii=True)
    assert "\\ud83d\\ude00" in batch
    response = client.post(
        "/api/v1/projects/roadwork/predictions",
        content=batch,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_nul_deep_inside_an_ingest_batch_names_the_item_field(client, db):
    make_project(db)
    key = make_key(db)
    batch = {"items": [item("fine"), item("bad", note="x\x00y")]}
    response = client.post("/api/v1/projects/roadwork/predictions", json=batch, headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert fields_of(response) == ["items[1].metadata.note"]


def test_a_json_key_holding_nul_is_a_422(client, db):
    make_project(db)
    key = make_key(db)
    batch = {"items": [item("bad", **{"no\x00te": 1})]}
    response = client.post("/api/v1/projects/roadwork/predictions", json=batch, headers={"X-API-Key": key})
    assert response.status_code == 422 and fields_of(response) == ["items[0].metadata"]


def test_nul_in_a_query_parameter_is_a_422_naming_it(client, db):
    make_project(db)
    key = make_key(db)
    response = client.get(
        "/api/v1/projects/roadwork/items", params={"camera_id": "cam\x001"}, headers={"X-API-Key": key}
    )
    assert response.status_code == 422 and fields_of(response) == ["camera_id"]


def test_nul_in_a_path_parameter_is_a_422_naming_it(client, db):
    key = make_key(db)
    response = client.get("/api/v1/projects/road%00work/items", headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert fields_of(response) == ["project"]


def test_nul_in_a_form_field_is_a_422_naming_it(client):
    response = client.post("/login", data={"username": "ad\x00min", "password": "x"})
    assert response.status_code == 422 and fields_of(response) == ["username"]


def test_nul_in_a_multipart_text_field_is_a_422_naming_it_while_file_bytes_may_hold_nul(client, db):
    make_project(db)
    key = make_key(db)
    batch = json.dumps({"items": [item("a", image={"file": "f0"}, note="n\x00")]})
    response = client.post(
        "/api/v1/projects/roadwork/predictions",
        data={"batch": batch},
        files={"f0": ("a.bin", b"\x00\x01binary", "application/octet-stream")},
        headers={"X-API-Key": key},
    )
    assert response.status_code == 422 and fields_of(response) == ["items[0].metadata.note"]
    raw = client.post("/login", files={"username": (None, b"ad\x00min"), "password": (None, b"x")})
    assert raw.status_code == 422 and fields_of(raw) == ["username"]


def test_json_nested_past_the_limit_is_refused_before_it_is_parsed(client, app):
    depth = app.state.settings.max_json_depth + 1
    body = '{"username": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert str(app.state.settings.max_json_depth) in response.json()["detail"]
    very_deep = "[" * 100_000 + "]" * 100_000  # would overflow the parser's recursion
    response = client.post(
        "/api/v1/auth/login", content=very_deep, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_brackets_inside_strings_do_not_count_as_nesting(client, db):
    make_project(db)
    key = make_key(db)
    batch = {"items": [item("a", note="[" * 500 + "{" * 500)]}
    response = client.post("/api/v1/projects/roadwork/predictions", json=batch, headers={"X-API-Key": key})
    assert response.status_code == 201, response.text


def test_item_metadata_over_the_limit_is_that_items_error(client, db, app):
    make_project(db)
    key = make_key(db)
    limit = app.state.settings.max_metadata_bytes
    batch = {"items": [item("big", note="x" * (limit + 1)), item("small")]}
    response = client.post("/api/v1/projects/roadwork/predictions", json=batch, headers={"X-API-Key": key})
    assert response.status_code == 207, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "items[0].metadata" and str(limit) in error["message"]


@pytest.fixture
def small_body_client(settings):
    app = create_app(settings.model_copy(update={"max_body_bytes": LIMIT}))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


LIMIT = 64 * 1024


def test_a_body_declared_over_the_limit_is_a_413_naming_the_limit(small_body_client):
    response = small_body_client.post(
        "/api/v1/auth/login", content=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]


def test_a_streamed_body_is_refused_once_it_passes_the_limit_without_reading_the_rest():
    chunk = b" " * 4096
    received = 0
    sent: list[dict] = []

    async def endless_body() -> dict:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    async def never_called(scope, receive, send) -> None:
        raise AssertionError("the route must not run")

    limits = RequestLimits(never_called, max_body_bytes=LIMIT, max_json_depth=32)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/auth/login",
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")],
    }
    asyncio.run(limits(scope, endless_body, send))
    assert sent[0]["status"] == 413
    assert received == LIMIT // len(chunk) + 1
    assert str(LIMIT) in json.loads(sent[1]["body"])["detail"]


@pytest.mark.parametrize("field", ["url", "events", "description", "is_active"])
def test_an_explicit_null_in_a_webhook_patch_is_a_422_naming_the_field(app, db, field):
    make_project(db)
    admin, _ = client_as(app, db, "admin")
    hook = admin.post("/api/v1/projects/roadwork/webhooks", json={"url": "https://hooks.example/x"})
    assert hook.status_code == 201, hook.text
    response = admin.patch(f"/api/v1/projects/roadwork/webhooks/{hook.json()['id']}", json={field: None})
    assert response.status_code == 422 and fields_of(response) == [field]


# Found by the schema fuzzer with more examples (150 a test): `holding: [2**63]` reached the lease statement,
# which runs on the driver's cursor, and PostgreSQL's "bigint out of range" came back as a 500.
BEYOND_ID_RANGE = [
    ("post", "/api/v1/projects/roadwork/queue/next", {"holding": [2**63]}, "holding[0]"),
    ("post", "/api/v1/projects/roadwork/queue/renew", {"item_ids": [2**40]}, "item_ids[0]"),
    (
        "post",
        "/api/v1/projects/roadwork/items/{item}/annotations",
        {"label": 1, "supersedes": 2**40},
        "supersedes",
    ),
    (
        "post",
        "/api/v1/projects/roadwork/jobs",
        {"kind": "distill", "dataset_version": 2**40},
        "dataset_version",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BEYOND_ID_RANGE)
def test_an_id_beyond_the_database_integer_range_in_a_body_is_a_422_naming_it(
    app, db, method, path, body, field
):
    project = make_project(db)
    admin, _ = client_as(app, db, "admin", project=project)
    ingested = admin.post(
        "/api/v1/projects/roadwork/predictions",
        json={"items": [item("a")]},
        headers={"X-API-Key": make_key(db)},
    )
    assert ingested.status_code == 201, ingested.text
    item_id = db.scalar(select(Item.id))
    response = admin.request(method, path.format(item=item_id), json=body)
    assert response.status_code == 422, response.text
    assert fields_of(response) == [field]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite runs nothing on the driver
def test_a_value_the_database_refuses_on_the_driver_cursor_is_a_422_not_a_500(app, db):
    """Statements run on the driver's own cursor (the lease) raise the driver's errors, not SQLAlchemy's."""

    def refused(session: SessionDep) -> dict:
        with session.connection().connection.driver_connection.cursor() as cursor:
            cursor.execute("SELECT %s::int4", [2**40])
        return {}

    app.add_api_route("/api/v1/test-refused", refused, methods=["GET"])
    response = TestClient(app).get("/api/v1/test-refused")
    assert response.status_code == 422, response.text
    assert fields_of(response) == ["body"]
