"""Advertises what this worker can run (job kinds whose packages import here, its queues, a GPU) in the
database at start-up, refreshes it every job heartbeat while the worker lives and withdraws it on shutdown."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown

from app.jobs import capabilities
from ml.training.capabilities import gpu_present, kind_support
from ml.training.kinds import JOB_KINDS
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.capabilities")
_stop = threading.Event()
_lock = threading.Lock()
_state: dict[str, str] = {}


def _advertise(worker_id: str, queues: list[str], kinds: dict[str, str | None], gpu: bool) -> None:
    with _lock, worker_sessionmaker()() as session:
        if _stop.is_set():
            return  # withdrawn: a late round must not bring the row back
        capabilities.advertise(db_session=session, worker_id=worker_id, queues=queues, kinds=kinds, gpu=gpu)
        session.commit()


def _run(worker_id: str, queues: list[str]) -> None:
    kinds = kind_support(list(JOB_KINDS))
    gpu = gpu_present()
    log.info(
        "worker %s can run %s (gpu: %s)", worker_id, sorted(k for k, v in kinds.items() if v is None), gpu
    )
    interval = worker_settings().job_heartbeat_s
    while True:
        try:
            _advertise(worker_id, queues, kinds, gpu)
        except Exception:  # noqa: BLE001 - a DB blip must not end the advertising; the next round retries
            log.exception("could not advertise the capabilities of %s", worker_id)
        if _stop.wait(interval):
            return


@worker_ready.connect
def _start_advertising(sender, **_: object) -> None:
    """In the worker's main process once it consumes its queues (-Q)."""
    queues = sorted(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)
    _state["worker_id"] = sender.hostname
    threading.Thread(
        target=_run, args=(sender.hostname, queues), name="advertise-capabilities", daemon=True
    ).start()


@worker_shutdown.connect
def _withdraw(**_: object) -> None:
    _stop.set()
    worker_id = _state.get("worker_id")
    if worker_id is None:
        return
    try:
        with _lock, worker_sessionmaker()() as session:
            capabilities.withdraw(db_session=session, worker_id=worker_id)
            session.commit()
    except Exception:  # noqa: BLE001 - shutting down anyway; the row goes stale by itself
        log.exception("could not withdraw the capabilities of %s", worker_id)
