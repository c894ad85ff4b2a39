"""Worker metrics in prometheus_client's multiprocess mode reach the API's /metrics through the shared dir."""

from __future__ import annotations

import uuid

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.factories import make_key
from tests.utils.worker import celery_worker, wait_until
from workers.celery_app import make_celery


def task_runs(client, key: str) -> float:
    text = client.get("/metrics", headers={"X-API-Key": key}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "hardcase_worker_task_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.labels == {"task": "hardcase.ping", "state": "SUCCESS"}
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_prefork_worker_task_shows_in_the_api_metrics_via_the_multiprocess_dir(
    client, db, settings, redis_url, tmp_path, monkeypatch
):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    key = make_key(db, scopes=["metrics"])
    assert task_runs(client, key) == 0
    redis.Redis.from_url(redis_url).delete("cpu")
    token = uuid.uuid4().hex
    with celery_worker(settings, queues="cpu", extra_env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}):
        result = make_celery(settings).send_task("hardcase.ping", args=[token], queue="cpu")
        assert result.get(timeout=30) == f"pong:{token}"
        wait_until(lambda: task_runs(client, key) == 1, timeout_s=15, message="the ping in /metrics")
    assert list(shared.glob("histogram_*.db"))  # written by the prefork child, read by the API
    text = client.get("/metrics", headers={"X-API-Key": key}).text
    assert "hardcase_http_request_duration_seconds_bucket" in text  # the API's own metrics are still there
