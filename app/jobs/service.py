"""Job state transitions. The row is the truth: create, claim (with stale-heartbeat takeover), heartbeat,
finish, cancel and reap; Celery messages are only hints that some worker should look at a job."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.datasets.models import DatasetVersion
from app.jobs.base_models import check_base_model
from app.jobs.capabilities import check_runnable, kind_availability
from app.jobs.models import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, Job, JobMetric
from app.jobs.schemas import JobCreate, JobDetail, JobProgress, JobRead
from app.projects.models import Project
from app.registry.models import ModelVersion
from app.webhooks import service as webhooks
from ml.training.bases import BUILTIN_IMAGE_SIZES, PRETRAIN_KIND, is_registry_reference
from ml.training.kinds import JOB_KINDS, build_config, config_fields
from ml.training.pretrain.config import PretrainConfig

STALE_FACTOR = 3  # heartbeats missed before a running job counts as abandoned
CANCEL_GRACE_S = 30.0  # a cancelled job still heart-beating after this long is killed
QUEUED_REQUEUE_S = 600.0  # a queued job untouched this long is re-sent (its message may be lost)
BASE_MODEL_FIELDS = ("base_model", "model_name_or_path", "student", "model")

Enqueue = Callable[[Job], str]
Revoke = Callable[[str], None]


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stale_after_s(settings: Settings) -> float:
    return float(settings.job_heartbeat_s * STALE_FACTOR)


# --- kinds and validation -----------------------------------------------------------------------------------


def base_model_field(kind: str) -> str | None:
    names = {f.name for f in dataclasses.fields(JOB_KINDS[kind].config_class())}
    return next((name for name in BASE_MODEL_FIELDS if name in names), None)


def job_kinds(*, db_session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Every job kind with its form fields and whether a live worker can run it (and why not)."""
    availability = kind_availability(db_session=db_session, settings=settings)
    return [
        {
            "name": kind.name,
            "title": kind.title,
            "queue": kind.queue,
            "base_model_field": base_model_field(kind.name),
            "config_fields": config_fields(kind.name),
            "available": availability[kind.name].available,
            "availability_note": availability[kind.name].reason,
        }
        for kind in JOB_KINDS.values()
    ]


def job_config(kind: str, base_model: str | None, values: dict[str, Any]) -> dict[str, Any]:
    """The validated config values to store; every problem is an ApiError naming its field."""
    if kind not in JOB_KINDS:
        raise ApiError(422, "kind", f"unknown job kind {kind!r}; known: {', '.join(sorted(JOB_KINDS))}")
    values = dict(values)
    if base_model is not None:
        field = base_model_field(kind)
        if field is None:
            raise ApiError(422, "base_model", f"job kind {kind} takes no base model")
        values[field] = base_model
    try:
        build_config(kind, values)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        field = field if field.startswith("config") or field == "kind" else f"config.{field}"
        raise ApiError(422, field, message or str(exc)) from exc
    return values


def effective_base_model(kind: str, values: dict[str, Any]) -> tuple[str, str] | None:
    """(field the user would correct, the base model the job will load): given, else the config's default."""
    name = base_model_field(kind)
    if name is None:
        return None
    defaults = {f.name: f.default for f in dataclasses.fields(JOB_KINDS[kind].config_class())}
    return f"config.{name}", str(values.get(name, defaults[name]))


def validated_submission(
    *,
    db_session: Session,
    project: Project,
    kind: str,
    base_model: str | None,
    config: dict[str, Any],
    settings: Settings,
) -> dict[str, Any]:
    """The config a submission stores, once its kind, knobs and base model check out (ApiError otherwise);
    retraining policies validate their jobs with it at save time."""
    values = job_config(kind, base_model, config)
    base = effective_base_model(kind, values)
    if base is not None:
        field = "base_model" if base_model is not None else base[0]
        check_base_model(
            db_session=db_session,
            settings=settings,
            project=project,
            kind=kind,
            field=field,
            reference=base[1],
        )
    return values


