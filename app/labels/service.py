"""Annotations (append-only), derived consensus, review decisions, flags, progress and agreement metrics."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.core.db import utcnow
from app.core.errors import ApiError
from app.labels.agreement import cohen_kappa, fleiss_kappa
from app.labels.models import Annotation, Flag, Review
from app.metrics import events as metrics
from app.projects.models import Project
from app.projects.service import takes_boxes
from app.queue.models import Hardness
from app.queue.service import (
    Lease,
    as_utc,
    hardness_of,
    holds_live_lease,
    lease_item_to,
    live_lease_count,
    status_counts,
)

# --- validation ---------------------------------------------------------------------------------------------


def class_count(project: Project) -> int:
    return len(project.classes) if project.kind == "multiclass" else 2


def validate_label(
    project: Project, label: int | None, boxes: list[list[Any]]
) -> tuple[int, list[list[Any]]]:
    """The label and boxes as stored (box classes by index); ApiError(422) naming the field otherwise."""
    if boxes and not takes_boxes(project):
        reason = "takes no boxes" if project.kind == "multiclass" else "declares no box classes"
        raise ApiError(422, "boxes", f"project {project.name!r} {reason}, so its answers carry no boxes")
    checked = [_checked_box(project, i, box) for i, box in enumerate(boxes)]
    if label is None:
        if project.kind != "detection":
            raise ApiError(422, "label", "label is required")
        label = 1 if checked else 0
    if isinstance(label, bool) or not 0 <= label < class_count(project):
        raise ApiError(422, "label", f"label must be an integer in [0, {class_count(project) - 1}]")
    if checked and label == 0:
        raise ApiError(422, "boxes", "a 'no' answer (label 0) cannot carry boxes: delete them or answer yes")
    return label, checked


def _checked_box(project: Project, index: int, box: list[Any]) -> list[Any]:
    where = f"boxes[{index}]"
    if not isinstance(box, list) or len(box) != 5:
        raise ApiError(422, where, "expected [x1, y1, x2, y2, class] (class: a box class name or its index)")
    try:
        x1, y1, x2, y2 = (float(v) for v in box[:4])
    except (TypeError, ValueError) as exc:
        raise ApiError(422, where, "coordinates must be numbers") from exc
    if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
        raise ApiError(422, where, "coordinates must be normalised to [0, 1] with x1 < x2 and y1 < y2")
    return [x1, y1, x2, y2, box_class_index(project, box[4], where)]


def box_class_index(project: Project, cls: Any, where: str) -> int:
    """Box classes are matched by name (what the cascade sends); an index into box_classes also works."""
    names = list(project.box_classes)
    if isinstance(cls, str) and cls in names:
        return names.index(cls)
    if isinstance(cls, int) and not isinstance(cls, bool) and 0 <= cls < len(names):
        return cls
    raise ApiError(
        422, where, f"unknown box class {cls!r}: project {project.name!r} has {', '.join(names) or 'none'}"
    )


# --- consensus ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consensus:
    """Derived, never stored: a reviewer's decision wins; otherwise a strict majority of `overlap` labels."""

    item_id: int
    label: int | None
    boxes: list = field(default_factory=list)
    source: str = "incomplete"  # review | majority | tie | incomplete
    votes: dict[int, int] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.label is not None


def decide(item_id: int, overlap: int, annotations: list[Annotation], review: Review | None) -> Consensus:
    votes = dict(Counter(a.label for a in annotations))
    if review is not None:
        return Consensus(item_id, review.label, list(review.boxes or []), "review", votes)
    if len(annotations) < overlap:
        return Consensus(item_id, None, [], "incomplete", votes)
    ranked = Counter(votes).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return Consensus(item_id, None, [], "tie", votes)
    label = ranked[0][0]
    boxes = next((list(a.boxes or []) for a in annotations if a.label == label), [])
    return Consensus(item_id, label, boxes, "majority", votes)


