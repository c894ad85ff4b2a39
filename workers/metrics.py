"""Worker metrics: task run times from Celery's signals. With PROMETHEUS_MULTIPROC_DIR set (before start),
every prefork child writes its metrics there and the API's /metrics merges them."""

from __future__ import annotations

import os
import time

from celery.signals import task_postrun, task_prerun, worker_process_shutdown

from app.metrics.collector import MULTIPROC_ENV
from app.metrics.definitions import TASK_SECONDS

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
