"""Retraining policies (validated like job submissions), the triggers that start loop runs, and reading runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery.schedules import crontab
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.datasets.models import DatasetItem, DatasetVersion
from app.datasets.service import consensus_labels, holdout_item_ids
from app.drift.models import DriftCheck
from app.jobs.service import as_utc, validated_submission
from app.loop.models import ACTIVE, LoopRun, RetrainingPolicy
from app.loop.schemas import LoopRunRead, PolicyJob, PolicyRead, PolicyWrite
from app.projects.models import Project
from app.registry.models import ModelVersion
from app.registry.service import production_model

PRODUCTION_REFERENCE = "registry:production"  # a policy's warm start from whatever serves when the run starts
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


# --- policies -----------------------------------------------------------------------------------------------


def cron(expression: str, now: datetime | None = None) -> crontab:
    """A 5-field cron expression (UTC); ValueError naming what is wrong."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), not {len(fields)}")
    moment = now
    try:
        return crontab(
            **dict(zip(CRON_FIELDS, fields, strict=True)), nowfun=(lambda: moment) if now else None
        )
    except Exception as exc:  # noqa: BLE001 - celery's parser raises ValueError and ParseException alike
        raise ValueError(f"not a valid cron expression: {exc}") from exc


def schedule_due(expression: str, last: datetime, now: datetime) -> bool:
    return cron(expression, now).remaining_estimate(as_utc(last)).total_seconds() <= 0


def resolve_base_model(*, db_session: Session, project: Project, base_model: str | None) -> str | None:
    """`registry:production` names the production version now; without one the kind's default is used."""
    if base_model != PRODUCTION_REFERENCE:
        return base_model
    production = production_model(db_session=db_session, project=project)
    return f"registry:v{production.version}" if production is not None else None


def validated_jobs(
    *, db_session: Session, project: Project, jobs: list[PolicyJob], settings: Settings
) -> list[dict[str, Any]]:
    """Each job checked exactly as POST /jobs checks a submission; errors name the job (jobs.N.field)."""
    out = []
    for index, job in enumerate(jobs):
        try:
            validated_submission(
                db_session=db_session,
                project=project,
                kind=job.kind,
                base_model=resolve_base_model(
                    db_session=db_session, project=project, base_model=job.base_model
                ),
                config=job.config,
                settings=settings,
            )
        except ApiError as exc:
            raise ApiError(exc.status_code, f"jobs.{index}.{exc.field}", exc.message) from exc
        out.append(job.model_dump(mode="json"))
    return out


def get_policy(*, db_session: Session, project: Project) -> RetrainingPolicy | None:
    return db_session.scalar(select(RetrainingPolicy).where(RetrainingPolicy.project_id == project.id))


def require_policy(*, db_session: Session, project: Project) -> RetrainingPolicy:
    policy = get_policy(db_session=db_session, project=project)
    if policy is None:
        raise ApiError(404, "policy", f"project {project.name!r} has no retraining policy")
    return policy


def save_policy(
    *, db_session: Session, project: Project, policy_in: PolicyWrite, user_id: int | None, settings: Settings
) -> RetrainingPolicy:
    if policy_in.schedule is not None:
        try:
            cron(policy_in.schedule)
        except ValueError as exc:
            raise ApiError(422, "schedule", str(exc)) from exc
    if any(not key.strip() or len(key) > 100 for key in policy_in.slice_keys):
        raise ApiError(422, "slice_keys", "a slice key is a non-empty metadata key of at most 100 characters")
    jobs = validated_jobs(db_session=db_session, project=project, jobs=policy_in.jobs, settings=settings)
    policy = get_policy(db_session=db_session, project=project)
    if policy is None:
        policy = RetrainingPolicy(project_id=project.id)
        db_session.add(policy)
    values = policy_in.model_dump(mode="json", exclude={"jobs"})
    for name, value in values.items():
        setattr(policy, name, value)
    if policy.schedule != policy_in.schedule or policy.last_scheduled_at is None:
        policy.last_scheduled_at = utcnow()  # a new schedule counts from now, not from the epoch
    policy.jobs, policy.updated_by, policy.updated_at = jobs, user_id, utcnow()
    db_session.flush()
    return policy