def current_annotations(
    db_session: Session, project_id: int, item_ids: list[int] | None = None
) -> dict[int, list[Annotation]]:
    query = select(Annotation).where(Annotation.project_id == project_id, Annotation.state == "current")
    if item_ids is not None:
        query = query.where(Annotation.item_id.in_(item_ids))
    grouped: dict[int, list[Annotation]] = defaultdict(list)
    for annotation in db_session.scalars(query.order_by(Annotation.id)):
        grouped[annotation.item_id].append(annotation)
    return grouped


def latest_reviews(
    db_session: Session, project_id: int, item_ids: list[int] | None = None
) -> dict[int, Review]:
    query = select(Review).where(Review.project_id == project_id)
    if item_ids is not None:
        query = query.where(Review.item_id.in_(item_ids))
    return {r.item_id: r for r in db_session.scalars(query.order_by(Review.id))}


def consensus_for_items(
    *, db_session: Session, project: Project, item_ids: list[int] | None = None
) -> dict[int, Consensus]:
    """Consensus of every labeled (or reviewed) item of the project, or of `item_ids` only."""
    annotations = current_annotations(db_session, project.id, item_ids)
    reviews = latest_reviews(db_session, project.id, item_ids)
    ids = sorted(set(annotations) | set(reviews)) if item_ids is None else item_ids
    return {i: decide(i, project.overlap, annotations.get(i, []), reviews.get(i)) for i in ids}


# What `refresh_item_status` reads of one item on every label, built once (building and keying a statement per
# call cost as much as running it). The item id implies the project.
_ITEM_ANNOTATIONS = (
    select(Annotation)
    .where(Annotation.item_id == bindparam("item_id"), Annotation.state == "current")
    .order_by(Annotation.id)
)
_ITEM_LATEST_REVIEW = (
    select(Review).where(Review.item_id == bindparam("item_id")).order_by(Review.id.desc()).limit(1)
)
_ITEM_OPEN_FLAG = (
    select(Flag.id).where(Flag.item_id == bindparam("item_id"), Flag.resolved_by_review_id.is_(None)).limit(1)
)


def refresh_item_status(
    db_session: Session, project: Project, hardness: Hardness, *, release_lease: bool = False
) -> str:
    """Queue status from the labels: done when decided, review on a tie or an open flag, else back in the pool.
    `release_lease` clears the item's lease first (a label was just given). Everything is read before the row
    changes, so the row is written once, at commit, not once per query's autoflush."""
    item = {"item_id": hardness.item_id}
    annotations = list(db_session.scalars(_ITEM_ANNOTATIONS, item))
    review = db_session.scalar(_ITEM_LATEST_REVIEW, item)
    consensus = decide(hardness.item_id, project.overlap, annotations, review)
    open_flag = consensus.source != "review" and db_session.scalar(_ITEM_OPEN_FLAG, item) is not None
    if release_lease:
        _clear_lease(hardness)
    hardness.annotation_count = len(annotations)
    if consensus.source == "review":
        hardness.status = "done"
    elif open_flag and hardness.status != "leased" or consensus.source == "tie":
        hardness.status = "review"
    elif consensus.decided:
        hardness.status = "done"
    elif hardness.status in ("done", "review"):
        hardness.status = "pending"
    hardness.updated_at = utcnow()
    return hardness.status


# --- annotating ---------------------------------------------------------------------------------------------


def _clear_lease(hardness: Hardness) -> None:
    hardness.status = "pending" if hardness.status == "leased" else hardness.status
    hardness.lease_owner, hardness.lease_expires_at = None, None


