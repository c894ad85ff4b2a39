"""Outages answer with a status the client can act on: 503 + Retry-After for the database, a queued job for
the broker; an unexpected error is a 500 that names no exception."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.core import db as app_db
from app.core.config import Settings
from app.jobs.models import QUEUED, Job
from app.main import create_app
from tests.utils.accounts import logged_in, make_user, seed_project
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


@pytest.fixture
def app_without_database(tmp_path, redis_url):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/hardcase",
        broker_url=redis_url,
        secret_key="test-secret",
    )
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


def test_with_the_database_down_requests_get_a_503_with_retry_after(app_without_database):
    client = TestClient(app_without_database)
    for response in (
        client.get("/api/v1/projects", headers={"X-API-Key": "hc_some_key"}),
        client.post("/api/v1/auth/login", json={"username": "admin", "password": "secret-pw"}),
    ):
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) > 0
        assert response.json()["errors"][0]["field"] == "database"
        assert "Error" not in response.text  # no exception class, no driver message


def test_an_unexpected_error_is_a_500_that_names_no_exception(app_without_database):
    @app_without_database.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = TestClient(app_without_database, raise_server_exceptions=False).get("/api/v1/boom")
    assert response.status_code == 500
    assert "RuntimeError" not in response.text and "secret internals" not in response.text
    assert set(response.json()) == {"detail", "errors"}


@pytest.mark.parametrize("broker", ["refusing", "silent"])
def test_creating_a_job_with_the_broker_down_answers_promptly_and_leaves_the_job_for_the_reaper(
    settings, db, silent_server, broker
):
    port = silent_server if broker == "silent" else closed_port()
    app = create_app(settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{port}/0"}))
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, user, 12)
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201
    body = {"kind": "classifier_lora", "dataset_version": 1, "base_model": "builtin:vit-tiny"}
    started = time.monotonic()
    response = admin.post("/api/v1/projects/roadwork/jobs", json=body)
    # Unbounded, a silent broker held the request for minutes and a refusing one for ~20 s.
    assert time.monotonic() - started < 10
    assert response.status_code == 201, response.text
    db.rollback()
    job = db.scalar(select(Job))
    assert (job.status, job.enqueued_at) == (QUEUED, None)
    app.state.engine.dispose()


def test_a_ranking_change_with_the_broker_silent_reranks_in_the_request_instead_of_waiting(
    settings, db, silent_server
):
    app = create_app(settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{silent_server}/0"}))
    make_project(db, "roadwork")
    admin, _ = client_as(app, db, "admin")
    started = time.monotonic()
    response = admin.patch("/api/v1/projects/roadwork", json={"threshold": 0.4})
    assert time.monotonic() - started < 10  # unbounded, a silent broker held the request for minutes
    assert response.status_code == 200, response.text
    assert response.json()["rerank"] == "inline"
    app.state.engine.dispose()


def _kill_the_pooled_connection(app, db) -> None:
    """Ends, from the server's side, the one connection the app's pool holds (requests here run one by one)."""
    with app.state.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    db.commit()


def test_a_pooled_connection_that_sat_idle_is_pinged_and_replaced_when_its_server_side_is_gone(
    app, db, database_url, monkeypatch
):
    """Checkouts ping only connections that sat unused for `PING_IF_IDLE_S` (a ping on every checkout was 0.3 ms
    of every request); such a connection, ended by a database restart while it waited, is replaced before the
    request uses it."""
    if not database_url.startswith("postgresql"):
        return  # SQLite has no server connection to lose
    make_user(db, "idle-one")
    client = logged_in(app, "idle-one")
    assert client.get("/api/v1/auth/me").status_code == 200
    _kill_the_pooled_connection(app, db)
    monkeypatch.setattr(app_db, "PING_IF_IDLE_S", 0.0)  # as if it had waited longer than that
    assert client.get("/api/v1/auth/me").status_code == 200


def test_a_connection_that_died_while_in_use_costs_one_503_and_the_pool_reconnects(
    app, db, database_url, monkeypatch
):
    """The price of not pinging a connection that was in use a moment ago: if it died since, the one request
    that takes it gets a 503 naming no exception, and the next request gets a fresh connection."""
    if not database_url.startswith("postgresql"):
        return  # SQLite has no server connection to lose
    make_user(db, "busy-one")
    client = logged_in(app, "busy-one")
    assert client.get("/api/v1/auth/me").status_code == 200
    monkeypatch.setattr(app_db, "PING_IF_IDLE_S", 3600.0)
    _kill_the_pooled_connection(app, db)
    failed = client.get("/api/v1/auth/me")
    assert failed.status_code == 503 and "psycopg" not in failed.text, failed.text
    assert client.get("/api/v1/auth/me").status_code == 200


def test_every_request_gives_its_connection_back_whether_it_committed_or_only_read(app, db, client):
    """The request's session is made and, when it holds no transaction, closed on the event loop; one still in
    a transaction is rolled back on a worker thread. Either way no connection stays checked out: a lease
    (which commits), a read of the counts and a refused request leave the pool as they found it."""
    project, _ = seed_project(db, client, {"a": {"m1": 0.4, "m2": 0.7}, "b": {"m1": 0.5, "m2": 0.5}})
    make_user(db, "pooled", project=project)
    annotator = logged_in(app, "pooled")
    base = f"/api/v1/projects/{project.name}"
    assert annotator.post(f"{base}/queue/next").status_code == 200
    assert annotator.get(f"{base}/progress").status_code == 200
    assert annotator.get("/api/v1/projects/nowhere/progress").status_code == 404
    assert app.state.engine.pool.checkedout() == 0
