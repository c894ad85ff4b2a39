"""Drift checks per project and model: gather windows from stored predictions, test them with ml.drift
(in the worker only: alibi-detect is heavy), store every check and raise the priority of shifted items."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.drift.config import DriftSettings
from app.drift.models import DriftCheck
from app.ingest.models import Prediction
from app.projects.models import Project
from app.queue.models import Hardness
from app.webhooks import service as webhooks

DRIFT_REASON_PREFIX = "drift:"


@dataclass
class Window:
    """The predictions of one model in one time window, oldest first."""

    item_ids: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    embeddings: list[list[float]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def start(self) -> datetime:
        return self.times[0]

    @property
    def end(self) -> datetime:
        return self.times[-1]


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here compares in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def models_with_scores(*, db_session: Session, project: Project) -> list[str]:
    query = (
        select(Prediction.model)
        .where(Prediction.project_id == project.id, Prediction.score.is_not(None))
        .group_by(Prediction.model)
        .order_by(Prediction.model)
    )
    return list(db_session.scalars(query))


def _window_query(project: Project, model: str) -> Select:
    return (
        select(Prediction.item_id, Prediction.score, Prediction.embedding, Prediction.received_at)
        .where(Prediction.project_id == project.id, Prediction.model == model, Prediction.score.is_not(None))
        .order_by(Prediction.received_at.desc(), Prediction.id.desc())
    )


def _to_window(rows_newest_first: list) -> Window:
    window = Window()
    for item_id, score, embedding, received_at in reversed(rows_newest_first):
        window.item_ids.append(item_id)
        window.scores.append(float(score))
        window.times.append(as_utc(received_at))
        if embedding:
            window.embeddings.append([float(v) for v in embedding])
    return window


def score_windows(
    *, db_session: Session, project: Project, model: str, settings: DriftSettings, now: datetime | None = None
) -> tuple[Window, Window]:
    """(reference, recent) for one model: the latest N predictions and the N before them (count mode),
    or the latest hours and the hours before them (time mode; at most `max_window` latest rows each)."""
    query = _window_query(project, model)
    if settings.window == "count":
        rows = db_session.execute(query.limit(settings.recent_size + settings.reference_size)).all()
        return _to_window(rows[settings.recent_size :]), _to_window(rows[: settings.recent_size])
    now = now or utcnow()
    recent_from = now - timedelta(hours=settings.recent_hours)
    reference_from = recent_from - timedelta(hours=settings.reference_hours)
    recent = db_session.execute(
        query.where(Prediction.received_at >= recent_from, Prediction.received_at <= now).limit(
            settings.max_window
        )
    ).all()
    reference = db_session.execute(
        query.where(Prediction.received_at >= reference_from, Prediction.received_at < recent_from).limit(
            settings.max_window
        )
    ).all()
    return _to_window(reference), _to_window(recent)


def _check_row(
    *,
    project: Project,
    model: str,
    kind: str,
    reference: Window,
    recent: Window,
    result: dict[str, Any],
    threshold: float,
) -> DriftCheck:
    return DriftCheck(
        project_id=project.id,
        model=model,
        kind=kind,
        method=str(result.get("method", "ks" if kind == "score" else "mmd")),
        reference_start=reference.start,
        reference_end=reference.end,
        recent_start=recent.start,
        recent_end=recent.end,
        n_reference=int(result.get("n_reference", len(reference))),
        n_recent=int(result.get("n_recent", len(recent))),
        p_value=float(result["p_value"]),
        threshold=threshold,
        distance=None if result.get("distance") is None else float(result["distance"]),
        is_drift=bool(result["is_drift"]),
        details=result,
    )


def _evenly_spaced(rows: list[list[float]], limit: int) -> list[list[float]]:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def check_model(
    *, db_session: Session, project: Project, model: str, settings: DriftSettings, now: datetime | None = None
) -> list[DriftCheck]:
    """Runs the score test (and the embedding test where both windows carry embeddings), stores the checks
    and boosts the recent items of a drifting model. Worker-only: imports ml.drift (alibi-detect)."""
    from ml.drift import check_embedding_drift, check_score_drift

    reference, recent = score_windows(
        db_session=db_session, project=project, model=model, settings=settings, now=now
    )
    if min(len(reference), len(recent)) < settings.min_samples:
        return []
    result = check_score_drift(reference.scores, recent.scores, p_value=settings.p_value).to_dict()
    checks = [
        _check_row(
            project=project,
            model=model,
            kind="score",
            reference=reference,
            recent=recent,
            result=result,
            threshold=settings.p_value,
        )
    ]
    if min(len(reference.embeddings), len(recent.embeddings)) >= settings.min_samples:
        result = check_embedding_drift(
            _evenly_spaced(reference.embeddings, settings.embedding_max),
            _evenly_spaced(recent.embeddings, settings.embedding_max),
            p_value=settings.p_value,
            n_permutations=settings.embedding_permutations,
        ).to_dict()
        checks.append(
            _check_row(
                project=project,
                model=model,
                kind="embedding",
                reference=reference,
                recent=recent,
                result=result,
                threshold=settings.p_value,
            )
        )
    db_session.add_all(checks)
    if any(check.is_drift for check in checks) and settings.priority_boost > 0:
        boosted = boost_recent_items(
            db_session=db_session,
            project=project,
            model=model,
            item_ids=recent.item_ids,
            boost=settings.priority_boost,
            reason=drift_reason(model, checks),
        )
        for check in checks:
            check.boosted_items = boosted if check.is_drift else 0
    db_session.flush()
    webhooks.emit_drift_alarms(db_session=db_session, checks=checks)
    return checks


def drift_reason(model: str, checks: list[DriftCheck]) -> str:
    worst = min((c for c in checks if c.is_drift), key=lambda c: c.p_value)
    return f"{DRIFT_REASON_PREFIX} {model} {worst.kind}s shifted lately (p={worst.p_value:.2g})"


def boost_recent_items(
    *, db_session: Session, project: Project, model: str, item_ids: list[int], boost: float, reason: str
) -> int:
    """Adds `boost` to the priority of the pending items among `item_ids`, once per item and model: an item
    carrying this model's drift reason already is left alone, so repeated alarms do not pile up."""
    model_prefix = f"{DRIFT_REASON_PREFIX} {model} "
    boosted = 0
    for start in range(0, len(item_ids), 500):
        rows = db_session.scalars(
            select(Hardness).where(
                Hardness.project_id == project.id,
                Hardness.status == "pending",
                Hardness.item_id.in_(item_ids[start : start + 500]),
            )
        )
        for row in rows:
            reasons = list(row.reasons or [])
            if any(r.startswith(model_prefix) for r in reasons):
                continue
            row.priority = float(row.priority) + boost
            row.reasons = [reason, *reasons]
            row.updated_at = utcnow()
            boosted += 1
    return boosted


