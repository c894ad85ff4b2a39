"""The review queue: flagged, skipped-out and conflicting items, each with what every annotator answered."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.labels.models import Flag
from app.labels.service import current_annotations, decide, latest_reviews
from app.projects.models import Project
from app.queue.models import Hardness
from app.queue.service import item_payload

REVIEW_STATUSES = ("review", "skipped")


def review_queue(*, db_session: Session, project: Project, limit: int = 100) -> list[dict[str, Any]]:
    """Items waiting for a reviewer, hardest first (the order of `next_for_review`), each with why it waits,
    every current answer with its boxes, the open flags and the cascade's view."""
    rows = db_session.execute(
        select(Hardness.item_id, Hardness.status)
        .where(Hardness.project_id == project.id, Hardness.status.in_(REVIEW_STATUSES))
        .order_by(Hardness.priority.desc(), Hardness.item_id)
        .limit(limit)
    ).all()
    item_ids = [item_id for item_id, _ in rows]
    if not item_ids:
        return []
    annotations = current_annotations(db_session, project.id, item_ids)
    reviews = latest_reviews(db_session, project.id, item_ids)
    flags = _open_flags(db_session, item_ids)
    user_ids = {a.annotator_id for anns in annotations.values() for a in anns}
    user_ids |= {f.user_id for fs in flags.values() for f in fs}
    names = dict(
        db_session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).tuples().all()
    )
    entries = []
    for item_id, status in rows:
        answers = annotations.get(item_id, [])
        consensus = decide(item_id, project.overlap, answers, reviews.get(item_id))
        entries.append(
            {
                "item": item_payload(db_session=db_session, project=project, item_id=item_id),
                "reasons": _reasons(status, bool(flags.get(item_id)), consensus.source),
                "consensus": {"label": consensus.label, "source": consensus.source, "votes": consensus.votes},
                "answers": [
                    {
                        "annotation_id": a.id,
                        "annotator": names.get(a.annotator_id, f"user {a.annotator_id}"),
                        "label": a.label,
                        "boxes": list(a.boxes or []),
                        "duration_ms": a.duration_ms,
                        "created_at": a.created_at,
                    }
                    for a in answers
                ],
                "flags": [
                    {
                        "user": names.get(f.user_id, f"user {f.user_id}"),
                        "reason": f.reason,
                        "created_at": f.created_at,
                    }
                    for f in flags.get(item_id, [])
                ],
            }
        )
    return entries


def _open_flags(db_session: Session, item_ids: list[int]) -> dict[int, list[Flag]]:
    grouped: dict[int, list[Flag]] = defaultdict(list)
    query = (
        select(Flag).where(Flag.item_id.in_(item_ids), Flag.resolved_by_review_id.is_(None)).order_by(Flag.id)
    )
    for flag in db_session.scalars(query):
        grouped[flag.item_id].append(flag)
    return grouped


def _reasons(status: str, flagged: bool, consensus_source: str) -> list[str]:
    reasons = ["flagged"] if flagged else []
    if status == "skipped":
        reasons.append("skipped out")
    if consensus_source == "tie":
        reasons.append("conflict")
    return reasons or ["waiting for review"]
