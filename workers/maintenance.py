"""Small operational tasks: a round-trip health check that proves broker, worker and DB are wired."""

from __future__ import annotations

from sqlalchemy import text

from workers.celery_app import celery_app
from workers.context import worker_sessionmaker


@celery_app.task(name="hardcase.ping", ignore_result=False)
def ping(token: str) -> str:
    """Writes nothing; reads the DB so a green ping means the worker can reach it."""
    with worker_sessionmaker()() as session:
        session.execute(text("SELECT 1"))
    return f"pong:{token}"