def check_teacher(
    *, db_session: Session, settings: Settings, project: Project, kind: str, values: dict[str, Any]
) -> None:
    """A distillation teacher must exist here like a base model; a registry version cannot teach yet."""
    defaults = {f.name: f.default for f in dataclasses.fields(JOB_KINDS[kind].config_class())}
    if "teacher" not in defaults:
        return
    teacher = str(values.get("teacher", defaults["teacher"]))
    if is_registry_reference(teacher):
        raise ApiError(
            422,
            "config.teacher",
            "a registry version cannot be the teacher yet: give its base model as teacher and its unpacked "
            "adapter/ folder as teacher_adapter",
        )
    check_base_model(
        db_session=db_session,
        settings=settings,
        project=project,
        kind=kind,
        field="config.teacher",
        reference=teacher,
    )


def check_pretrain_dataset(*, project: Project, dataset: DatasetVersion, values: dict[str, Any]) -> None:
    """What would fail in the worker, refused at submission: its linear probe needs a binary project with both
    classes labeled in train and val, a built-in ViT only takes its own input size, and a contrastive batch needs
    two images."""
    if project.kind != "binary" or len(project.classes) != 2:
        raise ApiError(
            422,
            "kind",
            f"pretrain needs a binary project (its linear probe), {project.name!r} is {project.kind}",
        )
    split_classes = (dataset.stats or {}).get("split_classes", {})
    for split in ("train", "val"):
        counts = split_classes.get(split, {})
        missing = [name for name in project.classes if not counts.get(name)]
        if missing:
            raise ApiError(
                422,
                "dataset_version",
                f"dataset v{dataset.version} has no {', '.join(missing)} label in its {split} split: the linear "
                "probe that scores the pretrained backbone needs both classes in train and val",
            )
    base = str(values.get("base_model", PretrainConfig.base_model))
    size = int(values.get("image_size", 0) or 0)
    native = BUILTIN_IMAGE_SIZES.get(base)
    if native is not None and size not in (0, native):
        raise ApiError(422, "config.image_size", f"{base} takes {native}px inputs, not {size}px (use 0)")
    if dataset.item_count < 2:
        raise ApiError(422, "dataset_version", "self-supervised training needs at least 2 images")


def create_job(
    *,
    db_session: Session,
    project: Project,
    job_in: JobCreate,
    user_id: int | None,
    settings: Settings,
    require_runnable: bool = False,
) -> Job:
    """A queued job once its submission checks out; with `require_runnable` (a person submitting) it is also refused
    when live workers exist and none can run it. Automated submitters (retraining loop, Label Studio) queue the
    job anyway: a GPU worker that is down for now picks it up when it returns."""
    values = validated_submission(
        db_session=db_session,
        project=project,
        kind=job_in.kind,
        base_model=job_in.base_model,
        config=job_in.config,
        settings=settings,
    )
    check_teacher(db_session=db_session, settings=settings, project=project, kind=job_in.kind, values=values)
    if require_runnable:
        check_runnable(db_session=db_session, settings=settings, kind=job_in.kind, values=values)
    dataset = db_session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.project_id == project.id, DatasetVersion.version == job_in.dataset_version
        )
    )
    if dataset is None:
        raise ApiError(
            422,
            "dataset_version",
            f"project {project.name!r} has no dataset version {job_in.dataset_version}",
        )
    if job_in.kind == PRETRAIN_KIND:
        check_pretrain_dataset(project=project, dataset=dataset, values=values)
    job = Job(
        project_id=project.id,
        kind=job_in.kind,
        dataset_version_id=dataset.id,
        config=values,
        slice_keys=list(job_in.slice_keys),
        queue=JOB_KINDS[job_in.kind].queue,
        max_attempts=job_in.max_attempts,
        created_by=user_id,
    )
    db_session.add(job)
    db_session.flush()
    return job


def mark_enqueued(*, db_session: Session, job_id: int, task_id: str) -> None:
    db_session.execute(
        update(Job).where(Job.id == job_id).values(enqueued_at=utcnow(), celery_task_id=task_id)
    )


def enqueue_job(*, db_session: Session, job: Job, enqueue: Enqueue) -> bool:
    """Sends the job to its queue; a broker outage leaves it queued for the reaper (returns False)."""
    try:
        task_id = enqueue(job)
    except Exception as exc:  # noqa: BLE001 - any broker error: the reaper re-sends later
        append_log(db_session=db_session, job_id=job.id, line=f"broker unavailable, will retry: {exc}")
        return False
    mark_enqueued(db_session=db_session, job_id=job.id, task_id=task_id)
    return True


# --- reading ------------------------------------------------------------------------------------------------


