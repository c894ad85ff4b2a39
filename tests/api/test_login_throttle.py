"""Login throttling: shared by all API processes, per IP across usernames and per account+IP, and no
stranger can lock the account holder out."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.models import LoginFailure
from app.auth.throttle import LoginPolicy, record_failure, record_success, retry_after
from app.core.db import utcnow
from app.main import create_app
from tests.utils.accounts import PASSWORD, make_user

LOGIN = "/api/v1/auth/login"


def _client(app, ip: str) -> TestClient:
    return TestClient(app, client=(ip, 40000))


def _login(client: TestClient, username: str, password: str) -> int:
    return client.post(LOGIN, json={"username": username, "password": password}).status_code


def test_a_strangers_failures_do_not_block_the_holders_right_password_from_another_ip(app, db):
    make_user(db, "victim")
    attacker = _client(app, "203.0.113.66")
    assert [_login(attacker, "victim", f"guess-{i}") for i in range(5)] == [401, 401, 401, 401, 429]
    assert _login(attacker, "victim", PASSWORD) == 429  # a right guess from the locked client reveals nothing
    assert _login(_client(app, "198.51.100.7"), "victim", PASSWORD) == 200


def test_thirty_usernames_from_one_ip_are_throttled(app, db):
    make_user(db, "ann")
    sprayer = _client(app, "203.0.113.9")
    codes = [_login(sprayer, f"user{i}", "Winter2026!") for i in range(30)]
    assert codes[:19] == [401] * 19
    assert set(codes[19:]) == {429}
    refused = sprayer.post(LOGIN, json={"username": "ann", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert _login(_client(app, "198.51.100.7"), "ann", PASSWORD) == 200


def test_failures_counted_by_one_api_process_throttle_the_others(app, settings, db):
    make_user(db, "ann")
    other_process = create_app(settings)
    try:
        for _ in range(4):
            assert _login(_client(app, "203.0.113.5"), "ann", "wrong") == 401
        assert _login(_client(other_process, "203.0.113.5"), "ann", "wrong") == 429
        assert _login(_client(other_process, "203.0.113.5"), "ann", PASSWORD) == 429
    finally:
        other_process.state.engine.dispose()


def test_a_successful_login_clears_that_clients_failures_on_the_account(app, db):
    make_user(db, "ann")
    client = _client(app, "198.51.100.7")
    assert [_login(client, "ann", "typo") for _ in range(4)] == [401] * 4
    assert _login(client, "ann", PASSWORD) == 200
    assert [_login(client, "ann", "typo") for _ in range(4)] == [401] * 4


def test_the_page_login_form_is_throttled_by_the_same_record(app, db):
    make_user(db, "ann")
    api = _client(app, "203.0.113.5")
    for _ in range(5):
        _login(api, "ann", "wrong")
    page = _client(app, "203.0.113.5")
    token = page.get("/login").cookies.get("hc_login")
    response = page.post("/login", data={"username": "ann", "password": PASSWORD, "login_token": token})
    assert response.status_code == 429 and "Too many failed attempts" in response.text


POLICY = LoginPolicy(
    ip_max_failures=10,
    ip_window_s=600,
    account_ip_max_failures=3,
    account_ip_window_s=300,
    account_max_failures=4,
    account_window_s=600,
    account_backoff_s=30,
)


def _fail(db, username: str, ip: str, at) -> None:
    record_failure(db_session=db, username=username, client_ip=ip, policy=POLICY, now=at)
    db.commit()


def _wait(db, username: str, ip: str, at) -> int | None:
    return retry_after(db_session=db, username=username, client_ip=ip, policy=POLICY, now=at)


def test_an_account_ip_lockout_ends_one_window_after_the_latest_failure(db):
    start = utcnow()
    for second in range(3):
        _fail(db, "ann", "10.0.0.1", start + timedelta(seconds=second))
    assert _wait(db, "ann", "10.0.0.1", start + timedelta(seconds=2)) == 300
    assert _wait(db, "ANN ", "10.0.0.1", start + timedelta(seconds=2)) == 300  # the same account
    assert _wait(db, "ann", "10.0.0.2", start + timedelta(seconds=2)) is None
    assert _wait(db, "ann", "10.0.0.1", start + timedelta(seconds=302)) is None


def test_the_global_account_cap_backs_off_failing_clients_briefly_and_never_fresh_ones(db):
    start = utcnow()
    for index in range(4):  # a distributed guesser: one failure from each of four addresses
        _fail(db, "ann", f"10.0.1.{index}", start + timedelta(seconds=index))
    now = start + timedelta(seconds=4)
    assert _wait(db, "ann", "10.0.1.3", now) == 29
    assert _wait(db, "ann", "10.0.1.0", now) == 26
    assert _wait(db, "ann", "10.0.9.9", now) is None  # the holder, who has not failed, goes straight in
    assert _wait(db, "ann", "10.0.1.3", start + timedelta(seconds=33)) is None
    assert _wait(db, "bob", "10.0.1.3", now) is None


def test_a_success_forgets_only_that_clients_failures(db):
    start = utcnow()
    for second in range(3):
        _fail(db, "ann", "10.0.0.1", start + timedelta(seconds=second))
        _fail(db, "ann", "10.0.0.2", start + timedelta(seconds=second))
    record_success(db_session=db, username="ann", client_ip="10.0.0.1")
    db.commit()
    now = start + timedelta(seconds=3)
    assert _wait(db, "ann", "10.0.0.1", now) is None
    assert _wait(db, "ann", "10.0.0.2", now) is not None


def test_failures_older_than_every_window_are_deleted(db):
    start = utcnow()
    _fail(db, "ann", "10.0.0.1", start)
    _fail(db, "bob", "10.0.0.2", start + timedelta(seconds=601))
    assert db.scalars(select(LoginFailure.username)).all() == ["bob"]