@metrics.counts_annotation
def submit_annotation(
    *,
    db_session: Session,
    project: Project,
    user: User,
    item_id: int,
    label: int | None,
    boxes: list[list[Any]],
    duration_ms: int | None,
    supersedes_id: int | None = None,
) -> tuple[Annotation, str]:
    """Appends a label. A first label needs the caller's live lease; a correction (`supersedes_id`) replaces
    the caller's own current label and keeps it in history. Returns the annotation and the item's status."""
    label, boxes = validate_label(project, label, boxes)
    hardness = hardness_of(db_session=db_session, project=project, item_id=item_id, lock=True)
    if supersedes_id is not None:
        _supersede(db_session, project, user, item_id, supersedes_id)
    elif not holds_live_lease(hardness, user):
        raise ApiError(409, "lease", f"you hold no live lease on item {item_id}; take the next item")
    annotation = Annotation(
        item_id=item_id,
        project_id=project.id,
        annotator_id=user.id,
        label=label,
        boxes=boxes,
        duration_ms=duration_ms,
        supersedes_id=supersedes_id,
    )
    db_session.add(annotation)
    db_session.flush()
    status = refresh_item_status(db_session, project, hardness, release_lease=supersedes_id is None)
    db_session.commit()
    return annotation, status


def _supersede(db_session: Session, project: Project, user: User, item_id: int, supersedes_id: int) -> None:
    old = db_session.get(Annotation, supersedes_id)
    if old is None or old.project_id != project.id or old.item_id != item_id:
        raise ApiError(404, "supersedes", f"no annotation {supersedes_id} on item {item_id}")
    if old.annotator_id != user.id:
        raise ApiError(403, "supersedes", "you can only correct your own annotations")
    if old.state != "current":
        raise ApiError(409, "supersedes", f"annotation {supersedes_id} is already {old.state}")
    old.state, old.state_changed_at = "superseded", utcnow()


def undo_annotation(
    *, db_session: Session, project: Project, user: User, annotation_id: int, lease_minutes: int
) -> Lease:
    """Retracts the caller's latest annotation (history kept) and leases the item back to them."""
    annotation = db_session.get(Annotation, annotation_id)
    if annotation is None or annotation.project_id != project.id:
        raise ApiError(404, "annotation_id", f"no annotation {annotation_id} in project {project.name!r}")
    if annotation.annotator_id != user.id:
        raise ApiError(403, "annotation_id", "you can only undo your own annotations")
    latest = db_session.scalar(
        select(func.max(Annotation.id)).where(
            Annotation.project_id == project.id, Annotation.annotator_id == user.id
        )
    )
    if annotation.state != "current" or annotation.id != latest:
        raise ApiError(409, "annotation_id", "only your latest current annotation can be undone")
    hardness = hardness_of(db_session=db_session, project=project, item_id=annotation.item_id, lock=True)
    if hardness.status == "leased" and not holds_live_lease(hardness, user):
        expires = as_utc(hardness.lease_expires_at)
        if expires is not None and expires > utcnow():
            raise ApiError(409, "annotation_id", "someone else is labeling this item now; nothing was undone")
    if latest_reviews(db_session, project.id, [annotation.item_id]):
        raise ApiError(409, "annotation_id", "a reviewer decided this item already")
    annotation.state, annotation.state_changed_at = "retracted", utcnow()
    if annotation.supersedes_id is not None:
        previous = db_session.get(Annotation, annotation.supersedes_id)
        if previous is not None and previous.state == "superseded":
            previous.state, previous.state_changed_at = "current", utcnow()
    db_session.flush()
    refresh_item_status(db_session, project, hardness)
    lease = lease_item_to(db_session=db_session, hardness=hardness, user=user, lease_minutes=lease_minutes)
    db_session.commit()
    return lease


# --- review -------------------------------------------------------------------------------------------------


def next_for_review(*, db_session: Session, project: Project) -> int | None:
    """The hardest item waiting for a reviewer: a tie, an open flag, or parked after repeated skips."""
    return db_session.scalar(
        select(Hardness.item_id)
        .where(Hardness.project_id == project.id, Hardness.status.in_(("review", "skipped")))
        .order_by(Hardness.priority.desc())
        .limit(1)
    )