def get_job(*, db_session: Session, job_id: int) -> Job:
    job = db_session.get(Job, job_id)
    if job is None:
        raise ApiError(404, "job", f"no job {job_id}")
    return job


def list_jobs(
    *, db_session: Session, project: Project | None = None, status: str | None = None, limit: int = 100
) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if project is not None:
        query = query.where(Job.project_id == project.id)
    if status is not None:
        query = query.where(Job.status == status)
    return list(db_session.scalars(query))


def metric_series(*, db_session: Session, job_id: int, after_id: int = 0) -> list[JobMetric]:
    query = select(JobMetric).where(JobMetric.job_id == job_id, JobMetric.id > after_id)
    return list(db_session.scalars(query.order_by(JobMetric.step, JobMetric.id)))


def series_by_name(metrics: list[JobMetric]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = defaultdict(list)
    for m in metrics:
        out[m.name].append([m.step, m.value])
    return dict(out)


def latest_metrics(*, db_session: Session, job_ids: list[int]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(dict)
    if not job_ids:
        return out
    newest = select(func.max(JobMetric.id)).where(JobMetric.job_id.in_(job_ids))
    newest = newest.group_by(JobMetric.job_id, JobMetric.name)
    for m in db_session.scalars(select(JobMetric).where(JobMetric.id.in_(newest))):
        out[m.job_id][m.name] = m.value
    return out


def progress_of(job: Job, now: datetime | None = None) -> JobProgress:
    """Step/total, and an ETA from this attempt's pace (a resumed attempt starts past step 0)."""
    now = now or utcnow()
    started = as_utc(job.started_at)
    elapsed = (as_utc(job.finished_at) or now) - started if started else None
    done = job.progress_step - max(0, (job.attempt_first_step or 1) - 1)
    eta = None
    if job.status == RUNNING and elapsed is not None and done > 0 and job.progress_total:
        eta = elapsed.total_seconds() / done * max(0, job.progress_total - job.progress_step)
    fraction = job.progress_step / job.progress_total if job.progress_total else 0.0
    return JobProgress(
        step=job.progress_step,
        total=job.progress_total,
        fraction=min(1.0, fraction),
        eta_s=eta,
        elapsed_s=elapsed.total_seconds() if elapsed is not None else None,
    )


def job_reads(*, db_session: Session, jobs: list[Job]) -> list[JobRead]:
    ids = [j.id for j in jobs]
    projects = dict(
        db_session.execute(
            select(Project.id, Project.name).where(Project.id.in_({j.project_id for j in jobs}))
        ).all()
    )
    datasets = dict(
        db_session.execute(
            select(DatasetVersion.id, DatasetVersion.version).where(
                DatasetVersion.id.in_({j.dataset_version_id for j in jobs})
            )
        ).all()
    )
    models = dict(
        db_session.execute(
            select(ModelVersion.job_id, ModelVersion.version).where(ModelVersion.job_id.in_(ids))
        ).all()
    )
    latest = latest_metrics(db_session=db_session, job_ids=ids)
    now = utcnow()
    return [
        JobRead(
            id=j.id,
            project=projects.get(j.project_id, ""),
            kind=j.kind,
            dataset_version=datasets.get(j.dataset_version_id, 0),
            config=j.config,
            slice_keys=j.slice_keys or [],
            status=j.status,
            attempts=j.attempts,
            max_attempts=j.max_attempts,
            progress=progress_of(j, now),
            attempt_first_step=j.attempt_first_step,
            latest_metrics=latest.get(j.id, {}),
            error=j.error,
            artifact_dir=j.artifact_dir,
            celery_task_id=j.celery_task_id,
            worker_id=j.worker_id,
            queue=j.queue,
            heartbeat_at=as_utc(j.heartbeat_at),
            heartbeat_age_s=(now - as_utc(j.heartbeat_at)).total_seconds() if j.heartbeat_at else None,
            cancel_requested_at=as_utc(j.cancel_requested_at),
            created_at=as_utc(j.created_at),
            started_at=as_utc(j.started_at),
            finished_at=as_utc(j.finished_at),
            model_version=models.get(j.id),
        )
        for j in jobs
    ]


def job_detail(*, db_session: Session, job: Job) -> JobDetail:
    read = job_reads(db_session=db_session, jobs=[job])[0]
    series = series_by_name(metric_series(db_session=db_session, job_id=job.id))
    return JobDetail(**read.model_dump(), log_tail=job.log_tail or "", metrics=series)


# --- transitions --------------------------------------------------------------------------------------------


def append_log(*, db_session: Session, job_id: int, line: str, keep_lines: int = 200) -> None:
    job = db_session.get(Job, job_id)
    if job is not None:
        lines = [*(job.log_tail or "").splitlines(), f"{utcnow():%H:%M:%S} {line}"]
        job.log_tail = "\n".join(lines[-keep_lines:])


def _finish(db_session: Session, job: Job, status: str, error: str | None = None) -> None:
    job.status, job.finished_at, job.heartbeat_at = status, utcnow(), None
    if error is not None:
        job.error = error
    webhooks.emit_job_finished(db_session=db_session, job_id=job.id)


def request_cancel(*, db_session: Session, job: Job) -> Job:
    """Queued jobs are cancelled at once; a running one sees the flag at its next step (and is killed
    by the reaper if it still heart-beats after the grace period)."""
    if job.status in FINISHED:
        raise ApiError(409, "status", f"job {job.id} already {job.status}")
    if job.cancel_requested_at is None:
        job.cancel_requested_at = utcnow()
    if job.status == QUEUED:
        _finish(db_session, job, CANCELLED)
    db_session.flush()
    return job


@dataclass(frozen=True)
class Claim:
    claimed: bool
    reason: str  # claimed | takeover | duplicate | finished | cancelled | gave_up | missing


def _claimable(stale_before: datetime):
    live_heartbeat = and_(Job.heartbeat_at.is_not(None), Job.heartbeat_at >= stale_before)
    return or_(Job.status == QUEUED, and_(Job.status == RUNNING, ~live_heartbeat))


def claim_job(
    *, db_session: Session, job_id: int, worker_id: str, task_id: str | None, settings: Settings
) -> Claim:
    """Atomically makes this worker the job's runner: queued, or running with a stale heartbeat (takeover).

    A running job with a live heartbeat is a duplicate delivery: the caller must exit without touching it.
    """
    now = utcnow()
    stale_before = now - timedelta(seconds=stale_after_s(settings))
    before = db_session.get(Job, job_id)
    if before is None:
        return Claim(False, "missing")
    was_running = before.status == RUNNING
    db_session.expire(before)
    result = db_session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            _claimable(stale_before),
            Job.cancel_requested_at.is_(None),
            Job.attempts < Job.max_attempts,
        )
        .values(
            status=RUNNING,
            attempts=Job.attempts + 1,
            worker_id=worker_id,
            celery_task_id=task_id,
            heartbeat_at=now,
            started_at=now,
            attempt_first_step=None,
            finished_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    db_session.commit()
    if result.rowcount == 1:
        return Claim(True, "takeover" if was_running else "claimed")
    return _unclaimable(db_session, job_id, stale_before)


def _unclaimable(db_session: Session, job_id: int, stale_before: datetime) -> Claim:
    """Why the claim failed; an abandoned job that may not run again is finished here."""
    job = db_session.get(Job, job_id)
    if job.status in FINISHED:
        return Claim(False, "finished")
    abandoned = (
        job.status == QUEUED or as_utc(job.heartbeat_at) is None or as_utc(job.heartbeat_at) < stale_before
    )
    if not abandoned:
        return Claim(False, "duplicate")
    if job.cancel_requested_at is not None:
        _finish(db_session, job, CANCELLED)
        db_session.commit()
        return Claim(False, "cancelled")
    _finish(db_session, job, FAILED, f"gave up after {job.attempts} attempts: the worker was lost each time")
    db_session.commit()
    return Claim(False, "gave_up")


def owned(job_id: int, worker_id: str):
    """The WHERE clause of every write a runner makes: it still owns the running job."""
    return and_(Job.id == job_id, Job.worker_id == worker_id, Job.status == RUNNING)


def beat(*, db_session: Session, job_id: int, worker_id: str) -> bool:
    """Refreshes the heartbeat; False when this worker no longer owns the job."""
    result = db_session.execute(update(Job).where(owned(job_id, worker_id)).values(heartbeat_at=utcnow()))
    db_session.commit()
    return result.rowcount == 1


def cancel_requested(*, db_session: Session, job_id: int) -> bool:
    return db_session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None


def finish_owned(
    *, db_session: Session, job_id: int, worker_id: str, status: str, error: str | None = None, **values: Any
) -> bool:
    """Ends the attempt if this worker still owns it; the caller commits."""
    result = db_session.execute(
        update(Job)
        .where(owned(job_id, worker_id))
        .values(status=status, finished_at=utcnow(), heartbeat_at=None, error=error, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        webhooks.emit_job_finished(db_session=db_session, job_id=job_id)
    return result.rowcount == 1


def release_for_retry(*, db_session: Session, job_id: int, worker_id: str, error: str) -> bool:
    """A transient failure with attempts left: back to queued (the checkpoint stays in the workdir)."""
    result = db_session.execute(
        update(Job)
        .where(owned(job_id, worker_id))
        .values(status=QUEUED, worker_id=None, heartbeat_at=None, error=error)
        .execution_options(synchronize_session=False)
    )
    db_session.commit()
    return result.rowcount == 1


# --- the reaper ---------------------------------------------------------------------------------------------


@dataclass
class ReapReport:
    requeued: list[int] = dataclasses.field(default_factory=list)
    failed: list[int] = dataclasses.field(default_factory=list)
    cancelled: list[int] = dataclasses.field(default_factory=list)
    killed: list[int] = dataclasses.field(default_factory=list)


def reap_jobs(
    *,
    db_session: Session,
    settings: Settings,
    enqueue: Enqueue,
    revoke: Revoke,
    cancel_grace_s: float = CANCEL_GRACE_S,
    queued_requeue_s: float = QUEUED_REQUEUE_S,
) -> ReapReport:
    """Re-sends abandoned jobs (stale heartbeat, or queued and never picked up), fails those out of attempts,
    and kills cancelled jobs that ignore their flag. Safe to run anywhere, any number of times."""
    now = utcnow()
    stale_s = stale_after_s(settings)
    report = ReapReport()
    candidates = db_session.scalars(select(Job).where(Job.status.in_([QUEUED, RUNNING])).order_by(Job.id))
    for job in list(candidates):
        if job.status == RUNNING:
            _reap_running(db_session, job, now, stale_s, enqueue, revoke, cancel_grace_s, report)
        elif job.cancel_requested_at is not None:
            _finish(db_session, job, CANCELLED)
            report.cancelled.append(job.id)
        elif _older_than(job.enqueued_at, now, queued_requeue_s):
            _resend(db_session, job, enqueue, report)
    db_session.commit()
    return report


def _older_than(moment: datetime | None, now: datetime, seconds: float) -> bool:
    return moment is None or (now - as_utc(moment)).total_seconds() > seconds


def _reap_running(
    db_session: Session,
    job: Job,
    now: datetime,
    stale_s: float,
    enqueue: Enqueue,
    revoke: Revoke,
    cancel_grace_s: float,
    report: ReapReport,
) -> None:
    stale = _older_than(job.heartbeat_at, now, stale_s)
    if job.cancel_requested_at is not None and (
        stale or _older_than(job.cancel_requested_at, now, cancel_grace_s)
    ):
        if not stale and job.celery_task_id:
            revoke(job.celery_task_id)
            report.killed.append(job.id)
        _finish(db_session, job, CANCELLED)
        append_log(db_session=db_session, job_id=job.id, line="cancelled by the reaper")
        report.cancelled.append(job.id)
    elif stale and job.attempts >= job.max_attempts:
        _finish(
            db_session, job, FAILED, f"gave up after {job.attempts} attempts: the worker was lost each time"
        )
        report.failed.append(job.id)
    elif stale:
        # one re-send per stall (nothing sent since the last heartbeat), then one per stale window
        silent_since = as_utc(job.heartbeat_at) or as_utc(job.started_at) or now
        sent = as_utc(job.enqueued_at)
        if sent is None or sent < silent_since or _older_than(sent, now, 2 * stale_s):
            _resend(db_session, job, enqueue, report)


def _resend(db_session: Session, job: Job, enqueue: Enqueue, report: ReapReport) -> None:
    try:
        job.celery_task_id = enqueue(job)
    except Exception:  # noqa: BLE001 - the broker is down: try again at the next reap
        return
    job.enqueued_at = utcnow()
    report.requeued.append(job.id)
