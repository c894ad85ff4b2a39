"""Leasing the hardest pending item: SKIP LOCKED on PostgreSQL, a conditional UPDATE everywhere, expiry, skips.

A lease is exclusive: an item is leased to one annotator at a time. With overlap k an item returns to the pool
after each annotation until k people labeled it; an annotator never gets an item they labeled already.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.auth.models import User
from app.core.db import commit_soft_state, is_postgres, utcnow
from app.core.errors import ApiError
from app.ingest.models import PREDICTION_ANSWER, Item, Prediction
from app.labels.models import Annotation
from app.metrics import events as metrics
from app.projects.models import Project
from app.projects.service import takes_boxes
from app.queue.models import STATUSES, Hardness, QueueCursor, QueueSkip
from app.queue.ranking import MEASURE_COLUMNS, prediction_value, ranking_threshold, strategy_of
from ml.scoring import (
    REASON_MEASURES,
    ItemSignature,
    hardness_for_item,
    is_near_duplicate,
    positive_quota_due,
    reasons_from_measures,
)


@dataclass(frozen=True)
class QueueConfig:
    """Knobs of serving order beyond the ranking itself."""

    candidates: int = 16  # top-N looked at for diversity; also how many rows one lease locks briefly
    min_positive_share: float = 0.2  # roadwork is rare: keep likely positives at least this share of serves
    near_duplicate_hamming: int = 6
    near_duplicate_window_s: float = 60.0
    skip_cooldown_minutes: int = 24 * 60  # a skipped item does not come back to the same user this soon
    skips_to_park: int = 3  # after this many skips an item leaves the pool for a reviewer


QUEUE_CONFIG = QueueConfig()
# The measures the label page shows for an item: the stored ones but the scores' spread, and the boxes'.
PAYLOAD_MEASURES = (*(name for name in MEASURE_COLUMNS if name != "score_std"), "box_disagreement")


@dataclass(frozen=True)
class Lease:
    item_id: int
    expires_at: datetime


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def expire_leases(*, db_session: Session, project_id: int, now: datetime | None = None) -> int:
    """Expired leases go back to the pool (rows another transaction holds are left for it)."""
    now = now or utcnow()
    expired = (
        select(Hardness.item_id)
        .where(
            Hardness.project_id == project_id,
            Hardness.status == "leased",
            Hardness.lease_expires_at < now,
        )
        .with_for_update(skip_locked=True)
    )
    result = db_session.execute(
        update(Hardness)
        .where(Hardness.item_id.in_(expired.scalar_subquery()))
        .values(status="pending", lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _cursor(db_session: Session, user_id: int, project_id: int) -> QueueCursor:
    found = db_session.get(QueueCursor, {"user_id": user_id, "project_id": project_id})
    if found is not None:
        return found
    dialect = postgresql if is_postgres(db_session) else sqlite
    db_session.execute(
        dialect.insert(QueueCursor)
        .values(user_id=user_id, project_id=project_id)
        .on_conflict_do_nothing(index_elements=["user_id", "project_id"])
    )
    return db_session.get(QueueCursor, {"user_id": user_id, "project_id": project_id})


def _candidates(
    db_session: Session, project: Project, user: User, *, positives_only: bool, config: QueueConfig
) -> list[Any]:
    cooldown = utcnow() - timedelta(minutes=config.skip_cooldown_minutes)
    labeled_by_user = exists().where(
        Annotation.item_id == Hardness.item_id,
        Annotation.annotator_id == user.id,
        Annotation.state == "current",
    )
    skipped_by_user = exists().where(
        QueueSkip.item_id == Hardness.item_id, QueueSkip.user_id == user.id, QueueSkip.skipped_at > cooldown
    )
    query = (
        select(Hardness.item_id, Hardness.likely_positive, Item.phash, Item.camera_id, Item.captured_at)
        .join(Item, Item.id == Hardness.item_id)
        .where(Hardness.project_id == project.id, Hardness.status == "pending", ~labeled_by_user)
        .where(~skipped_by_user)
        .order_by(Hardness.priority.desc())
        .limit(config.candidates)
        .with_for_update(skip_locked=True, of=Hardness)
    )
    if positives_only:
        query = query.where(Hardness.likely_positive.is_(True))
    return list(db_session.execute(query).all())


def _signature(phash: int | None, camera_id: str | None, captured_at: datetime | None) -> ItemSignature:
    return ItemSignature(phash=phash, camera_id=camera_id, captured_at=as_utc(captured_at))


def _last_served(db_session: Session, cursor: QueueCursor) -> ItemSignature | None:
    if cursor.last_item_id is None:
        return None
    item = db_session.get(Item, cursor.last_item_id)
    return None if item is None else _signature(item.phash, item.camera_id, item.captured_at)


def _diverse_order(candidates: list[Any], last: ItemSignature | None, config: QueueConfig) -> list[Any]:
    """Hardest first, but near-duplicates of the user's last item (same picture, same camera moments apart)
    move to the back: they are still served when nothing else is left."""
    if last is None:
        return candidates
    fresh, repeats = [], []
    for row in candidates:
        duplicate = is_near_duplicate(
            last,
            _signature(row.phash, row.camera_id, row.captured_at),
            max_hamming=config.near_duplicate_hamming,
            window_seconds=config.near_duplicate_window_s,
        )
        (repeats if duplicate else fresh).append(row)
    return fresh + repeats


def _claim(
    db_session: Session, item_id: int, user_id: int, expires_at: datetime, project_id: int | None = None
) -> bool:
    """The atomic step: only a still-pending row changes hands (SQLite has no SKIP LOCKED; this guards it)."""
    in_project = () if project_id is None else (Hardness.project_id == project_id,)
    result = db_session.execute(
        update(Hardness)
        .where(Hardness.item_id == item_id, Hardness.status == "pending", *in_project)
        .values(status="leased", lease_owner=user_id, lease_expires_at=expires_at, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


@metrics.times_lease
def lease_next_item(
    *,
    db_session: Session,
    project: Project,
    user: User,
    lease_minutes: int,
    holding: list[int] | None = None,
    config: QueueConfig = QUEUE_CONFIG,
) -> Lease | None:
    """Leases the hardest suitable pending item to `user` and commits; None when nothing is left for them.

    `holding` lists the items the caller's page has on screen or prefetched: the user's other live leases
    come from pages that were closed (or a failed answer before a reload) and are handed back first, so the
    page is never told "nothing left" while its user holds work. A caller that sends no list keeps every
    lease it takes (an API client may hold several).

    PostgreSQL does it all in one statement (LEASE_SQL); SQLite, which has no SKIP LOCKED, in several steps
    guarded by a conditional UPDATE."""
    lease = _take_lease(db_session, project, user, lease_minutes, holding, config)
    _commit_lease(db_session)
    return lease


@metrics.times_lease
def lease_and_describe(
    *, db_session: Session, project: Project, user: User, lease_minutes: int, holding: list[int] | None = None
) -> tuple[Lease, dict[str, Any]] | None:
    """`lease_next_item` with the leased item as the label page shows it (`item_payload`), read in the lease's
    own transaction: the connection is taken from the pool once (a checkout after the commit cost a ping and a
    BEGIN of its own)."""
    lease = _take_lease(db_session, project, user, lease_minutes, holding, QUEUE_CONFIG)
    if lease is None:
        _commit_lease(db_session)  # what expired on the way is given back all the same
        return None
    payload = item_payload(db_session=db_session, project=project, item_id=lease.item_id)
    _commit_lease(db_session)
    return lease, payload


def _take_lease(
    db_session: Session,
    project: Project,
    user: User,
    lease_minutes: int,
    holding: list[int] | None,
    config: QueueConfig,
) -> Lease | None:
    if is_postgres(db_session):
        return _lease_in_one_statement(db_session, project, user, lease_minutes, holding, config)
    expire_leases(db_session=db_session, project_id=project.id)
    expires_at = utcnow() + timedelta(minutes=lease_minutes)
    lease = None
    if holding is not None:
        lease = _reclaim_own_lease(db_session, project, user, exclude=set(holding), expires_at=expires_at)
    return lease or _lease_pending(db_session, project, user, expires_at, config)


def _commit_lease(db_session: Session) -> None:
    if is_postgres(db_session):
        db_session.commit()  # soft state: LEASE_SQL turned synchronous commit off for its transaction
    else:
        commit_soft_state(db_session)


# The candidate rows: the project's pending items and lapsed leases (served as if expiry had run first), not
# labeled by the user nor skipped by them lately, hardest first; {extra} narrows to likely positives.
# OFFSET 0 keeps each NOT EXISTS a per-candidate index probe: turned into an anti-join, it was planned from the
# table's statistics, and from statistics taken while the table was small (autovacuum off or behind) PostgreSQL
# compared every candidate with every label of the user (7,200 comparisons at 450 labels, growing with them).
_POOL = """
    SELECT h.item_id, h.priority, h.likely_positive FROM hardness AS h
    WHERE h.project_id = %(project)s AND {status} {extra}
      AND NOT EXISTS (SELECT 1 FROM annotations AS a WHERE a.item_id = h.item_id
                      AND a.annotator_id = %(user)s AND a.state = 'current' OFFSET 0)
      AND NOT EXISTS (SELECT 1 FROM queue_skips AS s WHERE s.item_id = h.item_id
                      AND s.user_id = %(user)s AND s.skipped_at > %(cooldown)s OFFSET 0)
    ORDER BY h.priority DESC LIMIT %(candidates)s
    FOR UPDATE OF h SKIP LOCKED
