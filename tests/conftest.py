"""Shared fixtures: real PostgreSQL and SQLite (every DB test runs on both), real Redis, real Celery workers.

Services are required, never skipped: a missing PostgreSQL or Redis fails the run (`.ci/run` starts them).
Parallel-safe under xdist: each xdist worker gets its own PostgreSQL database, SQLite file and Redis DB number.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth import passwords
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.core.migrate import upgrade
from app.main import create_app
from app.models import Base

PG_ADMIN_URL = os.environ.get("HARDCASE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("HARDCASE_TEST_REDIS_HOST", "127.0.0.1")
BACKENDS = ["sqlite", "postgresql"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def worker_index(config: pytest.Config | None = None) -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") else 0


def redis_url_for_worker() -> str:
    # HARDCASE_TEST_REDIS_DB_OFFSET lets two suites run side by side on one Redis without sharing queues.
    offset = int(os.environ.get("HARDCASE_TEST_REDIS_DB_OFFSET", "0"))
    return f"redis://{REDIS_HOST}:6379/{1 + (offset + worker_index()) % 15}"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL} (start it; see README): {exc}")
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = redis_url_for_worker()
    try:
        redis.Redis.from_url(url, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {url} (start it; see README): {exc}")
    return url


def _create_pg_database(admin_url: str) -> str:
    name = f"hc_test_{worker_index()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_urls(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One migrated database per backend for this xdist worker, built lazily on first use."""
    urls: dict[str, str] = {}
    created_pg: list[str] = []

    def get(backend: str) -> str:
        if backend not in urls:
            if backend == "postgresql":
                admin = request.getfixturevalue("postgres_admin_url")
                url = _create_pg_database(admin)
                created_pg.append(url)
            else:
                url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
            upgrade(url)
            urls[backend] = url
        return urls[backend]

    yield {"get": get}
    for url in created_pg:
        _drop_pg_database(PG_ADMIN_URL, url)


def _empty_all_tables(url: str) -> None:
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, migrated_urls: dict) -> str:
    """A clean, migrated database; tests using it run once on SQLite and once on PostgreSQL."""
    url = migrated_urls["get"](request.param)
    _empty_all_tables(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path, redis_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=redis_url,
        secret_key="test-secret",
        max_batch_items=50,
        max_image_bytes=2_000_000,
        max_image_pixels=4_000_000,
        visibility_timeout_s=30,
        gc_freeze=False,  # a test process builds hundreds of apps: frozen objects would never be freed
    )


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def sessions(settings: Settings):
    """The test's own view of the database; on SQLite it never holds the write lock while it only reads,
    so a test can keep a session open while the app or a worker writes."""
    engine = make_engine(settings.database_url, sqlite_immediate=False)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def db(sessions) -> Iterator[Session]:
    session = sessions()
    yield session
    session.close()


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch):
    """argon2's production cost is deliberate; tests only need correct hashes, not slow ones."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
