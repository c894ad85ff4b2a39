"""Retraining policies and loop runs on both databases: the policy validates its jobs as a submission does;
labels start a run that freezes, trains (a stand-in worker registers chosen scores) and decides: a better model is
promoted (model.promoted, reversible), a worse one rejected with its reason, a night-slice regression held."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.core.db import utcnow
from app.datasets.models import DatasetItem, DatasetVersion, HoldoutItem
from app.jobs.models import Job
from app.loop import flows, service
from app.loop.models import LoopRun, RetrainingPolicy
from app.projects.models import Project
from app.registry.models import ModelVersion, StageChange
from app.webhooks.models import WebhookDelivery
from tests.utils.dashboard_data import drift_alarm
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items
from tests.utils.loop import finish_run_jobs, fix_holdout, policy_body

API = "/api/v1/projects/roadwork"


def advance(app, run_id: int) -> str:
    with app.state.sessionmaker() as session:
        return flows.advance_run(
            db_session=session, run_id=run_id, settings=app.state.settings, send_job=lambda job: f"t-{job.id}"
        )


def sweep_triggers(app) -> LoopRun | None:
    with app.state.sessionmaker() as session:
        run = service.fire_triggers(db_session=session, project=session.scalar(select(Project)))
        session.commit()
        return run.id if run is not None else None


def run_of(db, run_id: int) -> LoopRun:
    db.rollback()  # end the read snapshot (SQLite keeps one per transaction)
    db.expire_all()
    return db.get(LoopRun, run_id)


def test_a_policy_is_validated_like_a_job_submission_and_members_read_it(app, db):
    project = make_project(db, "roadwork")
    admin, _ = client_as(app, db, "admin")
    member, _ = client_as(app, db, "annotator", project=project)
    assert admin.get(f"{API}/policy").status_code == 404
    cases = [
        ({"jobs": [{"kind": "nope"}]}, "jobs.0.kind"),
        ({"jobs": [{"kind": "classifier_lora", "base_model": "no/such-model"}]}, "jobs.0.base_model"),
        ({"jobs": [{"kind": "classifier_lora", "config": {"max_steps": -1}}]}, "jobs.0.config.max_steps"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "* *"}, "schedule"),
        ({"schedule": "1,2,,3 * * * *"}, "schedule"),
        ({"schedule": "0 0 31 2 *"}, "schedule"),
        ({"jobs": []}, "jobs"),
        ({"slice_tolerance": -1}, "slice_tolerance"),
    ]
    for change, field in cases:
        response = admin.put(f"{API}/policy", json=policy_body(**change))
        assert response.status_code == 422, (change, response.text)
        assert field in {e["field"] for e in response.json()["errors"]}, (field, response.json())
    body = policy_body(
        schedule="0 3 * * 1", jobs=[{"kind": "classifier_lora", "base_model": "registry:production"}]
    )
    saved = admin.put(f"{API}/policy", json=body)
    assert saved.status_code == 200, saved.text
    read = member.get(f"{API}/policy").json()
    assert read["schedule"] == "0 3 * * 1" and read["jobs"][0]["base_model"] == "registry:production"
    assert read["runs_today"] == 0 and read["auto_promotion_disabled_globally"] is False
    assert member.put(f"{API}/policy", json=body).status_code == 403
    assert admin.post(f"{API}/policy/pause").json()["paused"] is True
    refused = admin.post(f"{API}/loop/runs", json={})
    assert refused.status_code == 409 and "paused" in refused.json()["detail"]
    assert admin.post(f"{API}/policy/resume").json()["paused"] is False


def test_labels_start_runs_that_promote_a_better_model_reject_a_worse_one_and_hold_a_night_regression(
    app, db, tmp_path
):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 80)
    holdout = fix_holdout(db, project, items, 60, night=4)
    day_mistakes = {it.id for it in holdout if not it.is_night}
    day_mistakes = set(sorted(day_mistakes)[:16])
    assert admin.post(f"{API}/webhooks", json={"url": "https://hooks.example/x"}).status_code == 201
    assert admin.put(f"{API}/policy", json=policy_body(new_labels=10)).status_code == 200
    # 1. 20 labels beyond the holdout: the sweep starts a run by itself; no production yet, a decent model wins
    first = sweep_triggers(app)
    assert first is not None
    assert run_of(db, first).trigger == "labels"
    assert sweep_triggers(app) is None  # one run at a time
    assert advance(app, first) == "training"
    run = run_of(db, first)
    assert run.dataset_version_id is not None and len(run.job_ids) == 1
    frozen = set(
        db.scalars(
            select(DatasetItem.item_id).where(
                DatasetItem.dataset_version_id == run.dataset_version_id, DatasetItem.split != "holdout"
            )
        )
    )
    assert not frozen & set(db.scalars(select(HoldoutItem.item_id)))
    assert advance(app, first) == "training"  # the job is not finished: nothing moves
    decent = lambda i, truth, night: float(truth) if i not in day_mistakes else 1.0 - truth  # noqa: E731
    finish_run_jobs(db, app.state.settings, first, decent, tmp_path)
    assert advance(app, first) == "promoted"
    assert advance(app, first) == "promoted"  # again: nothing happens twice
    run = run_of(db, first)
    assert "promoted automatically" in run.reason and run.figures["chosen"] == 1
    assert [e["event"] for e in run.timeline] == ["triggered", "dataset", "jobs", "evaluated", "promoted"]
    assert db.scalar(select(ModelVersion.stage).where(ModelVersion.version == 1)) == "production"
    assert (
        db.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.event == "model.promoted")
        )
        == 1
    )

    # 2. ten more labels, flipped: worse than production with confidence, rejected with its figures
    seed_labeled_items(db, app.state.blobs, project, annotator, 10, start_index=80, seed=1)
    second = sweep_triggers(app)
    assert second is not None and advance(app, second) == "training"
    finish_run_jobs(db, app.state.settings, second, lambda i, truth, night: 1.0 - truth, tmp_path)
    assert advance(app, second) == "rejected"
    run = run_of(db, second)
    assert "not better than production v1 with confidence" in run.reason
    assert run.figures["candidates"][0]["vs_production"]["ci_high"] < 0
    assert db.scalar(select(ModelVersion.stage).where(ModelVersion.version == 2)) == "candidate"

    # 3. by hand: right on every day item, wrong at night: better overall, but the night slice falls -> held
    started = admin.post(f"{API}/loop/runs", json={"note": "try"})
    assert started.status_code == 201, started.text
    third = started.json()["id"]
    assert advance(app, third) == "training"
    finish_run_jobs(
        db,
        app.state.settings,
        third,
        lambda i, truth, night: 1.0 - truth if night else float(truth),
        tmp_path,
    )
    assert advance(app, third) == "held", run_of(db, third).reason
    read = admin.get(f"{API}/loop/runs/{third}").json()
    assert read["state"] == "held" and "is_night=true" in read["reason"] and read["candidate_version"] == 3
    assert read["figures"]["candidates"][0]["vs_production"]["ci_low"] > 0

    # an admin approves: v3 serves, model.promoted goes out; one rollback brings v1 back
    approved = admin.post(f"{API}/loop/runs/{third}/approve", json={"note": "night cams are being replaced"})
    assert approved.status_code == 200 and approved.json()["state"] == "promoted", approved.text
    assert admin.post(f"{API}/loop/runs/{third}/approve", json={}).status_code == 409
    assert admin.post(f"{API}/models/rollback", json={}).status_code == 200
    db.rollback()
    assert db.scalar(select(ModelVersion.version).where(ModelVersion.stage == "production")) == 1
    assert db.scalar(select(func.count()).select_from(DatasetVersion)) == 3
    runs = admin.get(f"{API}/loop/runs").json()
    assert [r["state"] for r in runs] == ["promoted", "rejected", "promoted"]
    history = db.scalars(select(StageChange.note).where(StageChange.action == "promote")).all()
    assert sorted(history) == [f"loop run {first}", f"loop run {third}"]


def test_a_passing_run_waits_for_an_admin_when_auto_promotion_is_off_globally(app, db, tmp_path):
    app.state.settings = app.state.settings.model_copy(update={"loop_auto_promote": False})
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 40)
    fix_holdout(db, project, items, 24, night=0)
    assert admin.put(f"{API}/policy", json=policy_body(min_holdout_items=20)).status_code == 200
    run_id = admin.post(f"{API}/loop/runs", json={}).json()["id"]
    advance(app, run_id)
    finish_run_jobs(db, app.state.settings, run_id, lambda i, truth, night: float(truth), tmp_path)
    assert advance(app, run_id) == "held"
    assert "HARDCASE_LOOP_AUTO_PROMOTE=false" in run_of(db, run_id).reason
    rejected = admin.post(f"{API}/loop/runs/{run_id}/reject", json={"note": "not today"})
    assert rejected.json()["state"] == "rejected" and "not today" in rejected.json()["reason"]
    assert (
        db.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.stage == "production"))
        == 0
    )


def test_two_triggers_at_once_start_one_run_and_the_daily_cap_holds(app, db):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, annotator, 30)
    assert admin.put(f"{API}/policy", json=policy_body(max_runs_per_day=2)).status_code == 200
    barrier, answers = threading.Barrier(4), []

    def trigger(kind: str) -> None:
        barrier.wait()
        if kind == "api":
            answers.append(admin.post(f"{API}/loop/runs", json={}).status_code)
        else:
            answers.append(sweep_triggers(app))

    threads = [threading.Thread(target=trigger, args=(k,)) for k in ("api", "api", "sweep", "sweep")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert db.scalar(select(func.count()).select_from(LoopRun)) == 1, answers
    run = db.scalar(select(LoopRun))
    run.state = "failed"  # it ended; the cap still counts it
    db.commit()
    assert admin.post(f"{API}/loop/runs", json={}).status_code == 201
    db.execute(LoopRun.__table__.update().values(state="rejected"))
    db.commit()
    capped = admin.post(f"{API}/loop/runs", json={})
    assert capped.status_code == 409 and "cap of 2 runs per day" in capped.json()["detail"]


def test_a_run_never_promotes_a_model_trained_on_holdout_items(app, db, tmp_path):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 40)
    fix_holdout(db, project, items, 24, night=0)
    assert admin.put(f"{API}/policy", json=policy_body(min_holdout_items=20)).status_code == 200
    run_id = admin.post(f"{API}/loop/runs", json={}).json()["id"]
    advance(app, run_id)
    run = run_of(db, run_id)
    leaked = db.scalar(select(HoldoutItem.item_id))
    db.execute(
        DatasetItem.__table__.update()
        .where(DatasetItem.dataset_version_id == run.dataset_version_id, DatasetItem.item_id == leaked)
        .values(split="train")
    )
    db.commit()
    finish_run_jobs(db, app.state.settings, run_id, lambda i, truth, night: float(truth), tmp_path)
    assert advance(app, run_id) == "rejected"
    assert "holdout leak" in run_of(db, run_id).reason


def test_a_schedule_and_a_drift_alarm_each_start_a_run_once(app, db):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, annotator, 20)
    body = policy_body(new_labels=None, schedule="0 3 * * *", on_drift=True)
    assert admin.put(f"{API}/policy", json=body).status_code == 200
    db.execute(
        RetrainingPolicy.__table__.update().values(
            last_scheduled_at=datetime(2026, 11, 30, 3, 30, tzinfo=UTC)
        )
    )
    db.commit()

    def fire(now) -> tuple | None:
        with app.state.sessionmaker() as session:
            run = service.fire_triggers(db_session=session, project=session.scalar(select(Project)), now=now)
            session.commit()
            return (run.trigger, run.trigger_detail) if run is not None else None

    next_day = datetime(2026, 12, 1, 3, 1, tzinfo=UTC)
    assert fire(next_day - timedelta(minutes=2)) is None  # 02:59: not yet
    assert fire(next_day) == ("schedule", {"schedule": "0 3 * * *"})
    db.rollback()
    db.execute(LoopRun.__table__.update().values(state="failed"))
    db.commit()
    assert fire(next_day + timedelta(minutes=1)) is None  # the schedule fired for 03:00 already
    db.add(
        drift_alarm(
            project.id,
            "yolo",
            now=utcnow(),
            p_value=0.001,
            n_reference=100,
            n_recent=50,
            distance=0.4,
            boosted_items=3,
            reference_days=7,
            recent_hours=24,
        )
    )
    db.commit()
    trigger, detail = fire(next_day + timedelta(minutes=2))
    assert trigger == "drift" and detail["model"] == "yolo"
    db.rollback()
    db.execute(LoopRun.__table__.update().values(state="failed"))
    db.commit()
    assert fire(next_day + timedelta(minutes=3)) is None  # that alarm was answered


def test_two_workers_advancing_one_run_at_once_freeze_and_submit_once(app, db):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, annotator, 30)
    assert admin.put(f"{API}/policy", json=policy_body()).status_code == 200
    run_id = admin.post(f"{API}/loop/runs", json={}).json()["id"]
    barrier, states = threading.Barrier(3), []

    def worker() -> None:
        barrier.wait()
        states.append(advance(app, run_id))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states == ["training"] * 3
    run = run_of(db, run_id)
    assert db.scalar(select(func.count()).select_from(DatasetVersion)) == 1
    assert db.scalar(select(func.count()).select_from(Job)) == len(run.job_ids) == 1
    assert [e["event"] for e in run.timeline] == ["triggered", "dataset", "jobs"]