"""
_PENDING = "h.status = 'pending'"
_LAPSED = "h.status = 'leased' AND h.lease_expires_at < %(now)s"
_WANT_POSITIVE = "AND h.likely_positive AND (SELECT want FROM quota)"
_NO_POSITIVE = "AND NOT EXISTS (SELECT 1 FROM pos_pending) AND NOT EXISTS (SELECT 1 FROM pos_lapsed)"

# One round trip: reclaim one of the user's own leases the page lost, else take the hardest candidate that is
# not a near-duplicate of the user's last item (those only when nothing else is left), with the positive
# quota; send every other lapsed lease back to the pool; advance the user's serving cursor.
# CTEs that are not referenced, or whose one-time filter is false, never run: a reclaim locks nothing else.
# The statement also turns synchronous commit off for its own transaction (what `commit_soft_state` does, without
# a round trip of its own), and always returns one row: the leased item's id, or NULL.
LEASE_SQL = f"""
WITH cur AS (
    SELECT c.served_total, c.served_positive, i.phash, i.camera_id, i.captured_at
    FROM queue_cursors AS c LEFT JOIN items AS i ON i.id = c.last_item_id
    WHERE c.user_id = %(user)s AND c.project_id = %(project)s
), quota AS (
    SELECT %(positives)s AND COALESCE(
        (SELECT served_positive < %(share)s * (served_total + 1) FROM cur), 0 < %(share)s) AS want
), own AS (
    SELECT h.item_id, h.likely_positive FROM hardness AS h
    WHERE %(reclaim)s AND h.project_id = %(project)s AND h.status = 'leased' AND h.lease_owner = %(user)s
      AND h.lease_expires_at > %(now)s AND h.item_id <> ALL(%(holding)s::int8[])
    ORDER BY h.priority DESC, h.item_id LIMIT 1
    FOR UPDATE SKIP LOCKED
), pos_pending AS ({_POOL.format(status=_PENDING, extra=_WANT_POSITIVE)}
), pos_lapsed AS ({_POOL.format(status=_LAPSED, extra=_WANT_POSITIVE)}
), any_pending AS ({_POOL.format(status=_PENDING, extra=_NO_POSITIVE)}
), any_lapsed AS ({_POOL.format(status=_LAPSED, extra=_NO_POSITIVE)}
), candidates AS (
    SELECT * FROM (
        SELECT * FROM pos_pending UNION ALL SELECT * FROM pos_lapsed
        UNION ALL SELECT * FROM any_pending UNION ALL SELECT * FROM any_lapsed
    ) AS pool
    WHERE NOT EXISTS (SELECT 1 FROM own)
    ORDER BY priority DESC LIMIT %(candidates)s
), chosen AS (
    SELECT item_id, likely_positive, true AS reclaimed FROM own
    UNION ALL (
        SELECT p.item_id, p.likely_positive, false FROM candidates AS p
        JOIN items AS i ON i.id = p.item_id LEFT JOIN cur AS l ON true
        ORDER BY COALESCE(bit_count((i.phash # l.phash)::bit(64)) <= %(hamming)s, false)
              OR COALESCE(i.camera_id = l.camera_id
                          AND abs(extract(epoch FROM i.captured_at - l.captured_at)) <= %(window)s, false),
                 p.priority DESC
        LIMIT 1
    )
), claimed AS (
    UPDATE hardness AS h
    SET status = 'leased', lease_owner = %(user)s, lease_expires_at = %(expires)s, updated_at = %(now)s
    FROM chosen WHERE h.item_id = chosen.item_id
    RETURNING h.item_id, chosen.likely_positive, chosen.reclaimed
), expired AS (
    UPDATE hardness AS h SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
    WHERE h.item_id IN (
        SELECT e.item_id FROM hardness AS e
        WHERE e.project_id = %(project)s AND e.status = 'leased' AND e.lease_expires_at < %(now)s
          AND e.item_id NOT IN (SELECT item_id FROM chosen)
        FOR UPDATE SKIP LOCKED)
), served AS (
    INSERT INTO queue_cursors AS c (user_id, project_id, last_item_id, served_total, served_positive)
    SELECT %(user)s, %(project)s, item_id, 1, likely_positive::int FROM claimed WHERE NOT reclaimed
    ON CONFLICT (user_id, project_id) DO UPDATE SET last_item_id = EXCLUDED.last_item_id,
        served_total = c.served_total + 1, served_positive = c.served_positive + EXCLUDED.served_positive
), soft AS (
    SELECT set_config('synchronous_commit', 'off', true)
)
SELECT claimed.item_id FROM soft LEFT JOIN claimed ON true
"""


@functools.cache
def lease_sql(candidates: int) -> str:
    """LEASE_SQL with its LIMIT written into the text. PostgreSQL plans a LIMIT parameter as a tenth of the
    rows, so the prepared lease's generic plan sorted the whole pool and was never chosen: every lease was
    planned afresh (1.5-2 ms of its 4.5 ms at 200k items). With the number in the text the generic plan reads
    the priority index like the custom one, and after a few leases on a connection none is planned again."""
    return LEASE_SQL.replace("%(candidates)s", str(int(candidates)))


def _lease_in_one_statement(
    db_session: Session,
    project: Project,
    user: User,
    lease_minutes: int,
    holding: list[int] | None,
    config: QueueConfig,
) -> Lease | None:
    params = lease_params(project, user, lease_minutes, holding, config)
    raw = db_session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        item_id = cursor.execute(lease_sql(config.candidates), params).fetchone()[0]
    return None if item_id is None else Lease(item_id=item_id, expires_at=params["expires"])


def lease_params(
    project: Project, user: User, lease_minutes: int, holding: list[int] | None, config: QueueConfig
) -> dict[str, Any]:
    """The parameters of `lease_sql` for one lease by `user`."""
    now = utcnow()
    return {
        "project": project.id,
        "user": user.id,
        "now": now,
        "expires": now + timedelta(minutes=lease_minutes),
        "cooldown": now - timedelta(minutes=config.skip_cooldown_minutes),
        "positives": project.kind != "multiclass" and config.min_positive_share > 0,
        "share": config.min_positive_share,
        "hamming": config.near_duplicate_hamming,
        "window": config.near_duplicate_window_s,
        "reclaim": holding is not None,
        "holding": list(holding or []),
    }


def _lease_pending(
    db_session: Session, project: Project, user: User, expires_at: datetime, config: QueueConfig
) -> Lease | None:
    cursor = _cursor(db_session, user.id, project.id)
    want_positive = positive_quota_due(
        cursor.served_total,
        cursor.served_positive,
        min_positive_share=config.min_positive_share,
        positives_available=project.kind != "multiclass",
    )
    candidates = _candidates(db_session, project, user, positives_only=want_positive, config=config)
    if want_positive and not candidates:
        candidates = _candidates(db_session, project, user, positives_only=False, config=config)
    for row in _diverse_order(candidates, _last_served(db_session, cursor), config):
        if _claim(db_session, row.item_id, user.id, expires_at):
            cursor.last_item_id = row.item_id
            cursor.served_total += 1
            cursor.served_positive += int(bool(row.likely_positive))
            return Lease(item_id=row.item_id, expires_at=expires_at)
    return None


def _reclaim_own_lease(
    db_session: Session, project: Project, user: User, *, exclude: set[int], expires_at: datetime
) -> Lease | None:
    """The hardest item leased to `user` that the caller does not hold on its page, with a fresh lease."""
    query = (
        select(Hardness)
        .where(
            Hardness.project_id == project.id,
            Hardness.status == "leased",
            Hardness.lease_owner == user.id,
            Hardness.lease_expires_at > utcnow(),
        )
        .order_by(Hardness.priority.desc(), Hardness.item_id)
        .limit(len(exclude) + 1)
        .with_for_update(skip_locked=True)
    )
    row = next((r for r in db_session.scalars(query) if r.item_id not in exclude), None)
    if row is None:
        return None
    row.lease_expires_at, row.updated_at = expires_at, utcnow()
    return Lease(item_id=row.item_id, expires_at=expires_at)


def renew_leases(
    *, db_session: Session, project: Project, user: User, item_ids: list[int], lease_minutes: int
) -> tuple[list[int], datetime]:
    """The open label page's heartbeat: extends the caller's leases among `item_ids`, and takes back one that
    ran out while nobody else took it (a laptop asleep); returns the items held now and the new expiry."""
    expires_at = utcnow() + timedelta(minutes=lease_minutes)
    expire_leases(db_session=db_session, project_id=project.id)
    held = list(
        db_session.scalars(
            update(Hardness)
            .where(
                Hardness.project_id == project.id,
                Hardness.item_id.in_(item_ids),
                Hardness.status == "leased",
                Hardness.lease_owner == user.id,
            )
            .values(lease_expires_at=expires_at)
            .returning(Hardness.item_id)
            .execution_options(synchronize_session=False)
        )
    )
    held += [i for i in set(item_ids) - set(held) if _claim(db_session, i, user.id, expires_at, project.id)]
    commit_soft_state(db_session)
    return sorted(held), expires_at


def release_items(*, db_session: Session, project: Project, user: User, item_ids: list[int]) -> list[int]:
    """Gives back the caller's leases among `item_ids` (a closing page); others' leases are left alone."""
    released = list(
        db_session.scalars(
            update(Hardness)
            .where(
                Hardness.project_id == project.id,
                Hardness.item_id.in_(item_ids),
                Hardness.status == "leased",
                Hardness.lease_owner == user.id,
            )
            .values(status="pending", lease_owner=None, lease_expires_at=None, updated_at=utcnow())
            .returning(Hardness.item_id)
            .execution_options(synchronize_session=False)
        )
    )
    commit_soft_state(db_session)
    return sorted(released)


def lease_item_to(*, db_session: Session, hardness: Hardness, user: User, lease_minutes: int) -> Lease:
    """Hands a specific item to `user` (undo brings an item back to its annotator)."""
    expires_at = utcnow() + timedelta(minutes=lease_minutes)
    hardness.status = "leased"
    hardness.lease_owner = user.id
    hardness.lease_expires_at = expires_at
    hardness.updated_at = utcnow()
    return Lease(item_id=hardness.item_id, expires_at=expires_at)


# An item's queue row, read on every label (locked) and queue action: built once.
_HARDNESS_OF = select(Hardness).where(
    Hardness.item_id == bindparam("item_id"), Hardness.project_id == bindparam("project_id")
)
_HARDNESS_OF_LOCKED = _HARDNESS_OF.with_for_update()


def hardness_of(*, db_session: Session, project: Project, item_id: int, lock: bool = False) -> Hardness:
    query = _HARDNESS_OF_LOCKED if lock else _HARDNESS_OF
    row = db_session.scalar(query, {"item_id": item_id, "project_id": project.id})
    if row is None:
        raise ApiError(404, "item_id", f"no item {item_id} in project {project.name!r}")
    return row


def holds_live_lease(hardness: Hardness, user: User, now: datetime | None = None) -> bool:
    now = now or utcnow()
    expires = as_utc(hardness.lease_expires_at)
    return (
        hardness.status == "leased"
        and hardness.lease_owner == user.id
        and expires is not None
        and expires > now
    )


def _own_lease(db_session: Session, project: Project, user: User, item_id: int) -> Hardness:
    row = hardness_of(db_session=db_session, project=project, item_id=item_id, lock=True)
    if not holds_live_lease(row, user):
        raise ApiError(409, "item_id", f"you hold no live lease on item {item_id}")
    return row


def release_item(*, db_session: Session, project: Project, user: User, item_id: int) -> Hardness:
    """The item goes straight back to the pool, for anyone (the user changed their mind, closed the tab)."""
    row = _own_lease(db_session, project, user, item_id)
    row.status, row.lease_owner, row.lease_expires_at = "pending", None, None
    row.updated_at = utcnow()
    commit_soft_state(db_session)
    return row


def skip_item(
    *, db_session: Session, project: Project, user: User, item_id: int, config: QueueConfig = QUEUE_CONFIG
) -> Hardness:
    """Back to the pool for others, not for this user for a while; an item many skip goes to a reviewer."""
    row = _own_lease(db_session, project, user, item_id)
    db_session.add(QueueSkip(item_id=item_id, user_id=user.id))
    row.skip_count += 1
    row.status = "skipped" if row.skip_count >= config.skips_to_park else "pending"
    row.lease_owner, row.lease_expires_at = None, None
    row.updated_at = utcnow()
    commit_soft_state(db_session)
    return row


# --- what the label page shows ------------------------------------------------------------------------------


def _latest_by_model(predictions: list[Any]) -> list[Any]:
    """The last prediction of each model (by `id`, or `prediction_id` on a payload row), in model order."""
    latest: dict[str, Any] = {}
    for pred in sorted(predictions, key=_prediction_id):
        latest[pred.model] = pred
    return sorted(latest.values(), key=lambda p: p.model)


def _prediction_id(prediction: Any) -> int:
    return prediction.prediction_id if hasattr(prediction, "prediction_id") else prediction.id


def _stored_measures(project: Project, hardness: Any, scores: dict[str, Any]) -> dict[str, float] | None:
    """The measures the item's ranking stored, where they describe its current predictions: a binary project,
    the same number of scoring models. Otherwise (multiclass, or not scored since) None: rank it again."""
    if project.kind != "binary" or hardness.n_models != sum(v is not None for v in scores.values()):
        return None
    measures = {name: getattr(hardness, name) for name in REASON_MEASURES}
    return None if any(value is None for value in measures.values()) else measures


def _reasons(project: Project, hardness: Any, predictions: list[Any]) -> list[str]:
    """Why the item is hard, built from its latest predictions; notes stored on the row (e.g. a drift boost)
    come first. Ranking does not store the measure reasons: one Python call per item would dominate ingest."""
    stored = list(hardness.reasons or [])
    scores = {p.model: prediction_value(project, p.score, p.probs) for p in predictions}
    if not scores:
        computed = ["no model scored it"]
    elif (measures := _stored_measures(project, hardness, scores)) is not None:
        computed = reasons_from_measures(
            measures, scores, threshold=ranking_threshold(project), strategy=strategy_of(project)
        )
    else:
        boxes = None
        if takes_boxes(project):  # binary projects compare only the detectors (models that drew a box)
            boxes = {p.model: p.boxes or [] for p in predictions if project.kind == "detection" or p.boxes}
        computed = hardness_for_item(
            scores,
            threshold=ranking_threshold(project),
            strategy=strategy_of(project),
            boxes=boxes if boxes and len(boxes) >= 2 else None,
            item_key=hardness.item_id,
            class_names=list(project.classes) if project.kind == "multiclass" else None,
        ).reasons
    return stored + [reason for reason in computed if reason not in stored]


# The label page's view of one item, built once: the item, its queue row and its predictions as plain rows in
# one round trip (loading them as ORM objects, and building the statement per call, cost half the payload).
_PAYLOAD_QUERY = (
    select(
        Item.id,
        Item.external_id,
        Item.width,
        Item.height,
        Item.captured_at,
        Item.camera_id,
        Item.is_night,
        Item.lat,
        Item.lon,
        Item.meta,
        Hardness.item_id,
        Hardness.n_models,
        *(getattr(Hardness, name) for name in dict.fromkeys((*PAYLOAD_MEASURES, *REASON_MEASURES))),
        Hardness.reasons,
        Hardness.status,
        Hardness.annotation_count,
        Prediction.id.label("prediction_id"),
        *PREDICTION_ANSWER,
    )
    .join(Hardness, Hardness.item_id == Item.id)
    .outerjoin(Prediction, Prediction.item_id == Item.id)
    .where(Item.id == bindparam("item_id"))
)


def item_payload(*, db_session: Session, project: Project, item_id: int) -> dict[str, Any]:
    """The item as the label page needs it: image URL, metadata, the cascade's predictions, why it is hard."""
    rows = db_session.connection().execute(_PAYLOAD_QUERY, {"item_id": item_id}).all()
    item = rows[0]
    predictions = _latest_by_model([row for row in rows if row.prediction_id is not None])
    metadata = {
        "captured_at": as_utc(item.captured_at).isoformat() if item.captured_at else None,
        "camera_id": item.camera_id,
        "is_night": item.is_night,
        "lat": item.lat,
        "lon": item.lon,
        **(item.meta or {}),
    }
    return {
        "id": item.id,
        "external_id": item.external_id,
        "image_url": f"/api/v1/projects/{project.name}/items/{item.id}/image",
        "width": item.width,
        "height": item.height,
        "metadata": metadata,
        "predictions": [
            {
                "model": p.model,
                "model_version": p.model_version,
                "score": p.score,
                "probs": p.probs,
                "label": p.label,
                "boxes": p.boxes,
            }
            for p in predictions
        ],
        "hardness": {
            **{name: getattr(item, name) for name in PAYLOAD_MEASURES},
            "reasons": _reasons(project, item, predictions),
            "status": item.status,
            "annotation_count": item.annotation_count,
        },
    }


# --- counts -------------------------------------------------------------------------------------------------


# A pool this large is counted at most every POOL_COUNTS_MAX_AGE_S seconds per process: counting a million
# queue rows takes 0.1-0.2 s on three PostgreSQL processes, and every annotator's label page asks. Smaller
# pools are counted on every call.
POOL_COUNTS_EXACT_BELOW = 100_000
POOL_COUNTS_MAX_AGE_S = 10.0


@dataclass(frozen=True)
class _PoolCounts:
    counted_at: float
    counts: dict[str, int]


_pool_counts: dict[tuple[str, int], _PoolCounts] = {}
_counting: dict[tuple[str, int], threading.Lock] = {}


def status_counts(*, db_session: Session, project_id: int) -> dict[str, int]:
    """Queue rows per status; for a pool of POOL_COUNTS_EXACT_BELOW rows or more, as counted at most
    POOL_COUNTS_MAX_AGE_S ago by this process."""
    key = (str(db_session.get_bind().url), project_id)
    with _counting.setdefault(key, threading.Lock()):  # requests arriving together wait for one count
        cached = _pool_counts.get(key)
        if cached is not None and time.monotonic() - cached.counted_at < POOL_COUNTS_MAX_AGE_S:
            return dict(cached.counts)
        counts = _count_statuses(db_session, project_id)
        if sum(counts.values()) >= POOL_COUNTS_EXACT_BELOW:
            _pool_counts[key] = _PoolCounts(time.monotonic(), counts)
        else:
            _pool_counts.pop(key, None)
        return counts


def _count_statuses(db_session: Session, project_id: int) -> dict[str, int]:
    rows = db_session.execute(
        select(Hardness.status, func.count())
        .where(Hardness.project_id == project_id)
        .group_by(Hardness.status)
    ).all()
    counts = {status: 0 for status in STATUSES}
    counts.update({status: n for status, n in rows})
    return counts


def live_lease_count(*, db_session: Session, project_id: int, excluding_user: int | None = None) -> int:
    """Items someone is labeling now; with `excluding_user`, only other people's (what hides work from them)."""
    query = select(func.count()).where(
        and_(
            Hardness.project_id == project_id,
            Hardness.status == "leased",
            Hardness.lease_expires_at > utcnow(),
        )
    )
    if excluding_user is not None:
        query = query.where(Hardness.lease_owner != excluding_user)
    return db_session.scalar(query) or 0
