"""Worker metrics: task run times from Celery's signals. With PROMETHEUS_MULTIPROC_DIR set (before start),
every prefork child writes its metrics there; they are read by the API's /metrics when it shares the dir (one
machine) and by the worker's own metrics port (HARDCASE_WORKER_METRICS_PORT: one scrape target per worker)."""

from __future__ import annotations

import logging
import os
import time

from celery.signals import task_postrun, task_prerun, worker_init, worker_process_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from app.metrics.collector import MULTIPROC_ENV
from app.metrics.definitions import TASK_SECONDS
from workers.context import worker_settings

log = logging.getLogger("hardcase.metrics")
_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str | None = None, **_: object) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id: str | None = None, task=None, state: str | None = None, **_: object) -> None:
    start = _started.pop(task_id or "", None)
    if start is not None and task is not None:
        TASK_SECONDS.labels(task.name, state or "UNKNOWN").observe(time.perf_counter() - start)


@worker_process_shutdown.connect
def _child_exited(pid: int | None = None, **_: object) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def worker_registry() -> CollectorRegistry:
    """Every pool process's metrics (multiprocess files), or this process's own (solo/threads pools)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    """In the worker's main process, before the pool forks: the HTTP thread stays in the parent."""
    settings = worker_settings()
    if settings.worker_metrics_port is None:
        return
    if not os.environ.get(MULTIPROC_ENV):
        log.warning("%s is not set: a prefork pool's task metrics will not be served", MULTIPROC_ENV)
    start_http_server(
        settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=worker_registry()
    )
    log.info("worker metrics on %s:%s", settings.worker_metrics_host, settings.worker_metrics_port)
