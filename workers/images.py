"""Referenced images on the `cpu` queue: copy s3://, gs:// and http(s):// images into the blob store."""

from __future__ import annotations

from app.core.blobs import BlobStore
from app.core.db import session_scope
from app.ingest.references import FETCH_TASK, fetch_referenced_images
from app.projects.models import Project
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings


@celery_app.task(name=FETCH_TASK, acks_late=True, reject_on_worker_lost=True)
def fetch_images(project_id: int, item_ids: list[int] | None = None) -> dict:
    """Idempotent: items already stored are skipped, so a redelivered task only finishes the rest."""
    settings = worker_settings()
    with session_scope(worker_sessionmaker()) as session:
        project = session.get(Project, project_id)
        if project is None:
            return {"stored": 0, "failed": 0}
        return fetch_referenced_images(
            db_session=session,
            project=project,
            item_ids=item_ids,
            settings=settings,
            blobs=BlobStore(settings.resolved_blob_dir),
        )
