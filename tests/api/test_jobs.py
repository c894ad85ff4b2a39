"""Job API and the job state machine: validation up front, claims, takeover of stale jobs, the reaper."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from app.core.db import utcnow
from app.datasets.models import DatasetVersion
from app.jobs import service
from app.jobs.cli import watch
from app.jobs.models import CANCELLED, FAILED, QUEUED, RUNNING, Job, JobMetric
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

JOBS = "/api/v1/projects/roadwork/jobs"


def project_with_dataset(app, db):
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, user, 12)
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201
    return project, admin


def first_error(response) -> str:
    return response.json()["errors"][0]["field"]


def queued_job_ids(redis_url: str, queue: str) -> list[int]:
    """Job ids of the run_job messages waiting in a Celery queue on Redis."""
    messages = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange(queue, 0, -1)]
    return [
        int(json.loads(m["headers"]["argsrepr"].replace("(", "[").replace(",)", "]").replace(")", "]"))[0])
        for m in messages
        if m["headers"]["task"] == "hardcase.run_job"
    ]


def test_creating_a_job_stores_it_queued_and_sends_it_to_the_gpu_queue(app, db, redis_url):
    redis.Redis.from_url(redis_url).delete("gpu")
    _, admin = project_with_dataset(app, db)
    body = {
        "kind": "classifier_lora",
        "dataset_version": 1,
        "base_model": "builtin:vit-tiny",
        "config": {"max_steps": 5},
    }
    response = admin.post(JOBS, json=body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["queue"] == "gpu" and job["attempts"] == 0
    assert job["config"] == {"max_steps": 5, "base_model": "builtin:vit-tiny"}
    assert queued_job_ids(redis_url, "gpu") == [job["id"]]
    assert [j["id"] for j in admin.get(JOBS).json()] == [job["id"]]
    assert admin.get(f"/api/v1/jobs/{job['id']}").json()["progress"] == {
        "step": 0,
        "total": 0,
        "fraction": 0.0,
        "eta_s": None,
        "elapsed_s": None,
    }
    redis.Redis.from_url(redis_url).delete("gpu")


def test_job_requests_are_validated_naming_the_field(app, db):
    _, admin = project_with_dataset(app, db)
    cases = [
        ({"kind": "gpt5", "dataset_version": 1}, "kind"),
        ({"kind": "classifier_lora", "dataset_version": 9}, "dataset_version"),
        ({"kind": "classifier_lora", "dataset_version": 1, "config": {"lora_r": 0}}, "config.lora_r"),
        (
            {"kind": "classifier_lora", "dataset_version": 1, "config": {"learning_rate": -1}},
            "config.learning_rate",
        ),
        ({"kind": "classifier_lora", "dataset_version": 1, "config": {"colour": "red"}}, "config.colour"),
        ({"kind": "distill", "dataset_version": 1, "base_model": " "}, "config.student"),
        ({"kind": "classifier_lora"}, "dataset_version"),
    ]
    for body, field in cases:
        response = admin.post(JOBS, json=body)
        assert response.status_code == 422, (body, response.text)
        assert first_error(response) == field, (body, response.json())
    assert admin.get(JOBS).json() == []


def test_only_admins_create_and_cancel_jobs(app, db):
    project, _ = project_with_dataset(app, db)
    job = make_job(db, project)
    reviewer, _ = client_as(app, db, "reviewer", "rev", project=project)
    assert reviewer.post(JOBS, json={"kind": "classifier_lora", "dataset_version": 1}).status_code == 403
    assert reviewer.post(f"/api/v1/jobs/{job.id}/cancel").status_code == 403
    assert reviewer.get("/api/v1/jobs/kinds").status_code == 200


def test_a_job_of_another_project_is_not_found_for_its_non_members(app, db):
    project, _ = project_with_dataset(app, db)
    job = make_job(db, project)
    outsider, _ = client_as(app, db, "annotator", "outsider")
    member, _ = client_as(app, db, "annotator", "member", project=project)
    for path in (f"/api/v1/jobs/{job.id}", f"/api/v1/jobs/{job.id}/events?max_s=0.1"):
        assert outsider.get(path).status_code == 404, path
        assert member.get(path).status_code == 200, path
    hidden, missing = outsider.get(f"/api/v1/jobs/{job.id}").json(), outsider.get("/api/v1/jobs/999").json()
    assert hidden["detail"] == f"no job {job.id}" and missing["detail"] == "no job 999"


def test_kinds_list_every_config_field_with_its_help(app, db):
    client, _ = client_as(app, db, "annotator")
    kinds = {k["name"]: k for k in client.get("/api/v1/jobs/kinds").json()}
    assert {"classifier_lora", "distill", "yolo", "vlm_sft", "vlm_dpo"} <= set(kinds)
    lora = {f["name"]: f for f in kinds["classifier_lora"]["config_fields"]}
    assert lora["lora_r"]["default"] == 8 and lora["lora_r"]["help"]
    assert kinds["classifier_lora"]["base_model_field"] == "base_model"
    assert kinds["vlm_sft"]["base_model_field"] == "model_name_or_path"


def make_job(db, project, **fields) -> Job:
    job = Job(project_id=project.id, kind="classifier_lora", dataset_version_id=1, config={}, **fields)
    db.add(job)
    db.commit()
    return job


def test_cancelling_a_queued_job_finishes_it_and_a_finished_job_cannot_be_cancelled(app, db):
    project, admin = project_with_dataset(app, db)
    job = make_job(db, project)
    response = admin.post(f"/api/v1/jobs/{job.id}/cancel")
    assert response.json()["status"] == "cancelled"
    again = admin.post(f"/api/v1/jobs/{job.id}/cancel")
    assert again.status_code == 409 and first_error(again) == "status"
    assert admin.post("/api/v1/jobs/999/cancel").status_code == 404


def test_a_queued_job_is_claimed_once_and_a_duplicate_delivery_backs_off(app, db, settings):
    project, _ = project_with_dataset(app, db)
    job = make_job(db, project)
    first = service.claim_job(db_session=db, job_id=job.id, worker_id="w1", task_id="t1", settings=settings)
    second = service.claim_job(db_session=db, job_id=job.id, worker_id="w2", task_id="t2", settings=settings)
    db.refresh(job)
    assert (first.reason, second.reason) == ("claimed", "duplicate")
    assert (job.status, job.attempts, job.worker_id) == (RUNNING, 1, "w1")


def test_a_job_with_a_stale_heartbeat_is_taken_over_and_counts_an_attempt(app, db, settings):
    project, _ = project_with_dataset(app, db)
    stale = utcnow() - timedelta(seconds=service.stale_after_s(settings) + 5)
    job = make_job(db, project, status=RUNNING, attempts=1, worker_id="dead", heartbeat_at=stale)
    claim = service.claim_job(db_session=db, job_id=job.id, worker_id="w2", task_id="t2", settings=settings)
    db.refresh(job)
    assert claim.reason == "takeover"
    assert (job.attempts, job.worker_id, job.celery_task_id) == (2, "w2", "t2")
    assert not service.beat(db_session=db, job_id=job.id, worker_id="dead")
    assert service.beat(db_session=db, job_id=job.id, worker_id="w2")


def test_a_job_out_of_attempts_fails_with_a_clear_error_instead_of_running_again(app, db, settings):
    project, _ = project_with_dataset(app, db)
    stale = utcnow() - timedelta(hours=1)
    job = make_job(
        db, project, status=RUNNING, attempts=3, max_attempts=3, worker_id="dead", heartbeat_at=stale
    )
    claim = service.claim_job(db_session=db, job_id=job.id, worker_id="w", task_id="t", settings=settings)
    db.refresh(job)
    assert claim.reason == "gave_up" and job.status == FAILED
    assert "gave up after 3 attempts" in job.error


def test_the_reaper_resends_abandoned_jobs_fails_exhausted_ones_and_kills_ignored_cancels(app, db, settings):
    project, _ = project_with_dataset(app, db)
    now = utcnow()
    stale = now - timedelta(seconds=service.stale_after_s(settings) + 5)
    lost = make_job(
        db, project, status=RUNNING, attempts=1, heartbeat_at=stale, enqueued_at=stale - timedelta(minutes=5)
    )
    exhausted = make_job(db, project, status=RUNNING, attempts=3, max_attempts=3, heartbeat_at=stale)
    stubborn = make_job(
        db,
        project,
        status=RUNNING,
        attempts=1,
        heartbeat_at=now,
        celery_task_id="task-9",
        cancel_requested_at=now - timedelta(minutes=5),
    )
    healthy = make_job(db, project, status=RUNNING, attempts=1, heartbeat_at=now, enqueued_at=now)
    forgotten = make_job(db, project, status=QUEUED, enqueued_at=now - timedelta(hours=2))
    fresh = make_job(db, project, status=QUEUED, enqueued_at=now)
    sent, revoked = [], []

    def enqueue(job):
        sent.append(job.id)
        return f"task-for-{job.id}"

    report = service.reap_jobs(db_session=db, settings=settings, enqueue=enqueue, revoke=revoked.append)
    assert sorted(sent) == sorted(report.requeued) == [lost.id, forgotten.id]
    assert report.failed == [exhausted.id] and report.killed == [stubborn.id] and revoked == ["task-9"]
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    assert db.get(Job, stubborn.id).status == CANCELLED
    assert db.get(Job, healthy.id).status == RUNNING and db.get(Job, fresh.id).status == QUEUED
    again = service.reap_jobs(db_session=db, settings=settings, enqueue=enqueue, revoke=revoked.append)
    assert again.requeued == []  # one re-send per stall, not one per reap


def test_progress_reports_an_eta_from_this_attempts_pace(app, db):
    project, _ = project_with_dataset(app, db)
    now = utcnow()
    job = make_job(
        db,
        project,
        status=RUNNING,
        progress_step=60,
        progress_total=100,
        attempt_first_step=41,
        started_at=now - timedelta(seconds=20),
        heartbeat_at=now,
    )
    progress = service.progress_of(job, now)
    assert progress.fraction == 0.6
    assert abs(progress.eta_s - 40.0) < 1e-6  # 20 steps in 20 s since the resume at step 40


def test_events_stream_progress_metrics_and_the_end_of_a_finished_job(app, db):
    project, admin = project_with_dataset(app, db)
    job = make_job(db, project, status="succeeded", progress_step=4, progress_total=4)
    db.add_all([JobMetric(job_id=job.id, step=s, name="train_loss", value=1.0 / s) for s in (2, 4)])
    db.commit()
    with admin.stream("GET", f"/api/v1/jobs/{job.id}/events?interval_s=0.1") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == ["metrics", "progress", "end"]
    metrics = json.loads(events[0][1].removeprefix("data: "))
    assert [(m["step"], m["value"]) for m in metrics] == [(2, 0.5), (4, 0.25)]
    detail = admin.get(f"/api/v1/jobs/{job.id}").json()
    assert detail["metrics"] == {"train_loss": [[2, 0.5], [4, 0.25]]}
    assert detail["latest_metrics"] == {"train_loss": 0.25}


def test_jobs_watch_prints_a_progress_bar_and_the_outcome(app, db, sessions):
    project, _ = project_with_dataset(app, db)
    job = make_job(db, project, status="succeeded", progress_step=4, progress_total=4)
    db.add(JobMetric(job_id=job.id, step=4, name="val_mcc", value=0.75))
    db.commit()
    out = io.StringIO()
    assert watch(job.id, interval_s=0.01, out=out, sessions=sessions) == "succeeded"
    assert f"[{'#' * 30}] 4/4 100%" in out.getvalue() and "val_mcc=0.75 succeeded" in out.getvalue()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"method": "dino"}, "config.method"),
        ({"max_steps": "many"}, "config.max_steps"),
        ({"base_model": 7}, "config.base_model"),
        ({"batch_size": 1}, "config.batch_size"),
        ({"min_scale": 0}, "config.min_scale"),
        ({"base_model": "builtin:vit-tiny", "image_size": 64}, "config.image_size"),
        ({"image_size": 32}, "config.image_size"),  # builtin:vit-small, the default, takes 64 px
    ],
)
def test_a_pretrain_job_that_could_not_run_is_refused_naming_the_field(app, db, config, field):
    """Knobs the worker would reject (unknown method, a batch no contrastive loss can use, a size the built-in
    ViT's position embeddings do not fit) are a 422 at submission, and nothing is queued."""
    _, admin = project_with_dataset(app, db)
    response = admin.post(JOBS, json={"kind": "pretrain", "dataset_version": 1, "config": config})
    assert response.status_code == 422, response.text
    assert first_error(response) == field
    assert admin.get(JOBS).json() == []


def test_pretrain_needs_a_binary_project_with_both_classes_in_train_and_val(app, db):
    """Its linear probe (what the registry scores) needs both classes labeled in train and val; a dataset
    without them is refused at submission naming dataset_version, with the defaults otherwise accepted."""
    project, admin = project_with_dataset(app, db)
    accepted = admin.post(JOBS, json={"kind": "pretrain", "dataset_version": 1})
    assert accepted.status_code == 201, accepted.text
    version = db.scalar(select(DatasetVersion).where(DatasetVersion.project_id == project.id))
    version.stats = {
        **version.stats,
        "split_classes": {"train": {"negative": 3, "positive": 4}, "val": {"positive": 2}},
    }
    db.commit()
    refused = admin.post(JOBS, json={"kind": "pretrain", "dataset_version": 1})
    assert refused.status_code == 422 and first_error(refused) == "dataset_version"
    assert "negative" in refused.json()["errors"][0]["message"]
