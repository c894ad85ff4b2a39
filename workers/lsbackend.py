"""Label Studio webhook events (cpu queue): annotations into Hardcase's append-only log, START_TRAINING into a job."""

from __future__ import annotations

import logging

from app.core.db import session_scope
from app.jobs.dispatch import send_job
from app.lsbackend import service
from app.projects.service import get_by_name
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.lsbackend")


@celery_app.task(name=service.WEBHOOK_TASK)
def handle_label_studio_event(project_name: str, action: str, payload: dict) -> None:
    settings = worker_settings()
    with session_scope(worker_sessionmaker()) as session:
        project = get_by_name(db_session=session, name=project_name)
        if project is None:
            outcome = f"project {project_name!r} no longer exists"
        else:
            outcome = service.handle_event(
                db_session=session,
                project=project,
                action=action,
                payload=payload,
                settings=settings,
                enqueue=lambda job: send_job(settings, job.id, job.queue),
            )
    log.info("label studio %s for %s: %s", action, project_name, outcome)
