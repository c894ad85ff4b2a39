"""Webhooks delivered by a real Celery worker to a real HTTP receiver that checks every signature."""

from __future__ import annotations

import redis
from prometheus_client import REGISTRY

from app.jobs.models import Job
from tests.utils.dashboard_data import seed_training
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as
from tests.utils.receiver import webhook_receiver
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training import create_job, tiny_config, tiny_vit  # noqa: F401 - the tiny model fixture
from workers.training import execute_job

HOOKS = "/api/v1/projects/roadwork/webhooks"
FAST_RETRIES = {"HARDCASE_WEBHOOK_RETRY_BASE_S": "0.2", "HARDCASE_WEBHOOK_MAX_ATTEMPTS": "3"}


def finished(admin, hook_id: int, count: int) -> list[dict] | None:
    log = admin.get(f"{HOOKS}/{hook_id}/deliveries").json()
    done = [d for d in log if d["status"] != "pending"]
    return log if len(done) >= count else None


def test_the_worker_retries_a_failing_receiver_signs_every_try_and_logs_each_status(
    app, db, settings, redis_url
):
    project = make_project(db)
    seed_training(db, project)
    db.commit()
    admin, _ = client_as(app, db, "admin")
    redis.Redis.from_url(redis_url).delete("cpu")  # no stale task from another test on this Redis DB
    with (
        webhook_receiver(fail_first=2) as flaky,
        webhook_receiver(fail_first=100) as down,
        celery_worker(settings, queues="cpu", pool="solo", extra_env=FAST_RETRIES),
    ):
        hook = admin.post(HOOKS, json={"url": flaky.url}).json()
        flaky.secret = hook["secret"]
        dead = admin.post(HOOKS, json={"url": down.url, "events": ["model.promoted"]}).json()
        down.secret = dead["secret"]

        assert admin.post(f"{HOOKS}/{hook['id']}/test").status_code == 202
        (test_event,) = wait_until(lambda: finished(admin, hook["id"], 1), timeout_s=60, message="test event")
        assert test_event["status"] == "succeeded" and test_event["event"] == "webhook.test"
        assert [a["status_code"] for a in test_event["attempt_log"]] == [500, 500, 200]
        assert test_event["attempts"] == 3 and test_event["last_status_code"] == 200
        assert [r.answered for r in flaky.received] == [500, 500, 200] and all(
            r.verified for r in flaky.received
        )
        assert {r.headers["X-Hardcase-Delivery"] for r in flaky.received} == {str(test_event["id"])}

        assert admin.post("/api/v1/projects/roadwork/models/2/promote", json={}).status_code == 200
        log = wait_until(lambda: finished(admin, hook["id"], 2), timeout_s=60, message="promotion event")
        promoted = log[0]
        assert promoted["event"] == "model.promoted" and promoted["status"] == "succeeded"
        assert promoted["attempt_log"][0]["status_code"] == 200
        event = flaky.received[-1].event
        assert (
            flaky.received[-1].verified and flaky.received[-1].headers["X-Hardcase-Event"] == "model.promoted"
        )
        assert event["data"]["model"]["version"] == 2 and event["data"]["replaced_version"] == 1

        (gave_up,) = wait_until(
            lambda: finished(admin, dead["id"], 1), timeout_s=60, message="failed delivery"
        )
        assert gave_up["status"] == "failed" and gave_up["attempts"] == 3
        assert [a["status_code"] for a in gave_up["attempt_log"]] == [500, 500, 500]
        assert len(down.received) == 3 and all(r.verified for r in down.received)


def test_a_job_that_fails_on_the_worker_emits_job_finished_and_observes_its_duration(
    app,
    db,
    sessions,
    settings,
    tiny_vit,  # noqa: F811
):
    job_id = create_job(app, db, tiny_vit)
    db.get(Job, job_id).config = {**tiny_config(), "base_model": str(tiny_vit / "missing")}
    admin, _ = client_as(app, db, "admin", username="hooks-admin")
    hook = admin.post(HOOKS, json={"url": "https://ci.example/h", "events": ["job.finished"]}).json()
    db.commit()
    observed = REGISTRY.get_sample_value(
        "hardcase_job_duration_seconds_count", {"kind": "classifier_lora", "status": "failed"}
    )
    assert execute_job(job_id, sessions=sessions, settings=settings, worker_id="w", task_id="t") == "failed"
    (delivery,) = admin.get(f"{HOOKS}/{hook['id']}/deliveries").json()
    job = delivery["payload"]["data"]["job"]
    assert delivery["event"] == "job.finished" and job["id"] == job_id and job["status"] == "failed"
    assert job["error"] and job["duration_s"] >= 0
    assert (
        REGISTRY.get_sample_value(
            "hardcase_job_duration_seconds_count", {"kind": "classifier_lora", "status": "failed"}
        )
        == (observed or 0) + 1
    )
