"""Loop runs on the `cpu` queue: advance one run (a hint), and the beat sweep that fires due triggers and
advances every active run, so the DB, not the broker, decides what happens next."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.jobs.dispatch import send_job
from app.loop import flows, service
from app.loop.models import ACTIVE, PROMOTED, LoopRun, RetrainingPolicy
from app.projects.models import Project
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.loop")


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
