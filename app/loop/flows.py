"""A loop run as a state machine the DB drives: each step runs in one transaction on the locked run row, so a
worker killed mid-step leaves the run where it was and the next sweep redoes the step; nothing happens twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.datasets.models import DatasetItem
from app.datasets.schemas import DatasetFreeze
from app.datasets.service import freeze_dataset_version, holdout_item_ids
from app.jobs import service as jobs
from app.jobs.dispatch import PUBLISH_RETRY_POLICY, celery_client
from app.jobs.models import FINISHED, SUCCEEDED, Job
from app.jobs.schemas import JobCreate
from app.loop.models import FAILED, HELD, PROMOTED, REJECTED, TRAINING, TRIGGERED, LoopRun
from app.loop.service import resolve_base_model
from app.projects.models import Project
from app.registry import service as registry
from app.registry.models import PRODUCTION, ModelVersion

log = logging.getLogger("hardcase.loop")

ADVANCE_TASK = "hardcase.advance_loop_run"
FOLLOW_PRODUCTION_TASK = "hardcase.follow_production"

SendJob = Callable[[Job], str]


def send_advance(settings: Settings, run_id: int) -> None:
    """A hint that a worker should advance the run now (bounded; the beat sweep advances it anyway)."""
    try:
        celery_client(settings).send_task(
            ADVANCE_TASK, args=[run_id], queue="cpu", ignore_result=True, retry_policy=PUBLISH_RETRY_POLICY
        )
    except Exception as exc:  # noqa: BLE001 - kombu raises several types; the sweep catches up
        log.warning("broker unreachable (%s); loop run %s advances at the next sweep", exc, run_id)


def send_rerank(settings: Settings, project_id: int) -> None:
    """After a promotion the queue follows the new model: a worker scores the pending pool with it and
    re-ranks the project (bounded; with the broker down, the plain re-rank is tried the same way)."""
    try:
        celery_client(settings).send_task(
            FOLLOW_PRODUCTION_TASK,
            args=[project_id],
            queue="cpu",
            ignore_result=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except Exception as exc:  # noqa: BLE001 - the next ranking change or ingest re-scores anyway
        log.warning("broker unreachable (%s); project %s not re-ranked after promotion", exc, project_id)


class HoldoutLeak(Exception):
    """A candidate's training data holds a holdout item: it must never be promoted."""


def note(run: LoopRun, event: str, detail: str) -> None:
    run.timeline = [*(run.timeline or []), {"at": utcnow().isoformat(), "event": event, "detail": detail}]