def set_paused(
    *, db_session: Session, project: Project, paused: bool, user_id: int | None
) -> RetrainingPolicy:
    policy = require_policy(db_session=db_session, project=project)
    policy.paused, policy.updated_by, policy.updated_at = paused, user_id, utcnow()
    db_session.flush()
    return policy


def policy_read(
    *, db_session: Session, project: Project, policy: RetrainingPolicy, settings: Settings
) -> PolicyRead:
    return PolicyRead(
        project=project.name,
        paused=policy.paused,
        new_labels=policy.new_labels,
        schedule=policy.schedule,
        on_drift=policy.on_drift,
        jobs=[PolicyJob(**job) for job in policy.jobs],
        min_holdout_items=policy.min_holdout_items,
        require_improvement=policy.require_improvement,
        slice_keys=list(policy.slice_keys or []),
        slice_tolerance=policy.slice_tolerance,
        auto_promote=policy.auto_promote,
        max_runs_per_day=policy.max_runs_per_day,
        last_scheduled_at=as_utc(policy.last_scheduled_at),
        updated_at=as_utc(policy.updated_at),
        new_labels_pending=new_labels_pending(db_session=db_session, project=project),
        runs_today=runs_today(db_session=db_session, project=project),
        auto_promotion_disabled_globally=not settings.loop_auto_promote,
    )


# --- triggers -----------------------------------------------------------------------------------------------


def new_labels_pending(*, db_session: Session, project: Project) -> int:
    """Decided consensus labels on items the latest dataset version lacks (the holdout never counts)."""
    labeled = set(consensus_labels(db_session=db_session, project=project))
    latest = db_session.scalar(
        select(DatasetVersion.id)
        .where(DatasetVersion.project_id == project.id)
        .order_by(DatasetVersion.version.desc())
        .limit(1)
    )
    frozen: set[int] = set()
    if latest is not None:
        frozen = set(
            db_session.scalars(select(DatasetItem.item_id).where(DatasetItem.dataset_version_id == latest))
        )
    return len(labeled - frozen - holdout_item_ids(db_session=db_session, project=project))


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def runs_today(*, db_session: Session, project: Project, now: datetime | None = None) -> int:
    since = day_start(now or utcnow())
    return db_session.scalar(
        select(func.count(LoopRun.id)).where(LoopRun.project_id == project.id, LoopRun.created_at >= since)
    )


def active_run(*, db_session: Session, project_id: int) -> LoopRun | None:
    return db_session.scalar(
        select(LoopRun).where(LoopRun.project_id == project_id, LoopRun.state.in_(ACTIVE))
    )


def why_not_start(*, db_session: Session, project: Project, policy: RetrainingPolicy) -> str | None:
    if policy.paused:
        return "the retraining policy is paused"
    running = active_run(db_session=db_session, project_id=project.id)
    if running is not None:
        return f"loop run {running.id} is still {running.state}"
    if runs_today(db_session=db_session, project=project) >= policy.max_runs_per_day:
        return f"the policy's cap of {policy.max_runs_per_day} runs per day is reached"
    return None


def policy_snapshot(policy: RetrainingPolicy) -> dict[str, Any]:
    names = (
        "jobs",
        "min_holdout_items",
        "require_improvement",
        "slice_keys",
        "slice_tolerance",
        "auto_promote",
    )
    return {name: getattr(policy, name) for name in names}


def start_run(
    *,
    db_session: Session,
    project: Project,
    trigger: str,
    detail: dict[str, Any],
    user_id: int | None = None,
) -> LoopRun:
    """A new run in `triggered` state; ApiError 409 when the policy forbids one now. Concurrent starts collide
    on the one-active-run index: exactly one insert wins, the others get 409 naming the winner."""
    policy = require_policy(db_session=db_session, project=project)
    refusal = why_not_start(db_session=db_session, project=project, policy=policy)
    if refusal is not None:
        raise ApiError(409, "run", refusal)
    now = utcnow()
    run = LoopRun(
        project_id=project.id,
        trigger=trigger,
        trigger_detail=detail,
        policy=policy_snapshot(policy),
        created_by=user_id,
        created_at=now,
        advanced_at=now,
        timeline=[{"at": now.isoformat(), "event": "triggered", "detail": describe_trigger(trigger, detail)}],
    )
    try:
        with db_session.begin_nested():
            db_session.add(run)
    except IntegrityError as exc:
        raise ApiError(409, "run", "another loop run of this project started at the same moment") from exc
    return run


