"""Label Studio webhook events (cpu queue): annotations into Hardcase's append-only log, START_TRAINING into a job."""

from __future__ import annotations

import logging

from app.core.db import session_scope
from app.core.errors import ApiError
from app.jobs.dispatch import send_job
from app.lsbackend import service
from app.projects.service import get_by_name
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.lsbackend")


def handle_event(*, sessions, project_name: str, action: str, payload: dict) -> str:
    """What became of the event, in words (logged; the task never fails on a bad event, it has no one to tell)."""
    with session_scope(sessions) as session:
        project = get_by_name(db_session=session, name=project_name)
        if project is None:
            return f"project {project_name!r} no longer exists"
        try:
            if action in service.ANNOTATION_EVENTS:
                recorded = service.handle_annotation_event(
                    db_session=session, project=project, payload=payload
                )
                return f"annotation {recorded.outcome} ({recorded.annotation_id})"
            if action in service.DELETE_EVENTS:
                outcomes = service.handle_delete_event(db_session=session, project=project, payload=payload)
                return f"deleted: {[r.outcome for r in outcomes]}"
            if action in service.TRAIN_EVENTS:
                settings = worker_settings()
                job = service.start_training(
                    db_session=session,
                    project=project,
                    settings=settings,
                    enqueue=lambda j: send_job(settings, j.id, j.queue),
                )
                return f"training job {job.id} queued ({job.kind})"
        except service.SkippedAnnotation as exc:
            session.rollback()
            return f"skipped: {exc}"
        except ApiError as exc:
            session.rollback()
            return f"refused: {exc.field}: {exc.message}"
    return f"ignored action {action!r}"


@celery_app.task(name=service.WEBHOOK_TASK)
def handle_label_studio_event(project_name: str, action: str, payload: dict) -> None:
    outcome = handle_event(
        sessions=worker_sessionmaker(), project_name=project_name, action=action, payload=payload
    )
    log.info("label studio %s for %s: %s", action, project_name, outcome)
