"""Worker metrics in prometheus_client's multiprocess mode: served by the worker's own metrics port, and merged
into the API's /metrics when the API shares PROMETHEUS_MULTIPROC_DIR (one machine)."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.factories import make_key
from tests.utils.worker import celery_worker, wait_until
from workers.celery_app import make_celery


def ping_runs(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "hardcase_worker_task_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.labels == {"task": "hardcase.ping", "state": "SUCCESS"}
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_prefork_workers_task_shows_on_its_metrics_port_and_in_the_api_metrics(
    client, db, settings, redis_url, tmp_path, monkeypatch
):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    key = make_key(db, scopes=["metrics"])
    api_metrics = lambda: client.get("/metrics", headers={"X-API-Key": key}).text  # noqa: E731
    assert ping_runs(api_metrics()) == 0
    port = free_port()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "HARDCASE_WORKER_METRICS_PORT": str(port)}
    redis.Redis.from_url(redis_url).delete("cpu")
    token = uuid.uuid4().hex
    with celery_worker(settings, queues="cpu", extra_env=env):
        result = make_celery(settings).send_task("hardcase.ping", args=[token], queue="cpu")
        assert result.get(timeout=30) == f"pong:{token}"
        worker_metrics = lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text  # noqa: E731
        wait_until(
            lambda: ping_runs(worker_metrics()) == 1, timeout_s=15, message="the ping on the worker port"
        )
        wait_until(
            lambda: ping_runs(api_metrics()) == 1, timeout_s=15, message="the ping in the API's /metrics"
        )
    assert list(shared.glob("histogram_*.db"))  # written by the prefork child
    assert "hardcase_http_request_duration_seconds_bucket" in api_metrics()  # the API's own metrics stay
