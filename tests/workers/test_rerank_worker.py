"""The full re-rank runs in a real Celery worker process after an admin changes the project's threshold."""

from __future__ import annotations

import redis

from app.queue.models import Hardness
from tests.utils.accounts import (
    item_ids,
    logged_in,
    make_user,
    seed_project,
)
from tests.utils.worker import celery_worker, wait_until


def priority_of(sessions, item_id: int) -> float:
    with sessions() as session:
        return session.get(Hardness, item_id).priority


def test_a_threshold_change_is_reranked_by_the_cpu_worker(app, client, db, sessions, settings, redis_url):
    project, _ = seed_project(
        db, client, {"sure": {"det": 0.97, "clf": 0.99}, "torn": {"det": 0.9, "clf": 0.1}}
    )
    sure = item_ids(db, project)["sure"]
    before = priority_of(sessions, sure)
    make_user(db, "boss", role="admin")
    admin = logged_in(app, "boss")
    redis.Redis.from_url(redis_url).delete("cpu")  # no stale task from another test on this Redis DB
    with celery_worker(settings, queues="cpu", pool="solo"):
        response = admin.patch("/api/v1/projects/roadwork", json={"threshold": 0.97})
        assert response.json()["rerank"] == "queued"
        wait_until(lambda: priority_of(sessions, sure) > before, timeout_s=30, message="re-ranked priority")
