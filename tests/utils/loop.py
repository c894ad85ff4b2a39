"""Loop test helpers: a project with a fixed holdout of known slices, a policy body, and a stand-in worker that
finishes a run's jobs with chosen holdout scores (the real worker is exercised in tests/workers/test_loop_worker.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.datasets.models import DatasetVersion, HoldoutItem
from app.ingest.models import Item
from app.jobs.models import Job
from app.loop.models import LoopRun, RetrainingPolicy
from app.projects.models import Project
from app.registry.service import holdout_truth, promote, register_model_version

TINY_JOB = {"kind": "classifier_lora", "config": {"max_steps": 2, "batch_size": 8, "device": "cpu"}}


def policy_body(**overrides) -> dict:
    body = {
        "new_labels": 10,
        "jobs": [TINY_JOB],
        "min_holdout_items": 20,
        "slice_keys": ["is_night", "camera_id"],
        "slice_tolerance": 0.1,
        "auto_promote": True,
        "max_runs_per_day": 10,
    }
    return {**body, **overrides}


def fix_holdout(db: Session, project: Project, items: list[Item], n: int, night: int) -> list[Item]:
    """Makes the first `n` items the project's holdout (the first freeze keeps it); `night` of them at night,
    both classes among them, so a night slice can fall."""
    chosen = items[:n]
    positives = [it for it in chosen if it.meta["truth"] == 1]
    negatives = [it for it in chosen if it.meta["truth"] == 0]
    at_night = {it.id for it in positives[: night // 2] + negatives[: night - night // 2]}
    for item in items:
        item.is_night = item.id in at_night
    db.add_all(HoldoutItem(project_id=project.id, item_id=it.id) for it in chosen)
    db.commit()
    return chosen


Scores = Callable[[int, int, bool], float]  # (item id, truth, is_night) -> P(positive)


def finish_run_jobs(db: Session, settings: Settings, run_id: int, scores: Scores, tmp: Path) -> list[int]:
    """What a worker does for each of the run's jobs: register a model with these holdout scores, succeed."""
    db.rollback()  # end the read snapshot (SQLite keeps one per transaction)
    db.expire_all()
    run = db.get(LoopRun, run_id)
    versions = []
    for job in db.scalars(select(Job).where(Job.id.in_(run.job_ids))):
        truth = holdout_truth(db_session=db, dataset_version_id=job.dataset_version_id)
        night = dict(db.execute(select(Item.id, Item.is_night).where(Item.id.in_(truth))).all())
        artifact = tmp / f"job-{job.id}"
        artifact.mkdir(parents=True, exist_ok=True)
        (artifact / "model.txt").write_text(f"job {job.id}")
        model = register_model_version(
            db_session=db,
            job=job,
            project=db.get(Project, job.project_id),
            artifact_dir=artifact,
            threshold=0.5,
            holdout_scores={i: scores(i, t, bool(night[i])) for i, t in truth.items()},
            training_metrics={},
            files={},
            settings=settings,
        )
        job.status = "succeeded"
        versions.append(model.version)
    db.commit()
    return versions


def seed_loop_run(db: Session, project: Project) -> int:
    """A policy and one decided (rejected) run of `project`, for tests that need both to exist."""
    db.add(RetrainingPolicy(project_id=project.id, jobs=[TINY_JOB], slice_keys=["is_night"]))
    run = LoopRun(project_id=project.id, trigger="manual", state="rejected", reason="seeded", policy={})
    db.add(run)
    db.commit()
    return run.id


def seed_production(db: Session, settings: Settings, project: Project, scores: Scores, tmp: Path) -> int:
    """A production model scored on dataset version 1's holdout with `scores` (a stand-in for an earlier job)."""
    version = db.scalar(select(DatasetVersion).where(DatasetVersion.project_id == project.id))
    job = Job(
        project_id=project.id, kind="classifier_lora", dataset_version_id=version.id, status="succeeded"
    )
    db.add(job)
    db.commit()
    run = LoopRun(project_id=project.id, trigger="manual", state="rejected", job_ids=[job.id], policy={})
    db.add(run)
    db.commit()
    [number] = finish_run_jobs(db, settings, run.id, scores, tmp)
    db.delete(run)
    promote(db_session=db, project=project, version=number, user_id=None)
    db.commit()
    return number
