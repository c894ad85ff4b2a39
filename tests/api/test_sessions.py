"""Server-side sessions: logout, a new password and deactivation end a session in every API process."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.auth.sessions import SESSION_COOKIE
from app.main import create_app
from tests.utils.accounts import PASSWORD, logged_in, make_user


def _with_cookie(app, cookie: str) -> TestClient:
    client = TestClient(app)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client


def test_an_old_cookie_no_longer_works_after_logout(app, db):
    make_user(db, "ann")
    client = logged_in(app, "ann")
    cookie = client.cookies[SESSION_COOKIE]
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert _with_cookie(app, cookie).get("/api/v1/auth/me").status_code == 401


def test_logout_in_one_api_process_ends_the_session_in_another(app, settings, db):
    make_user(db, "ann")
    other_process = create_app(settings)
    try:
        client = logged_in(app, "ann")
        cookie = client.cookies[SESSION_COOKIE]
        assert _with_cookie(other_process, cookie).get("/api/v1/auth/me").status_code == 200
        assert client.post("/api/v1/auth/logout").status_code == 204
        assert _with_cookie(other_process, cookie).get("/api/v1/auth/me").status_code == 401
    finally:
        other_process.state.engine.dispose()


def test_logging_out_one_browser_keeps_the_users_other_sessions(app, db):
    make_user(db, "ann")
    laptop, phone = logged_in(app, "ann"), logged_in(app, "ann")
    assert laptop.post("/api/v1/auth/logout").status_code == 204
    assert phone.get("/api/v1/auth/me").status_code == 200


def test_a_new_password_ends_every_session_of_that_user(app, db):
    ann = make_user(db, "ann")
    make_user(db, "bob")
    make_user(db, "boss", role="admin")
    ann_client, bob_client = logged_in(app, "ann"), logged_in(app, "bob")
    admin = logged_in(app, "boss")
    assert admin.patch(f"/api/v1/users/{ann.id}", json={"password": "brand-new-pass"}).status_code == 200
    assert ann_client.get("/api/v1/auth/me").status_code == 401
    assert bob_client.get("/api/v1/auth/me").status_code == 200
    assert logged_in(app, "ann", password="brand-new-pass").get("/api/v1/auth/me").status_code == 200


def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(app, db):
    ann = make_user(db, "ann")
    make_user(db, "boss", role="admin")
    ann_client = logged_in(app, "ann")
    admin = logged_in(app, "boss")
    assert admin.patch(f"/api/v1/users/{ann.id}", json={"is_active": False}).status_code == 200
    assert ann_client.get("/api/v1/auth/me").status_code == 401
    assert admin.patch(f"/api/v1/users/{ann.id}", json={"is_active": True}).status_code == 200
    assert ann_client.get("/api/v1/auth/me").status_code == 401
    assert logged_in(app, "ann").get("/api/v1/auth/me").status_code == 200


def test_a_role_change_leaves_the_session_but_takes_effect_at_once(app, db):
    ann = make_user(db, "ann", role="admin")
    make_user(db, "boss", role="admin")
    ann_client = logged_in(app, "ann")
    assert ann_client.get("/api/v1/users").status_code == 200
    assert (
        logged_in(app, "boss").patch(f"/api/v1/users/{ann.id}", json={"role": "annotator"}).status_code == 200
    )
    assert ann_client.get("/api/v1/users").status_code == 403


def test_a_forged_or_malformed_cookie_is_no_session(app, db):
    make_user(db, "ann")
    cookie = logged_in(app, "ann").cookies[SESSION_COOKIE]
    for bad in ("garbage", cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"), "e30.Zz.Zz"):
        assert _with_cookie(app, bad).get("/api/v1/auth/me").status_code == 401


def _page_login(client: TestClient, username: str) -> None:
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "login_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def test_the_pages_logout_ends_the_session_and_the_login_page_then_shows_the_form(app, db):
    make_user(db, "ann")
    client = TestClient(app)
    _page_login(client, "ann")
    cookie = client.cookies[SESSION_COOKIE]
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    stale = _with_cookie(app, cookie)
    assert stale.get("/", follow_redirects=False).status_code == 303
    login_page = stale.get("/login", follow_redirects=False)
    assert login_page.status_code == 200 and 'name="login_token"' in login_page.text
