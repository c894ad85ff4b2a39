"""Login, logout, sessions with CSRF, login throttling, admin user management and project membership."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.utils.accounts import PASSWORD, logged_in, make_user
from tests.utils.factories import make_project


def test_login_returns_the_user_a_csrf_token_and_a_session_cookie(app, db):
    make_user(db, "ann")
    client = TestClient(app)
    response = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["username"] == "ann" and body["user"]["role"] == "annotator"
    assert body["csrf_token"]
    assert "hc_session" in response.cookies
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["csrf_token"] == body["csrf_token"]


def test_wrong_password_is_401_naming_the_field(app, db):
    make_user(db, "ann")
    response = TestClient(app).post("/api/v1/auth/login", json={"username": "ann", "password": "nope"})
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == "password"


def test_five_failures_lock_the_username_from_that_client_with_retry_after(app, db):
    make_user(db, "ann")
    client = TestClient(app)
    codes = [
        client.post("/api/v1/auth/login", json={"username": "ann", "password": "bad"}).status_code
        for _ in range(5)
    ]
    assert codes == [401, 401, 401, 401, 429]
    locked = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


def test_logout_ends_the_session(app, db):
    make_user(db, "ann")
    client = logged_in(app, "ann")
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_requests_without_a_session_are_401(client):
    assert client.get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/users").status_code == 401


def test_a_post_without_the_csrf_header_is_403(app, db):
    make_user(db, "ann")
    client = logged_in(app, "ann")
    del client.headers["X-CSRF-Token"]
    response = client.post("/api/v1/auth/logout")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "csrf_token"


def test_annotators_cannot_list_or_create_users(app, db):
    make_user(db, "ann")
    client = logged_in(app, "ann")
    assert client.get("/api/v1/users").status_code == 403
    assert client.post("/api/v1/users", json={"username": "x", "password": "pass"}).status_code == 403


def test_admin_creates_assigns_and_deactivates_users(app, db):
    project = make_project(db)
    make_user(db, "boss", role="admin")
    admin = logged_in(app, "boss")
    created = admin.post(
        "/api/v1/users",
        json={"username": "rev", "password": "rev-pass", "role": "reviewer", "projects": ["roadwork"]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["project_ids"] == [project.id]
    user_id = created.json()["id"]
    assert [u["username"] for u in admin.get("/api/v1/projects/roadwork/members").json()] == ["rev"]
    assert admin.post("/api/v1/users", json={"username": "rev", "password": "xxxx-xxxx"}).status_code == 409
    patched = admin.patch(f"/api/v1/users/{user_id}", json={"role": "annotator", "is_active": False})
    assert patched.status_code == 200 and patched.json()["role"] == "annotator"
    refused = TestClient(app).post("/api/v1/auth/login", json={"username": "rev", "password": "rev-pass"})
    assert refused.status_code == 401


def test_admin_changes_a_password_and_cannot_demote_themselves(app, db):
    boss = make_user(db, "boss", role="admin")
    ann = make_user(db, "ann")
    admin = logged_in(app, "boss")
    assert admin.patch(f"/api/v1/users/{ann.id}", json={"password": "new-pass"}).status_code == 200
    logged_in(app, "ann", password="new-pass")
    demote = admin.patch(f"/api/v1/users/{boss.id}", json={"role": "annotator"})
    assert demote.status_code == 422 and demote.json()["errors"][0]["field"] == "role"


def test_me_lists_only_the_projects_a_user_is_assigned_to(app, db):
    mine = make_project(db, name="mine")
    make_project(db, name="other")
    make_user(db, "ann", project=mine)
    make_user(db, "boss", role="admin")
    assert [p["name"] for p in logged_in(app, "ann").get("/api/v1/auth/me").json()["projects"]] == ["mine"]
    assert [p["name"] for p in logged_in(app, "boss").get("/api/v1/auth/me").json()["projects"]] == [
        "mine",
        "other",
    ]