def record_review(
    *,
    db_session: Session,
    project: Project,
    reviewer: User,
    item_id: int,
    label: int | None,
    boxes: list[list[Any]],
    note: str,
) -> Review:
    """A reviewer's decision is final: it wins over the annotators' labels and closes open flags."""
    label, boxes = validate_label(project, label, boxes)
    hardness = hardness_of(db_session=db_session, project=project, item_id=item_id, lock=True)
    review = Review(
        item_id=item_id, project_id=project.id, reviewer_id=reviewer.id, label=label, boxes=boxes, note=note
    )
    db_session.add(review)
    db_session.flush()
    for flag in db_session.scalars(
        select(Flag).where(Flag.item_id == item_id, Flag.resolved_by_review_id.is_(None))
    ):
        flag.resolved_by_review_id = review.id
    hardness.lease_owner, hardness.lease_expires_at = None, None
    refresh_item_status(db_session, project, hardness)
    db_session.commit()
    return review


def flag_item(*, db_session: Session, project: Project, user: User, item_id: int, reason: str) -> Flag:
    """Asks for a reviewer; the flagger's own lease is given up, someone else's live lease is respected."""
    hardness = hardness_of(db_session=db_session, project=project, item_id=item_id, lock=True)
    flag = Flag(item_id=item_id, project_id=project.id, user_id=user.id, reason=reason)
    db_session.add(flag)
    db_session.flush()
    if hardness.status != "leased" or holds_live_lease(hardness, user) or not _lease_live(hardness):
        hardness.lease_owner, hardness.lease_expires_at = None, None
        hardness.status = "review"
        hardness.updated_at = utcnow()
    db_session.commit()
    return flag


def _lease_live(hardness: Hardness) -> bool:
    expires = as_utc(hardness.lease_expires_at)
    return expires is not None and expires > utcnow()


def item_history(*, db_session: Session, project: Project, item_id: int) -> dict[str, list]:
    """Everything said about an item, oldest first: annotations (every state), reviews, flags."""
    annotations = db_session.scalars(
        select(Annotation)
        .where(Annotation.item_id == item_id, Annotation.project_id == project.id)
        .order_by(Annotation.id)
    )
    reviews = db_session.scalars(select(Review).where(Review.item_id == item_id).order_by(Review.id))
    flags = db_session.scalars(select(Flag).where(Flag.item_id == item_id).order_by(Flag.id))
    return {"annotations": list(annotations), "reviews": list(reviews), "flags": list(flags)}


# --- progress and agreement ---------------------------------------------------------------------------------


def _start_of_today() -> datetime:
    now = utcnow()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


def progress(*, db_session: Session, project: Project, user: User) -> dict[str, Any]:
    mine = select(func.count()).where(
        Annotation.project_id == project.id, Annotation.annotator_id == user.id, Annotation.state == "current"
    )
    counts = status_counts(db_session=db_session, project_id=project.id)
    return {
        "done_today": db_session.scalar(mine.where(Annotation.created_at >= _start_of_today())) or 0,
        "done_total": db_session.scalar(mine) or 0,
        "queue_size": counts["pending"],
        "leased": live_lease_count(db_session=db_session, project_id=project.id),
        "leased_by_others": live_lease_count(
            db_session=db_session, project_id=project.id, excluding_user=user.id
        ),
        "labeled": counts["done"],
        "in_review": counts["review"] + counts["skipped"],
        "agreement_rate": agreement_by_annotator(db_session=db_session, project=project, user_id=user.id).get(
            user.id
        ),
        "daily_goal": project.daily_goal,
    }


def agreement_by_annotator(
    *, db_session: Session, project: Project, user_id: int | None = None
) -> dict[int, float]:
    """The one agreement figure of the label page and the overview: the share of an annotator's current labels
    that match another annotator's current label on the same item (pairwise percent agreement). Items only
    they labeled do not count, so someone nobody overlaps with has no figure (not 100%). `user_id`: only the
    items that user labeled are read."""
    current = (Annotation.project_id == project.id, Annotation.state == "current")
    query = select(Annotation.item_id, Annotation.annotator_id, Annotation.label).where(*current)
    if user_id is not None:
        query = query.where(
            Annotation.item_id.in_(
                select(Annotation.item_id).where(*current, Annotation.annotator_id == user_id)
            )
        )
    by_item: dict[int, dict[int, int]] = defaultdict(dict)
    for item_id, annotator_id, label in db_session.execute(query):
        by_item[item_id][annotator_id] = label
    agree: Counter[int] = Counter()
    pairs: Counter[int] = Counter()
    for labels in by_item.values():
        for annotator_id, label in labels.items():
            others = [other for who, other in labels.items() if who != annotator_id]
            pairs[annotator_id] += len(others)
            agree[annotator_id] += sum(other == label for other in others)
    return {who: agree[who] / n for who, n in pairs.items() if n}


