"""Hands job ids to Celery (the only thing the broker carries) and revokes runaway tasks."""

from __future__ import annotations

import threading
import uuid

from celery import Celery

from app.core.config import Settings

RUN_JOB_TASK = "hardcase.run_job"
_clients: dict[str, Celery] = {}
_lock = threading.Lock()


def celery_client(settings: Settings) -> Celery:
    """One Celery client per broker (tests run apps with different brokers in one process)."""
    from workers.celery_app import make_celery

    with _lock:
        if settings.resolved_broker_url not in _clients:
            _clients[settings.resolved_broker_url] = make_celery(settings)
        return _clients[settings.resolved_broker_url]


def send_job(settings: Settings, job_id: int, queue: str, countdown: float = 0.0) -> str:
    task_id = str(uuid.uuid4())
    celery_client(settings).send_task(
        RUN_JOB_TASK, args=[job_id], queue=queue, task_id=task_id, countdown=countdown or None
    )
    return task_id


def revoke_task(settings: Settings, task_id: str) -> None:
    """Kills the task's process wherever it runs (the cooperative cancel did not stop it in time)."""
    celery_client(settings).control.revoke(task_id, terminate=True, signal="SIGKILL")
