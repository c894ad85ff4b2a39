"""Which job kinds the workers that exist can run: each worker advertises at start-up (and refreshes while it
lives) the kinds whose packages it can import, its queues and whether it has a GPU; the job form, the kinds
catalogue and submission offer only what some live worker can run. With no live worker at all nothing is
refused (jobs wait in the queue for one), and the catalogue says so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.jobs.models import WorkerCapability
from ml.training.kinds import JOB_KINDS

NO_LIVE_WORKER = "no worker is running now: the job waits in its queue until one starts"


@dataclass(frozen=True)
class KindAvailability:
    available: bool
    reason: str | None  # why no live worker can run it; a note when no worker is live


def advertise(
    *, db_session: Session, worker_id: str, queues: list[str], kinds: dict[str, str | None], gpu: bool
) -> None:
    """Inserts or refreshes this worker's row (the caller commits)."""
    row = db_session.get(WorkerCapability, worker_id)
    if row is None:
        db_session.add(WorkerCapability(worker_id=worker_id, queues=queues, kinds=kinds, gpu=gpu))
        return
    row.queues, row.kinds, row.gpu, row.seen_at = list(queues), dict(kinds), gpu, utcnow()


def withdraw(*, db_session: Session, worker_id: str) -> None:
    db_session.execute(delete(WorkerCapability).where(WorkerCapability.worker_id == worker_id))


def live_workers(*, db_session: Session, settings: Settings) -> list[WorkerCapability]:
    """Workers seen within the job heartbeat's staleness window."""
    from app.jobs.service import stale_after_s

    since = utcnow() - timedelta(seconds=stale_after_s(settings))
    return list(db_session.scalars(select(WorkerCapability).where(WorkerCapability.seen_at >= since)))


def _why_not(worker: WorkerCapability, kind: str, needs_gpu: bool) -> str | None:
    queue = JOB_KINDS[kind].queue
    if queue not in (worker.queues or []):
        return f"does not consume the {queue!r} queue"
    reason = (worker.kinds or {}).get(kind, "does not know this job kind")
    if reason is not None:
        return str(reason)
    if needs_gpu and not worker.gpu:
        return "has no GPU"
    return None


def kind_availability(
    *, db_session: Session, settings: Settings, needs_gpu: bool = False
) -> dict[str, KindAvailability]:
    """Every job kind: whether some live worker can run it and, if none can, why (from each worker)."""
    workers = live_workers(db_session=db_session, settings=settings)
    out = {}
    for kind in JOB_KINDS:
        if not workers:
            out[kind] = KindAvailability(True, NO_LIVE_WORKER)
            continue
        reasons = {w.worker_id: _why_not(w, kind, needs_gpu) for w in workers}
        if any(reason is None for reason in reasons.values()):
            out[kind] = KindAvailability(True, None)
        else:
            detail = "; ".join(f"{worker}: {reason}" for worker, reason in sorted(reasons.items()))
            out[kind] = KindAvailability(False, f"no live worker can run {kind} ({detail})")
    return out


def needs_gpu(values: dict[str, Any]) -> bool:
    """A config that asks for CUDA (device 'cuda…', 4-bit quantisation) runs only on a worker with a GPU."""
    device = str(values.get("device", ""))
    return device.startswith("cuda") or str(values.get("quantization", "none")) == "4bit"


def check_runnable(*, db_session: Session, settings: Settings, kind: str, values: dict[str, Any]) -> None:
    """422 naming `kind` (or config.device) when live workers exist and none of them can run this job."""
    gpu = needs_gpu(values)
    availability = kind_availability(db_session=db_session, settings=settings, needs_gpu=gpu)[kind]
    if availability.available:
        return
    if gpu and kind_availability(db_session=db_session, settings=settings)[kind].available:
        raise ApiError(422, "config.device", f"{availability.reason}; set device to 'auto' or 'cpu'")
    raise ApiError(422, "kind", availability.reason or f"no live worker can run {kind}")
