"""Aggregate queries behind the project overview: pool and queue counts, label balance, throughput, annotators."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.core.db import utcnow
from app.drift.service import as_utc
from app.ingest.models import Item, Prediction
from app.labels.models import Annotation
from app.labels.service import agreement_by_annotator
from app.projects.models import Project
from app.queue.models import STATUSES, Hardness

# A pause longer than this between two labels of one person ends a working session (for labels/hour).
SESSION_GAP_S = 300.0
COUNTED_STATES = ("current", "superseded")  # retracted (undone) labels were not work that counted


@dataclass
class AnnotatorRow:
    user_id: int
    username: str
    labels: int
    labels_per_hour: float | None
    median_seconds: float | None
    agreement: float | None = None
    last_label_at: datetime | None = None


@dataclass
class ProjectOverview:
    pool_size: int
    queue: dict[str, int]
    label_balance: dict[str, int]
    throughput: list[tuple[date, int]]
    annotators: list[AnnotatorRow]
    models: list[tuple[str, int]] = field(default_factory=list)

    @property
    def labeled(self) -> int:
        return self.queue.get("done", 0)

    @property
    def labeled_share(self) -> float:
        return self.labeled / self.pool_size if self.pool_size else 0.0


def pool_size(*, db_session: Session, project: Project) -> int:
    return int(db_session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project.id)))


def queue_counts(*, db_session: Session, project: Project) -> dict[str, int]:
    """Items per queue status; items without a hardness row yet count as pending."""
    rows = db_session.execute(
        select(Hardness.status, func.count())
        .where(Hardness.project_id == project.id)
        .group_by(Hardness.status)
    ).all()
    counts = {status: 0 for status in STATUSES} | {status: int(n) for status, n in rows}
    unscored = pool_size(db_session=db_session, project=project) - sum(counts.values())
    counts["pending"] += max(0, unscored)
    return counts


def label_balance(*, db_session: Session, project: Project) -> dict[str, int]:
    """Current labels per class name (each annotator's latest answer counts once)."""
    rows = db_session.execute(
        select(Annotation.label, func.count())
        .where(Annotation.project_id == project.id, Annotation.state == "current")
        .group_by(Annotation.label)
    ).all()
    classes = list(project.classes or [])
    balance = {name: 0 for name in classes}
    for label, count in rows:
        name = classes[label] if 0 <= label < len(classes) else f"class {label}"
        balance[name] = balance.get(name, 0) + int(count)
    return balance


def _annotation_rows(*, db_session: Session, project: Project, since: datetime) -> list:
    return db_session.execute(
        select(Annotation.annotator_id, Annotation.created_at, Annotation.duration_ms)
        .where(
            Annotation.project_id == project.id,
            Annotation.created_at >= since,
            Annotation.state.in_(COUNTED_STATES),
        )
        .order_by(Annotation.annotator_id, Annotation.created_at)
    ).all()


def throughput_per_day(rows: list, *, days: int, today: date) -> list[tuple[date, int]]:
    counts = Counter(as_utc(created_at).date() for _, created_at, _ in rows)
    return [(day, counts.get(day, 0)) for day in (today - timedelta(days=n) for n in range(days - 1, -1, -1))]


def active_seconds(times: list[datetime], durations_s: list[float]) -> float:
    """Working time of one person: gaps between consecutive labels, each capped at SESSION_GAP_S, plus
    the first label of every session (its own recorded duration, or the median one)."""
    fallback = statistics.median(durations_s) if durations_s else 10.0
    total = fallback
    for previous, current in zip(times, times[1:], strict=False):
        gap = (current - previous).total_seconds()
        total += gap if gap <= SESSION_GAP_S else fallback
    return total


def annotator_rows(*, db_session: Session, rows: list) -> list[AnnotatorRow]:
    by_user: dict[int, list] = defaultdict(list)
    for annotator_id, created_at, duration_ms in rows:
        by_user[annotator_id].append((as_utc(created_at), duration_ms))
    names = dict(db_session.execute(select(User.id, User.username).where(User.id.in_(list(by_user)))).all())
    out = []
    for user_id, entries in by_user.items():
        times = [t for t, _ in entries]
        durations = [d / 1000 for _, d in entries if d is not None and d > 0]
        hours = active_seconds(times, durations) / 3600
        out.append(
            AnnotatorRow(
                user_id=user_id,
                username=names.get(user_id, f"user {user_id}"),
                labels=len(entries),
                labels_per_hour=len(entries) / hours if hours > 0 else None,
                median_seconds=statistics.median(durations) if durations else None,
                last_label_at=times[-1],
            )
        )
    return sorted(out, key=lambda row: -row.labels)


def prediction_counts(*, db_session: Session, project: Project) -> list[tuple[str, int]]:
    rows = db_session.execute(
        select(Prediction.model, func.count())
        .where(Prediction.project_id == project.id)
        .group_by(Prediction.model)
        .order_by(Prediction.model)
    ).all()
    return [(model, int(n)) for model, n in rows]


def project_overview(
    *, db_session: Session, project: Project, days: int = 30, now: datetime | None = None
) -> ProjectOverview:
    """Every number of the overview page; annotator figures cover the last `days` days."""
    now = now or utcnow()
    rows = _annotation_rows(db_session=db_session, project=project, since=now - timedelta(days=days))
    annotators = annotator_rows(db_session=db_session, rows=rows)
    agreement = agreement_by_annotator(db_session=db_session, project=project)
    for row in annotators:
        row.agreement = agreement.get(row.user_id)
    return ProjectOverview(
        pool_size=pool_size(db_session=db_session, project=project),
        queue=queue_counts(db_session=db_session, project=project),
        label_balance=label_balance(db_session=db_session, project=project),
        throughput=throughput_per_day(rows, days=days, today=as_utc(now).date()),
        annotators=annotators,
        models=prediction_counts(db_session=db_session, project=project),
    )
