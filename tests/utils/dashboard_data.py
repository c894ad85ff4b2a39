"""Dashboard test data: a drift alarm row and a project with a frozen version, jobs and scored models."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.datasets.models import DatasetItem, DatasetVersion
from app.drift.models import DriftCheck
from app.ingest.models import Item
from app.jobs.models import Job, JobMetric
from app.projects.models import Project
from app.registry.models import HoldoutScore, ModelVersion


def drift_alarm(
    project_id: int,
    model: str,
    *,
    now: datetime,
    p_value: float,
    n_reference: int,
    n_recent: int,
    distance: float,
    boosted_items: int,
    reference_days: int,
    recent_hours: int,
) -> DriftCheck:
    """A stored score-drift check that raised an alarm."""
    return DriftCheck(
        project_id=project_id,
        model=model,
        kind="score",
        method="ks",
        reference_start=now - timedelta(days=reference_days),
        reference_end=now - timedelta(days=1),
        recent_start=now - timedelta(hours=recent_hours),
        recent_end=now,
        n_reference=n_reference,
        n_recent=n_recent,
        p_value=p_value,
        threshold=0.05,
        distance=distance,
        is_drift=True,
        boosted_items=boosted_items,
    )


def seed_training(db: Session, project: Project) -> tuple[Job, Job]:
    """A frozen version with a 40-item holdout, a finished job that made production v1, a running job and a
    better candidate v2 (both scored on the holdout, with slices)."""
    now = utcnow()
    version = DatasetVersion(
        project_id=project.id,
        version=1,
        content_hash="ab" * 32,
        item_count=40,
        stats={"classes": {"negative": 24, "positive": 16}, "splits": {"holdout": 40}},
    )
    db.add(version)
    db.flush()
    items = []
    for index in range(40):
        item = Item(project_id=project.id, external_id=f"hold-{index}", camera_id=f"cam-{index % 2}", meta={})
        db.add(item)
        db.flush()
        items.append(item)
        db.add(
            DatasetItem(
                dataset_version_id=version.id, item_id=item.id, label=int(index % 5 < 2), split="holdout"
            )
        )
    done = Job(
        project_id=project.id,
        kind="classifier_lora",
        dataset_version_id=version.id,
        status="succeeded",
        progress_step=100,
        progress_total=100,
        started_at=now - timedelta(minutes=30),
        finished_at=now - timedelta(minutes=20),
        log_tail="step 100 done",
        config={"epochs": 2},
    )
    running = Job(
        project_id=project.id,
        kind="distill",
        dataset_version_id=version.id,
        status="running",
        progress_step=30,
        progress_total=120,
        attempt_first_step=1,
        started_at=now - timedelta(minutes=3),
        heartbeat_at=now,
        log_tail="12:00:00 epoch 1\n12:00:05 step 30 loss 0.41",
    )
    db.add_all([done, running])
    db.flush()
    for step in range(10, 101, 10):
        db.add(JobMetric(job_id=done.id, step=step, name="train_loss", value=1.0 / (1 + step / 20)))
        db.add(JobMetric(job_id=done.id, step=step, name="val_mcc", value=min(0.9, step / 110)))
    for step in (10, 20, 30):
        db.add(JobMetric(job_id=running.id, step=step, name="train_loss", value=0.9 - step / 100))
        db.add(JobMetric(job_id=running.id, step=step, name="val_mcc", value=step / 60))
    rng = np.random.default_rng(7)
    truth = [int(i % 5 < 2) for i in range(40)]
    for number, job, stage, noise in ((1, done, "production", 0.3), (2, None, "candidate", 0.18)):
        scores = np.clip(0.25 + 0.5 * np.array(truth) + rng.normal(0, noise, 40), 0.01, 0.99).tolist()
        from ml.evaluation import binary_metrics, reliability_curve, slice_mcc

        metrics = binary_metrics(scores, truth, 0.5)
        metrics["reliability"] = reliability_curve(scores, truth)
        metrics["slices"] = {"camera_id": slice_mcc(scores, truth, 0.5, [it.camera_id for it in items])}
        model = ModelVersion(
            project_id=project.id,
            name="roadwork-clf",
            version=number,
            kind="classifier_lora",
            job_id=job.id if job else None,
            dataset_version_id=version.id,
            threshold=0.5,
            metrics=metrics,
            stage=stage,
            artifact_dir="/nonexistent",
            artifact_archive="/nonexistent.zip",
            artifact_sha256="0" * 64,
        )
        db.add(model)
        db.flush()
        db.add_all(
            HoldoutScore(model_version_id=model.id, item_id=it.id, score=s)
            for it, s in zip(items, scores, strict=True)
        )
    db.commit()
    return done, running
