"""The full re-rank of a project on the `cpu` queue, after its threshold or strategy changed (idempotent)."""

from __future__ import annotations

from app.core.db import session_scope
from app.projects.models import Project
from app.queue.flows import RERANK_TASK
from app.queue.ranking import rerank_project
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker


@celery_app.task(name=RERANK_TASK, queue="cpu")
def rerank_project_task(project_id: int) -> dict:
    """Re-scores every item from the stored predictions; running it twice gives the same rows."""
    with session_scope(worker_sessionmaker()) as session:
        project = session.get(Project, project_id)
        if project is None:
            return {"project_id": project_id, "items": 0, "missing": True}
        summary = rerank_project(db_session=session, project=project)
    return {"project_id": project_id, "items": summary.items, "seconds": round(summary.seconds, 3)}
