"""Hands job ids to Celery (the only thing the broker carries) and revokes runaway tasks.

Sending happens inside requests, so it is bounded: with the broker down or silent, a send fails within about
two seconds (the job row stays queued and the reaper sends it later) instead of blocking the request.
"""

from __future__ import annotations

import threading
import uuid

from celery import Celery

from app.core.config import Settings

RUN_JOB_TASK = "hardcase.run_job"
SEND_TIMEOUT_S = 1.0
# One retry on a fresh connection (a pooled one may be stale after a broker restart), then give up.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
_clients: dict[str, Celery] = {}
_lock = threading.Lock()


def celery_client(settings: Settings) -> Celery:
    """One sending client per broker (tests run apps with different brokers in one process)."""
    from workers.celery_app import make_celery

    with _lock:
        if settings.resolved_broker_url not in _clients:
            _clients[settings.resolved_broker_url] = _bounded(make_celery(settings))
        return _clients[settings.resolved_broker_url]


def _bounded(client: Celery) -> Celery:
    """A sender never waits long on the broker, and never on the result store (job state lives in the DB)."""
    client.conf.update(
        result_backend=None,
        broker_connection_timeout=SEND_TIMEOUT_S,
        broker_connection_retry=False,
        broker_transport_options={
            **client.conf.broker_transport_options,
            "socket_connect_timeout": SEND_TIMEOUT_S,
            "socket_timeout": SEND_TIMEOUT_S,
            "max_retries": 1,
        },
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
    )
    return client


def send_job(settings: Settings, job_id: int, queue: str, countdown: float = 0.0) -> str:
    task_id = str(uuid.uuid4())
    celery_client(settings).send_task(
        RUN_JOB_TASK,
        args=[job_id],
        queue=queue,
        task_id=task_id,
        countdown=countdown or None,
        ignore_result=True,
        retry_policy=PUBLISH_RETRY_POLICY,
    )
    return task_id


def revoke_task(settings: Settings, task_id: str) -> None:
    """Kills the task's process wherever it runs (the cooperative cancel did not stop it in time)."""
    celery_client(settings).control.revoke(task_id, terminate=True, signal="SIGKILL")