def check_project(
    *, db_session: Session, project: Project, settings: DriftSettings, now: datetime | None = None
) -> list[DriftCheck]:
    checks: list[DriftCheck] = []
    for model in models_with_scores(db_session=db_session, project=project):
        checks += check_model(db_session=db_session, project=project, model=model, settings=settings, now=now)
    return checks


def check_all_projects(*, db_session: Session, settings: DriftSettings) -> list[DriftCheck]:
    checks: list[DriftCheck] = []
    for project in db_session.scalars(select(Project).order_by(Project.id)):
        checks += check_project(db_session=db_session, project=project, settings=settings)
    return checks


def latest_checks(*, db_session: Session, project: Project) -> list[DriftCheck]:
    """The newest check of each (model, kind): the current drift state of the project."""
    newest = (
        select(DriftCheck.model, DriftCheck.kind, func.max(DriftCheck.id).label("id"))
        .where(DriftCheck.project_id == project.id)
        .group_by(DriftCheck.model, DriftCheck.kind)
        .subquery()
    )
    query = (
        select(DriftCheck)
        .join(newest, DriftCheck.id == newest.c.id)
        .order_by(DriftCheck.model, DriftCheck.kind)
    )
    return list(db_session.scalars(query))


def drift_alarms(*, db_session: Session, project: Project) -> list[DriftCheck]:
    return [check for check in latest_checks(db_session=db_session, project=project) if check.is_drift]


def recent_checks(*, db_session: Session, project: Project, limit: int = 50) -> list[DriftCheck]:
    query = (
        select(DriftCheck)
        .where(DriftCheck.project_id == project.id)
        .order_by(DriftCheck.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))
