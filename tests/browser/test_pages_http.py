"""The server side of the pages without a browser: redirects, login CSRF, roles and project membership."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.users.service import create_account
from app.web.pages import safe_next
from tests.utils.factories import make_project

PASSWORD = "pages-pass-1"


def login_token(client: TestClient, path: str = "/login") -> str:
    return re.search(r'name="login_token" value="([^"]+)"', client.get(path).text).group(1)


def log_in(client: TestClient, username: str, next_url: str = "/") -> str:
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "login_token": login_token(client),
            "next": next_url,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response.headers["location"]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


ROLES = {"ann": "annotator", "boss": "admin"}


def seed(db, *usernames: str) -> tuple[int, int]:
    """Two projects; `ann` is a member of the first only. Few users: each password hash costs argon2 time."""
    first, second = make_project(db, "alpha"), make_project(db, "beta")
    for username in usernames:
        members = [first.id] if ROLES[username] != "admin" else []
        create_account(
            db_session=db, username=username, password=PASSWORD, role=ROLES[username], project_ids=members
        )
    db.commit()
    return first.id, second.id


def test_a_login_post_without_the_forms_own_token_is_refused(client: TestClient, db) -> None:
    seed(db, "ann")
    response = client.post(
        "/login",
        data={"username": "ann", "password": PASSWORD, "login_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "hc_session" not in response.cookies


def test_login_redirects_only_to_paths_on_this_site() -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "", None, "javascript:x"):
        assert safe_next(target) == "/"
    assert safe_next("/projects/alpha/label?x=1") == "/projects/alpha/label?x=1"


def test_json_api_says_401_while_pages_redirect(client: TestClient, db) -> None:
    seed(db)
    page = client.get("/projects/alpha/label", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fprojects%2Falpha%2Flabel"
    api = client.post("/api/v1/projects/alpha/queue/next")
    assert api.status_code == 401
    assert api.json()["errors"][0]["field"] == "session"


def test_an_annotator_sees_only_their_projects_and_no_admin_page(client: TestClient, db) -> None:
    seed(db, "ann")
    log_in(client, "ann")
    home = client.get("/")
    assert "/projects/alpha/label" in home.text and "/projects/beta/label" not in home.text
    assert "/admin/users" not in home.text
    assert client.get("/projects/alpha/label").status_code == 200
    assert client.get("/projects/beta/label").status_code == 404  # like a project that does not exist
    assert client.get("/projects/nope/label").status_code == 404
    assert client.get("/admin/users").status_code == 403


def test_logout_needs_the_csrf_token(client: TestClient, db) -> None:
    seed(db, "ann")
    log_in(client, "ann")
    assert client.post("/logout", follow_redirects=False).status_code == 403
    token = csrf_of(client.get("/").text)
    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_admin_changes_role_activity_and_membership(client: TestClient, db) -> None:
    alpha, beta = seed(db, "ann", "boss")
    log_in(client, "boss")
    token = csrf_of(client.get("/admin/users").text)
    ann_id = next(u.id for u in _users(db) if u.username == "ann")
    db.rollback()  # end the read transaction: SQLite would keep showing its snapshot
    response = client.post(
        f"/admin/users/{ann_id}",
        data={"csrf_token": token, "role": "reviewer", "project_ids": [str(alpha), str(beta)]},
        follow_redirects=False,
    )
    assert response.status_code == 303
    db.rollback()
    ann = next(u for u in _users(db) if u.username == "ann")
    assert (ann.role, ann.is_active) == ("reviewer", False)
    boss = next(u for u in _users(db) if u.username == "boss")
    refused = client.post(
        f"/admin/users/{boss.id}", data={"csrf_token": token, "role": "annotator", "is_active": "1"}
    )
    assert refused.status_code == 422 and "your own admin role" in refused.text


def test_creating_a_taken_username_shows_the_error(client: TestClient, db) -> None:
    seed(db, "ann", "boss")
    log_in(client, "boss")
    token = csrf_of(client.get("/admin/users").text)
    response = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "ann", "password": "abcd1234", "role": "annotator"},
    )
    assert response.status_code == 422
    assert "exists already" in response.text


def test_a_forged_project_id_on_the_users_page_is_a_422_not_a_500(client: TestClient, db) -> None:
    seed(db, "ann", "boss")
    log_in(client, "boss")
    token = csrf_of(client.get("/admin/users").text)
    ann_id = next(u.id for u in _users(db) if u.username == "ann")
    db.rollback()
    for path, extra in (
        ("/admin/users", {"username": "newbie", "password": "abcd1234"}),
        (f"/admin/users/{ann_id}", {"role": "annotator"}),
    ):
        forged = client.post(path, data={"csrf_token": token, "project_ids": ["999999"], **extra})
        assert forged.status_code == 422 and "no project 999999" in forged.text, path
        huge = client.post(path, data={"csrf_token": token, "project_ids": [str(2**40)], **extra})
        assert huge.status_code == 422, path


def _users(db):
    from app.users.service import list_users

    return list_users(db_session=db)
