"""Loop runs on the `cpu` queue: advance one run (a hint), and the beat sweep that fires due triggers and
advances every active run, so the DB, not the broker, decides what happens next."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core.blobs import BlobStore, stored_sha
from app.core.config import Settings
from app.core.db import session_scope
from app.ingest.models import Item, Prediction
from app.jobs.dispatch import send_job
from app.loop import flows, service
from app.loop.models import ACTIVE, PROMOTED, LoopRun, RetrainingPolicy
from app.projects.models import Project
from app.queue.models import Hardness
from app.queue.ranking import rerank_project
from app.registry.service import production_model
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.loop")

PRODUCTION_COLUMN = "hardcase-production"  # one ranking column for whichever version serves (latest wins)
POOL_CHUNK = 256


def score_pool_with_production(*, db_session: Session, project: Project, settings: Settings) -> int:
    """Stores the production model's own scores on the pending pool (binary projects with an ONNX export), so
    the re-rank sees what the new model finds hard; without one the cascade's scores rank alone. Idempotent."""
    model = production_model(db_session=db_session, project=project)
    onnx_dir = Path(model.artifact_dir) / "onnx" if model is not None else None
    if project.kind != "binary" or onnx_dir is None or not (onnx_dir / "predictor.json").is_file():
        return 0
    from app.client import OnnxPredictor  # onnxruntime: workers only

    predictor = OnnxPredictor.load(onnx_dir)
    blobs = BlobStore(settings.resolved_blob_dir)
    rows = db_session.execute(
        select(Item.id, Item.image_uri, Item.sha256)
        .join(Hardness, Hardness.item_id == Item.id)
        .where(Hardness.project_id == project.id, Hardness.status == "pending")
        .order_by(Item.id)
    ).all()
    stored = [(item_id, stored_sha(uri, sha)) for item_id, uri, sha in rows]
    stored = [(item_id, sha) for item_id, sha in stored if sha and blobs.exists(sha)]
    dialect = postgresql if db_session.bind.dialect.name == "postgresql" else sqlite
    for start in range(0, len(stored), POOL_CHUNK):
        chunk = stored[start : start + POOL_CHUNK]
        scores = predictor.scores([blobs.get(sha) for _, sha in chunk])
        values = [
            {
                "item_id": item_id,
                "project_id": project.id,
                "model": PRODUCTION_COLUMN,
                "model_version": str(model.version),
                "score": float(score),
                "boxes": [],
                "extra": {},
            }
            for (item_id, _), score in zip(chunk, scores, strict=True)
        ]
        insert = dialect.insert(Prediction).values(values)
        db_session.execute(
            insert.on_conflict_do_nothing(index_elements=["item_id", "model", "model_version"])
        )
    return len(stored)


@celery_app.task(name=flows.FOLLOW_PRODUCTION_TASK, acks_late=True, reject_on_worker_lost=True)
def follow_production(project_id: int) -> dict:
    """After a promotion: the pool scored by the new model, then the whole project re-ranked."""
    with session_scope(worker_sessionmaker()) as session:
        project = session.get(Project, project_id)
        if project is None:
            return {"project_id": project_id, "missing": True}
        scored = score_pool_with_production(db_session=session, project=project, settings=worker_settings())
        session.flush()
        summary = rerank_project(db_session=session, project=project)
    return {"project_id": project_id, "scored": scored, "ranked": summary.items}


def advance(run_id: int) -> str:
    settings = worker_settings()
    with worker_sessionmaker()() as session:
        state = flows.advance_run(
            db_session=session,
            run_id=run_id,
            settings=settings,
            send_job=lambda job: send_job(settings, job.id, job.queue),
        )
        project_id = session.scalar(select(LoopRun.project_id).where(LoopRun.id == run_id))
    if state == PROMOTED:
        flows.send_rerank(settings, project_id)
    return state


@celery_app.task(name=flows.ADVANCE_TASK, acks_late=True, reject_on_worker_lost=True)
def advance_loop_run(run_id: int) -> str:
    return advance(run_id)


@celery_app.task(name="hardcase.loop_sweep")
def loop_sweep() -> dict:
    """Periodic (beat): starts the runs that due triggers ask for, then advances every active run."""
    started = []
    with worker_sessionmaker()() as session:
        projects = list(
            session.scalars(select(Project).join(RetrainingPolicy, RetrainingPolicy.project_id == Project.id))
        )
        for project in projects:
            run = service.fire_triggers(db_session=session, project=project)
            session.commit()
            if run is not None:
                started.append(run.id)
        active = list(
            session.scalars(select(LoopRun.id).where(LoopRun.state.in_(ACTIVE)).order_by(LoopRun.id))
        )
    states = {}
    for run_id in active:
        try:
            states[run_id] = advance(run_id)
        except Exception:  # noqa: BLE001 - one broken run must not stop the others; it stays where it was
            log.exception("loop run %s: advance failed", run_id)
    return {"started": started, "advanced": states}