def lock_run(db_session: Session, run_id: int) -> LoopRun | None:
    """Takes the run row for this transaction: a write first (SQLite's writer lock, PostgreSQL's row lock), so a
    second worker advancing the same run waits here and then sees the state the first one left."""
    db_session.commit()  # a fresh transaction: SQLite refuses to upgrade an older read snapshot
    taken = db_session.execute(update(LoopRun).where(LoopRun.id == run_id).values(advanced_at=utcnow()))
    if taken.rowcount != 1:
        db_session.rollback()
        return None
    return db_session.scalar(
        select(LoopRun)
        .where(LoopRun.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def advance_run(*, db_session: Session, run_id: int, settings: Settings, send_job: SendJob) -> str:
    """Moves the run one step if it can (commits); returns its state. Safe to call any number of times."""
    run = lock_run(db_session, run_id)
    if run is None:
        return "missing"
    project = db_session.get(Project, run.project_id)
    created: list[Job] = []
    if run.state == TRIGGERED:
        created = start_training(db_session, project, run, settings)
    elif run.state == TRAINING:
        decide_when_trained(db_session, project, run, settings)
    state = run.state
    db_session.commit()
    for job in created:  # after the commit: a job sent before it exists would be dropped by the worker
        jobs.enqueue_job(db_session=db_session, job=job, enqueue=send_job)
    db_session.commit()
    return state


def fail(run: LoopRun, reason: str) -> None:
    run.state, run.reason, run.decided_at = FAILED, reason, utcnow()
    note(run, FAILED, reason)


def start_training(db_session: Session, project: Project, run: LoopRun, settings: Settings) -> list[Job]:
    """Freezes a dataset version and submits the policy's jobs on it, in the run's transaction."""
    try:
        with db_session.begin_nested():
            version = freeze_dataset_version(
                db_session=db_session,
                project=project,
                freeze=DatasetFreeze(),
                user_id=run.created_by,
                settings=settings,
            )
            created = [
                submit(db_session, project, run, version.version, spec, settings)
                for spec in run.policy["jobs"]
            ]
    except ApiError as exc:
        fail(run, f"could not start training ({exc.field}): {exc.message}")
        return []
    run.dataset_version_id, run.job_ids, run.state = version.id, [j.id for j in created], TRAINING
    note(run, "dataset", f"froze dataset version {version.version} ({version.item_count} items)")
    note(run, "jobs", "submitted " + ", ".join(f"job {j.id} ({j.kind})" for j in created))
    return created


def submit(
    db_session: Session,
    project: Project,
    run: LoopRun,
    version: int,
    spec: dict[str, Any],
    settings: Settings,
) -> Job:
    base = resolve_base_model(db_session=db_session, project=project, base_model=spec.get("base_model"))
    job_in = JobCreate(
        kind=spec["kind"],
        dataset_version=version,
        base_model=base,
        config=spec.get("config") or {},
        slice_keys=spec.get("slice_keys") or [],
        max_attempts=spec.get("max_attempts") or 3,
    )
    return jobs.create_job(
        db_session=db_session, project=project, job_in=job_in, user_id=run.created_by, settings=settings
    )


# --- evaluation and decision --------------------------------------------------------------------------------


def decide_when_trained(db_session: Session, project: Project, run: LoopRun, settings: Settings) -> None:
    run_jobs = list(db_session.scalars(select(Job).where(Job.id.in_(run.job_ids or []))))
    if any(job.status not in FINISHED for job in run_jobs):
        return
    candidates = list(
        db_session.scalars(select(ModelVersion).where(ModelVersion.job_id.in_([j.id for j in run_jobs])))
    )
    failed = [f"job {j.id} {j.status}" for j in run_jobs if j.status != SUCCEEDED]
    if failed:
        note(run, "jobs", "; ".join(failed))
    if not candidates:
        fail(run, "no job produced a model: " + "; ".join(failed))
        return
    note(run, "evaluated", ", ".join(f"v{m.version} MCC {m.metrics.get('mcc')}" for m in candidates))
    verdicts = [evaluate(db_session, project, run, model) for model in candidates]
    best = max(verdicts, key=lambda v: (not v["refusals"], not v["slice_regressions"], v["mcc"] or -2.0))
    run.candidate_version_id = best["model_id"]
    run.figures = registry.finite({"candidates": verdicts, "chosen": best["version"]})
    decide(db_session, project, run, best, settings)


def assert_no_holdout_leak(db_session: Session, project: Project, run: LoopRun, model: ModelVersion) -> None:
    """The candidate was trained on this run's version, and no train/val item of it is a holdout item."""
    job = db_session.get(Job, model.job_id) if model.job_id else None
    if job is None or job.dataset_version_id != run.dataset_version_id:
        raise HoldoutLeak(f"v{model.version} was not trained on this run's dataset version")
    trained_on = set(
        db_session.scalars(
            select(DatasetItem.item_id).where(
                DatasetItem.dataset_version_id == job.dataset_version_id, DatasetItem.split != "holdout"
            )
        )
    )
    leaked = trained_on & holdout_item_ids(db_session=db_session, project=project)
    if leaked:
        raise HoldoutLeak(
            f"v{model.version} was trained on {len(leaked)} holdout items (e.g. item {min(leaked)})"
        )


def evaluate(db_session: Session, project: Project, run: LoopRun, model: ModelVersion) -> dict[str, Any]:
    """The policy's gate for one candidate: holdout size, the MCC difference CI, slices, and no holdout leak."""
    policy = run.policy
    gate = registry.promotion_gate(
        db_session=db_session, project=project, model=model, min_holdout_items=policy["min_holdout_items"]
    )
    refusals = [r for r in gate["refusals"] if not r.startswith("worse than production")]
    versus = gate["vs_production"]
    mcc_ci = (model.metrics or {}).get("mcc_ci") or {}
    if policy["require_improvement"]:
        refusals += improvement_refusals(versus, gate["production_version"], model, mcc_ci)
    try:
        assert_no_holdout_leak(db_session, project, run, model)
    except HoldoutLeak as exc:
        refusals.append(f"holdout leak: {exc}")
    regressions = slice_regressions(
        db_session, project, model, policy["slice_keys"], policy["slice_tolerance"]
    )
    return {
        "model_id": model.id,
        "version": model.version,
        "kind": model.kind,
        "mcc": (model.metrics or {}).get("mcc"),
        "mcc_ci": mcc_ci,
        "holdout_n": gate["holdout_n"],
        "production_version": gate["production_version"],
        "vs_production": versus,
        "refusals": refusals,
        "slice_regressions": regressions,
    }


def improvement_refusals(
    versus: dict | None, production_version: int | None, model: ModelVersion, mcc_ci: dict
) -> list[str]:
    if (
        production_version is None
    ):  # nothing serves yet: the candidate must beat chance (MCC 0) with confidence
        low = mcc_ci.get("ci_low")
        if low is None or low <= 0:
            return [f"not better than chance with confidence: holdout MCC 95% CI lower bound {low}"]
        return []
    if versus is None or versus.get("ci_low") is None:
        return [f"no holdout items in common with production v{production_version} to compare on"]
    if versus["ci_low"] <= 0:
        return [
            f"not better than production v{production_version} with confidence: MCC {versus['mcc']:.3f} vs "
            f"{versus['production_mcc']:.3f}, difference {versus['mean']:+.3f} "
            f"(95% CI {versus['ci_low']:+.3f} to {versus['ci_high']:+.3f}, must lie above 0)"
        ]
    return []


def slice_regressions(
    db_session: Session, project: Project, model: ModelVersion, keys: list[str], tolerance: float
) -> list[str]:
    """Slices where the candidate's MCC falls more than `tolerance` below production's, on the same items."""
    production = registry.production_model(db_session=db_session, project=project)
    if production is None or production.id == model.id or not keys or model.dataset_version_id is None:
        return []
    truth = registry.holdout_truth(db_session=db_session, dataset_version_id=model.dataset_version_id)
    cand = registry.stored_scores(db_session=db_session, model_version_id=model.id)
    prod = registry.stored_scores(db_session=db_session, model_version_id=production.id)
    ids = sorted(set(truth) & set(cand) & set(prod))
    if not ids:
        return []
    labels = np.array([truth[i] for i in ids])
    values = registry.slice_values(db_session=db_session, item_ids=ids, keys=list(keys))
    out = []
    for key in keys:
        per_item = [values[key].get(i) for i in ids]
        mine = registry.mcc_by_slice([cand[i] for i in ids], labels, model.threshold, per_item)
        theirs = registry.mcc_by_slice([prod[i] for i in ids], labels, production.threshold, per_item)
        for name, figures in mine.items():
            drop = theirs[name]["mcc"] - figures["mcc"]
            if drop > tolerance:
                out.append(
                    f"{key}={name}: MCC {figures['mcc']:.3f} vs production {theirs[name]['mcc']:.3f} "
                    f"({figures['n']} items), a drop of {drop:.3f} > {tolerance:.3f}"
                )
    return out


def decide(
    db_session: Session, project: Project, run: LoopRun, best: dict[str, Any], settings: Settings
) -> None:
    run.decided_at = utcnow()
    if best["refusals"]:
        run.state, run.reason = REJECTED, f"v{best['version']} rejected: " + "; ".join(best["refusals"])
    elif best["slice_regressions"]:
        run.state = HELD
        run.reason = f"v{best['version']} held for approval, a slice fell: " + "; ".join(
            best["slice_regressions"]
        )
    elif not run.policy["auto_promote"] or not settings.loop_auto_promote:
        run.state = HELD
        why = "the policy" if not run.policy["auto_promote"] else "HARDCASE_LOOP_AUTO_PROMOTE=false"
        run.reason = f"v{best['version']} passed the gate; held for an admin's approval ({why})"
    else:
        promote_candidate(db_session, project, run, best["version"], user_id=None, approved=False)
        return
    note(run, run.state, run.reason)


def promote_candidate(
    db_session: Session, project: Project, run: LoopRun, version: int, user_id: int | None, approved: bool
) -> None:
    """Promotes through the registry (stage history, model.promoted webhook); the run records the outcome."""
    model = registry.get_model(db_session=db_session, project=project, version=version)
    assert_no_holdout_leak(db_session, project, run, model)  # raises: never promote a leaked model
    if model.stage == PRODUCTION:
        raise ApiError(409, "run", f"v{version} is already in production")
    registry.promote(
        db_session=db_session,
        project=project,
        version=version,
        user_id=user_id,
        min_holdout_items=run.policy["min_holdout_items"],
        note=f"loop run {run.id}",
    )
    run.state, run.decided_at, run.decided_by = PROMOTED, utcnow(), user_id
    run.reason = f"v{version} promoted" + (" by an admin's approval" if approved else " automatically")
    note(run, PROMOTED, run.reason)


def approve(
    *, db_session: Session, project: Project, run: LoopRun | None, user_id: int | None, note_text: str
) -> LoopRun:
    if run is None:
        raise ApiError(404, "run_id", "no such loop run")
    if run.state != HELD:
        raise ApiError(409, "run", f"loop run {run.id} is {run.state}, not held for approval")
    version = db_session.scalar(
        select(ModelVersion.version).where(ModelVersion.id == run.candidate_version_id)
    )
    if version is None:
        raise ApiError(409, "run", f"loop run {run.id}'s candidate model no longer exists")
    try:
        promote_candidate(db_session, project, run, version, user_id, approved=True)
    except HoldoutLeak as exc:
        raise ApiError(409, "run", f"holdout leak: {exc}") from exc
    if note_text:
        note(run, "approved", note_text)
    return run


def reject(*, db_session: Session, run: LoopRun | None, user_id: int | None, note_text: str) -> LoopRun:
    if run is None:
        raise ApiError(404, "run_id", "no such loop run")
    if run.state != HELD:
        raise ApiError(409, "run", f"loop run {run.id} is {run.state}, not held for approval")
    run.state, run.decided_at, run.decided_by = REJECTED, utcnow(), user_id
    run.reason = f"rejected by an admin: {note_text or 'no reason given'} (was: {run.reason})"
    note(run, REJECTED, run.reason)
    return run
