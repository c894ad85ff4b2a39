"""The training task: claims a job row, heart-beats, runs the kind's trainer with a DB-backed reporter,
registers the model; and the reaper that re-sends jobs whose worker died. The DB row is the truth."""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core.blobs import BlobStore
from app.core.config import Settings
from app.core.db import utcnow
from app.datasets.models import DatasetVersion
from app.datasets.service import materialise_dataset
from app.jobs import service as jobs
from app.jobs.base_models import unpack_warm_start
from app.jobs.dispatch import revoke_task, send_job
from app.jobs.models import CANCELLED, FAILED, SUCCEEDED, Job, JobMetric
from app.projects.models import Project
from app.registry.service import register_model_version
from ml.training.common.runtime import describe_device
from ml.training.kinds import JOB_KINDS, build_config
from ml.training.reporting import JobCancelled, TrainingResult
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.jobs")

# Worth another attempt: the infrastructure blinked, the job itself is fine.
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, OperationalError, InterfaceError)
LOG_LINES = 200
FLUSH_INTERVAL_S = 0.3  # at most ~3 writes per second from a training loop
CANCEL_POLL_S = 0.5


class JobLost(Exception):
    """Another worker took the job over (this one looked dead), or it was cancelled and reaped."""


def offline_hub() -> None:
    """Workers never reach the hub: models come from local paths or the cache (huggingface_hub reads these once,
    at import, so they are set when this module loads, before any trainer imports it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")


offline_hub()


# --- reporter -----------------------------------------------------------------------------------------------


@dataclass
class DbReporter:
    """The Reporter a training loop talks to: buffers progress, metrics and log lines and writes them to the
    job row at most every FLUSH_INTERVAL_S; `cancelled()` reads the flag at most every CANCEL_POLL_S."""

    sessions: sessionmaker[Session]
    job_id: int
    worker_id: str
    lines: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    flush_interval_s: float = FLUSH_INTERVAL_S
    _step: int | None = None
    _total: int = 0
    _first_step: int | None = None
    _metrics: list[dict] = field(default_factory=list)
    _dirty: bool = False
    _last_flush: float = 0.0
    _last_cancel_poll: float = 0.0
    _cancel: bool = False

    def progress(self, step: int, total: int) -> None:
        if self._first_step is None:
            self._first_step = step
        self._step, self._total, self._dirty = step, total, True
        self.flush(force=step >= total)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if value is not None and value == value and abs(float(value)) != float("inf"):
                self._metrics.append(
                    {"job_id": self.job_id, "step": step, "name": name, "value": float(value)}
                )
        self._dirty = True
        self.flush()

    def log(self, message: str) -> None:
        log.info("job %s: %s", self.job_id, message)
        for line in str(message).splitlines() or [""]:
            self.lines.append(f"{utcnow():%H:%M:%S} {line}")
        self._dirty = True
        self.flush()

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._last_cancel_poll >= CANCEL_POLL_S:
            self._last_cancel_poll = now
            with self.sessions() as session:
                self._cancel = jobs.cancel_requested(db_session=session, job_id=self.job_id)
        return self._cancel

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < self.flush_interval_s):
            return
        values: dict = {"log_tail": "\n".join(self.lines)}
        if self._step is not None:
            values.update(progress_step=self._step, progress_total=self._total)
        with self.sessions() as session:
            result = session.execute(
                update(Job).where(jobs.owned(self.job_id, self.worker_id)).values(**values)
            )
            if result.rowcount != 1:
                session.rollback()
                raise JobLost(f"job {self.job_id} is no longer owned by {self.worker_id}")
            if self._first_step is not None:
                session.execute(
                    update(Job)
                    .where(Job.id == self.job_id, Job.attempt_first_step.is_(None))
                    .values(attempt_first_step=self._first_step)
                )
            if self._metrics:
                session.execute(insert(JobMetric), self._metrics)
            session.commit()
        self._metrics, self._dirty, self._last_flush = [], False, now


# --- heartbeat ----------------------------------------------------------------------------------------------


class Heartbeat:
    """Refreshes the job row's heartbeat from a background thread while the training loop runs."""

    def __init__(
        self, sessions: sessionmaker[Session], job_id: int, worker_id: str, interval_s: float
    ) -> None:
        self.sessions, self.job_id, self.worker_id, self.interval_s = sessions, job_id, worker_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-job-{job_id}", daemon=True)
        self.lost = False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.sessions() as session:
                    if not jobs.beat(db_session=session, job_id=self.job_id, worker_id=self.worker_id):
                        self.lost = True
                        return
            except Exception:  # noqa: BLE001 - a DB blip must not kill the thread; the next beat retries
                log.exception("job %s: heartbeat failed", self.job_id)


# --- running a job ------------------------------------------------------------------------------------------


def job_workdir(settings: Settings, job_id: int) -> Path:
    """Per job, kept across attempts: checkpoints live here, so a retry resumes."""
    return settings.jobs_dir / str(job_id)


def prepare(session: Session, job: Job, settings: Settings) -> tuple[object, object, Path]:
    project = session.get(Project, job.project_id)
    version = session.get(DatasetVersion, job.dataset_version_id)
    config = build_config(job.kind, dict(job.config))
    workdir = job_workdir(settings, job.id)
    workdir.mkdir(parents=True, exist_ok=True)
    base = jobs.effective_base_model(job.kind, dict(job.config))
    if base is not None:
        unpack_warm_start(
            db_session=session, project_id=job.project_id, reference=base[1], kind=job.kind, workdir=workdir
        )
    dataset = materialise_dataset(
        db_session=session,
        project=project,
        version=version,
        root=workdir / "dataset",
        blobs=BlobStore(settings.resolved_blob_dir),
    )
    return config, dataset, workdir


