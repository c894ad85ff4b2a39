"""Changing how a project ranks: validate, save, re-status items for a new overlap, re-rank in the background."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ApiError
from app.jobs.dispatch import PUBLISH_RETRY_POLICY, celery_client
from app.labels.service import refresh_item_status
from app.projects import service as project_service
from app.projects.models import Project
from app.projects.schemas import ProjectUpdate
from app.queue.models import Hardness
from app.queue.ranking import rerank_project
from ml.scoring import StrategyConfig

log = logging.getLogger("hardcase.queue")

RERANK_TASK = "hardcase.rerank_project"
RANKING_FIELDS = ("threshold", "strategy", "strategy_weights")


def enqueue_rerank(*, settings: Settings, project_id: int) -> str:
    """Sends the re-rank task to the `cpu` queue (bounded: a broker outage fails in about a second)."""
    result = celery_client(settings).send_task(
        RERANK_TASK, args=[project_id], queue="cpu", ignore_result=True, retry_policy=PUBLISH_RETRY_POLICY
    )
    return result.id


def _validated_strategy(project: Project, project_in: ProjectUpdate) -> None:
    name = project_in.strategy or project.strategy
    weights = project.strategy_weights if project_in.strategy_weights is None else project_in.strategy_weights
    try:
        StrategyConfig(name=name, weights=dict(weights or {}))
    except ValueError as exc:
        raise ApiError(422, "strategy_weights", str(exc).partition(": ")[2] or str(exc)) from exc
    if project_in.threshold is not None and not 0.0 < project_in.threshold < 1.0:
        raise ApiError(422, "threshold", "threshold must be strictly between 0 and 1")


def restatus_for_overlap(*, db_session: Session, project: Project) -> int:
    """After an overlap change, labeled items may now be complete (done or a tie) or need more labels."""
    rows = db_session.scalars(
        select(Hardness).where(
            Hardness.project_id == project.id,
            Hardness.annotation_count > 0,
            Hardness.status.in_(("pending", "done", "review")),
        )
    )
    changed = 0
    for row in rows:
        before = row.status
        changed += refresh_item_status(db_session, project, row) != before
    return changed


def update_project_ranking(
    *, db_session: Session, project: Project, project_in: ProjectUpdate, settings: Settings
) -> str:
    """Saves the change; returns how the re-rank runs: queued | inline (broker unreachable) | not needed."""
    _validated_strategy(project, project_in)
    changes = project_in.model_dump(exclude_unset=True)
    ranking_changed = any(k in changes and changes[k] != getattr(project, k) for k in RANKING_FIELDS)
    overlap_changed = "overlap" in changes and changes["overlap"] != project.overlap
    project_service.update(db_session=db_session, project=project, project_in=project_in)
    if overlap_changed:
        restatus_for_overlap(db_session=db_session, project=project)
    db_session.commit()
    if not ranking_changed:
        return "not needed"
    try:
        enqueue_rerank(settings=settings, project_id=project.id)
        return "queued"
    except Exception as exc:  # kombu raises several types for an unreachable broker
        log.warning("broker unreachable (%s); re-ranking project %s in the request", exc, project.name)
        rerank_project(db_session=db_session, project=project)
        db_session.commit()
        return "inline"