def describe_trigger(trigger: str, detail: dict[str, Any]) -> str:
    if trigger == "labels":
        return f"{detail.get('new_labels')} new consensus labels (policy: {detail.get('threshold')})"
    if trigger == "schedule":
        return f"schedule {detail.get('schedule')!r}"
    if trigger == "drift":
        return f"drift alarm on {detail.get('model')} (p={detail.get('p_value')})"
    return "started by hand" + (f": {detail['note']}" if detail.get("note") else "")


def due_trigger(
    *, db_session: Session, project: Project, policy: RetrainingPolicy, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """The first trigger that fires now (bookkeeping for schedule and drift is updated by the caller)."""
    if policy.schedule and schedule_due(policy.schedule, policy.last_scheduled_at or policy.updated_at, now):
        return "schedule", {"schedule": policy.schedule}
    if policy.on_drift:
        alarm = db_session.scalar(
            select(DriftCheck)
            .where(
                DriftCheck.project_id == project.id,
                DriftCheck.is_drift.is_(True),
                DriftCheck.id > (policy.last_drift_check_id or 0),
                DriftCheck.created_at >= policy.updated_at,
            )
            .order_by(DriftCheck.id.desc())
            .limit(1)
        )
        if alarm is not None:
            return "drift", {"check_id": alarm.id, "model": alarm.model, "p_value": alarm.p_value}
    if policy.new_labels:
        pending = new_labels_pending(db_session=db_session, project=project)
        if pending >= policy.new_labels:
            return "labels", {"new_labels": pending, "threshold": policy.new_labels}
    return None


def fire_triggers(*, db_session: Session, project: Project, now: datetime | None = None) -> LoopRun | None:
    """Starts the run a due trigger asks for, if the policy allows one now; the caller commits."""
    now = now or utcnow()
    policy = get_policy(db_session=db_session, project=project)
    if policy is None or why_not_start(db_session=db_session, project=project, policy=policy) is not None:
        return None
    due = due_trigger(db_session=db_session, project=project, policy=policy, now=now)
    if due is None:
        return None
    trigger, detail = due
    if trigger == "schedule":
        policy.last_scheduled_at = now
    if trigger == "drift":
        policy.last_drift_check_id = detail["check_id"]
    try:
        return start_run(db_session=db_session, project=project, trigger=trigger, detail=detail)
    except ApiError:
        return None


# --- reading ------------------------------------------------------------------------------------------------


def get_run(*, db_session: Session, project: Project, run_id: int) -> LoopRun:
    run = db_session.get(LoopRun, run_id)
    if run is None or run.project_id != project.id:
        raise ApiError(404, "run_id", f"project {project.name!r} has no loop run {run_id}")
    return run


def list_runs(*, db_session: Session, project: Project, limit: int = 50) -> list[LoopRun]:
    query = select(LoopRun).where(LoopRun.project_id == project.id).order_by(LoopRun.id.desc()).limit(limit)
    return list(db_session.scalars(query))


def run_reads(*, db_session: Session, project: Project, runs: list[LoopRun]) -> list[LoopRunRead]:
    datasets = dict(
        db_session.execute(
            select(DatasetVersion.id, DatasetVersion.version).where(DatasetVersion.project_id == project.id)
        ).all()
    )
    models = dict(
        db_session.execute(
            select(ModelVersion.id, ModelVersion.version).where(ModelVersion.project_id == project.id)
        ).all()
    )
    return [
        LoopRunRead(
            id=run.id,
            project=project.name,
            trigger=run.trigger,
            trigger_detail=run.trigger_detail or {},
            state=run.state,
            dataset_version=datasets.get(run.dataset_version_id),
            job_ids=list(run.job_ids or []),
            candidate_version=models.get(run.candidate_version_id),
            reason=run.reason,
            figures=run.figures or {},
            timeline=list(run.timeline or []),
            created_at=as_utc(run.created_at),
            decided_at=as_utc(run.decided_at),
        )
        for run in runs
    ]


def loop_runs(*, db_session: Session, project: Project, limit: int = 5) -> list[LoopRunRead]:
    """The newest runs as the overview's timeline shows them."""
    runs = list_runs(db_session=db_session, project=project, limit=limit)
    return run_reads(db_session=db_session, project=project, runs=runs)