def complete(
    sessions: sessionmaker[Session],
    job_id: int,
    worker_id: str,
    result: TrainingResult,
    reporter: DbReporter,
    settings: Settings,
) -> int:
    """Registers the model and marks the job succeeded in one transaction, only if this worker owns it."""
    with sessions() as session:
        job = session.get(Job, job_id)
        if job.worker_id != worker_id or job.status != jobs.RUNNING:
            raise JobLost(f"job {job_id} changed hands before it could be registered")
        model = register_model_version(
            db_session=session,
            job=job,
            project=session.get(Project, job.project_id),
            artifact_dir=Path(result.artifact_dir),
            threshold=result.threshold,
            holdout_scores=result.holdout_scores,
            holdout_probs=result.holdout_probs,
            training_metrics=result.metrics,
            files=result.files,
            settings=settings,
            method=result.method,
        )
        reporter.lines.append(f"{utcnow():%H:%M:%S} registered model version {model.version}")
        if not jobs.finish_owned(
            db_session=session,
            job_id=job_id,
            worker_id=worker_id,
            status=SUCCEEDED,
            artifact_dir=str(result.artifact_dir),
            log_tail="\n".join(reporter.lines),
        ):
            session.rollback()
            raise JobLost(f"job {job_id} changed hands before it could be registered")
        session.commit()
        return model.version


def _end(
    sessions: sessionmaker[Session], job_id: int, worker_id: str, status: str, error: str | None
) -> None:
    with sessions() as session:
        jobs.finish_owned(db_session=session, job_id=job_id, worker_id=worker_id, status=status, error=error)
        session.commit()


def retry_or_fail(
    sessions: sessionmaker[Session], job_id: int, worker_id: str, exc: BaseException, settings: Settings
) -> str:
    error = "".join(traceback.format_exception(exc))
    with sessions() as session:
        job = session.get(Job, job_id)
        retry = isinstance(exc, TRANSIENT_ERRORS) and job.attempts < job.max_attempts
        backoff_s = 5.0 * job.attempts
        if retry and jobs.release_for_retry(
            db_session=session, job_id=job_id, worker_id=worker_id, error=error
        ):
            job = session.get(Job, job_id)
            enqueue = lambda j: send_job(settings, j.id, j.queue, countdown=backoff_s)  # noqa: E731
            jobs.enqueue_job(db_session=session, job=job, enqueue=enqueue)
            session.commit()
            return "retrying"
    _end(sessions, job_id, worker_id, FAILED, error)
    return FAILED


def execute_job(
    job_id: int, *, sessions: sessionmaker[Session], settings: Settings, worker_id: str, task_id: str | None
) -> str:
    """Runs one attempt of a job; returns what happened (claimed jobs always leave a final or queued row)."""
    offline_hub()
    with sessions() as session:
        claim = jobs.claim_job(
            db_session=session, job_id=job_id, worker_id=worker_id, task_id=task_id, settings=settings
        )
    if not claim.claimed:
        log.info("job %s: not run (%s)", job_id, claim.reason)
        return claim.reason
    reporter = DbReporter(sessions, job_id, worker_id)
    with sessions() as session:
        job = session.get(Job, job_id)
        kind, previous_log = job.kind, job.log_tail or ""
        attempt = f"attempt {job.attempts}/{job.max_attempts} on {worker_id} ({claim.reason})"
    # never write through the reporter inside another session: on SQLite the open one holds the write lock
    reporter.lines.extend(previous_log.splitlines())
    reporter.log(attempt)
    with Heartbeat(sessions, job_id, worker_id, settings.job_heartbeat_s):
        try:
            with sessions() as session:
                config, dataset, workdir = prepare(session, session.get(Job, job_id), settings)
            # the queue names a worker pool, not the hardware: the job page shows this line as the device
            reporter.log(f"device: {describe_device(getattr(config, 'device', 'auto'))}")
            result = JOB_KINDS[kind].runner()(config, dataset, reporter, workdir)
            reporter.flush(force=True)
            complete(sessions, job_id, worker_id, result, reporter, settings)
            return SUCCEEDED
        except JobCancelled:
            reporter.log("cancelled")
            reporter.flush(force=True)
            _end(sessions, job_id, worker_id, CANCELLED, None)
            return CANCELLED
        except JobLost as exc:
            log.warning("job %s: %s", job_id, exc)
            return "lost"
        except Exception as exc:  # noqa: BLE001 - every failure lands in the row with its traceback
            log.exception("job %s failed", job_id)
            try:
                reporter.log(f"error: {exc!r}")
                reporter.flush(force=True)
            except Exception:  # noqa: BLE001 - the DB may be the thing that failed
                pass
            return retry_or_fail(sessions, job_id, worker_id, exc, settings)


@celery_app.task(name="hardcase.run_job", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self, job_id: int) -> str:
    return execute_job(
        job_id,
        sessions=worker_sessionmaker(),
        settings=worker_settings(),
        worker_id=f"{self.request.hostname}:{os.getpid()}",
        task_id=self.request.id,
    )


@celery_app.task(name="hardcase.reap_jobs")
def reap_jobs() -> dict:
    """Periodic (beat): re-sends jobs whose worker died, fails those out of attempts, kills ignored cancels."""
    settings = worker_settings()
    with worker_sessionmaker()() as session:
        report = jobs.reap_jobs(
            db_session=session,
            settings=settings,
            enqueue=lambda job: send_job(settings, job.id, job.queue),
            revoke=lambda task_id: revoke_task(settings, task_id),
        )
    return report.__dict__