def _pairwise_kappas(
    labels_by_item: dict[int, dict[int, int]], names: dict[int, str]
) -> list[dict[str, Any]]:
    by_pair: dict[tuple[int, int], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for labels in labels_by_item.values():
        for a, b in combinations(sorted(labels), 2):
            by_pair[(a, b)][0].append(labels[a])
            by_pair[(a, b)][1].append(labels[b])
    return [
        {"annotator_a": names[a], "annotator_b": names[b], "items": len(la), "kappa": cohen_kappa(la, lb)}
        for (a, b), (la, lb) in sorted(by_pair.items())
    ]


def _fleiss(labels_by_item: dict[int, dict[int, int]], n_classes: int) -> tuple[float | None, int]:
    sizes = Counter(len(v) for v in labels_by_item.values() if len(v) >= 2)
    if not sizes:
        return None, 0
    raters = sizes.most_common(1)[0][0]
    rows = [
        np.bincount(list(v.values()), minlength=n_classes)
        for v in labels_by_item.values()
        if len(v) == raters
    ]
    return fleiss_kappa(np.array(rows)), len(rows)


def agreement_report(*, db_session: Session, project: Project) -> dict[str, Any]:
    """Cohen's κ per annotator pair, Fleiss' κ, agreement with consensus, and per-annotator throughput."""
    annotations = current_annotations(db_session, project.id)
    consensus = consensus_for_items(db_session=db_session, project=project, item_ids=list(annotations))
    user_ids = {a.annotator_id for anns in annotations.values() for a in anns}
    names = dict(
        db_session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).tuples().all()
    )
    labels_by_item = {i: {a.annotator_id: a.label for a in anns} for i, anns in annotations.items()}
    pairs = _pairwise_kappas(labels_by_item, names)
    fleiss, fleiss_items = _fleiss(labels_by_item, class_count(project))
    per_user: dict[int, list[Annotation]] = defaultdict(list)
    for anns in annotations.values():
        for a in anns:
            per_user[a.annotator_id].append(a)
    hits = [a.label == consensus[a.item_id].label for a in _flat(annotations) if consensus[a.item_id].decided]
    defined = [p["kappa"] for p in pairs if p["kappa"] is not None]
    return {
        "items_labeled": len(annotations),
        "items_decided": sum(c.decided for c in consensus.values()),
        "cohen_kappa_mean": float(np.mean(defined)) if defined else None,
        "pairs": pairs,
        "fleiss_kappa": fleiss,
        "fleiss_items": fleiss_items,
        "agreement_with_consensus": float(np.mean(hits)) if hits else None,
        "annotators": [
            _annotator_row(names[uid], anns, consensus)
            for uid, anns in sorted(per_user.items(), key=lambda kv: names[kv[0]])
        ],
    }


def _flat(grouped: dict[int, list[Annotation]]) -> list[Annotation]:
    return [a for anns in grouped.values() for a in anns]


def _annotator_row(name: str, anns: list[Annotation], consensus: dict[int, Consensus]) -> dict[str, Any]:
    seconds = [a.duration_ms / 1000 for a in anns if a.duration_ms is not None]
    hits = [a.label == consensus[a.item_id].label for a in anns if consensus[a.item_id].decided]
    hours = sum(seconds) / 3600
    return {
        "annotator": name,
        "labels": len(anns),
        "labels_per_hour": len(seconds) / hours if hours > 0 else None,
        "median_seconds_per_item": statistics.median(seconds) if seconds else None,
        "agreement_with_consensus": float(np.mean(hits)) if hits else None,
    }
