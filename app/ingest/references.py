"""Referenced images (s3://, gs://, http(s)://): workers copy them into the blob store, freezes read the outcome.

An item keeps its reference as `image_uri`; once fetched, `sha256` (with width, height, phash) names the copy in
the blob store that training and exports read, and `image_error` says why a fetch failed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.after_commit import on_commit
from app.core.blobs import BLOB_SCHEME, BlobStore
from app.core.config import Settings
from app.ingest.images import ImageRejected, check_image
from app.ingest.models import Item
from app.ingest.remote import RemoteRefused, fetch_remote_image, is_remote_reference, parse_allowlist, refusal
from app.projects.models import Project

FETCH_TASK = "hardcase.fetch_referenced_images"
PENDING = "not fetched yet: a worker is fetching it; freeze again once it is stored"
NOT_A_REFERENCE = (
    "its image URL is not an s3://, gs://, https:// or http:// reference, so it cannot be fetched"
)
CHUNK = 500
MAX_EXAMPLES = 3

log = logging.getLogger("hardcase.references")


def _unstored_query(project_id: int):
    return select(Item).where(
        Item.project_id == project_id,
        Item.sha256.is_(None),
        Item.image_uri.is_not(None),
        Item.image_uri.not_like(f"{BLOB_SCHEME}%"),
    )


def unfetched_item_ids(
    *,
    db_session: Session,
    project: Project,
    retry_failed: bool = False,
    item_ids: Iterable[int] | None = None,
) -> list[int]:
    """Items whose referenced image is not stored yet (and has not failed, unless `retry_failed`)."""
    query = _unstored_query(project.id)
    if not retry_failed:
        query = query.where(Item.image_error.is_(None))
    if item_ids is not None:
        wanted = set(item_ids)
        return [
            i.id for i in db_session.scalars(query) if i.id in wanted and is_remote_reference(i.image_uri)
        ]
    return [i.id for i in db_session.scalars(query.order_by(Item.id)) if is_remote_reference(i.image_uri)]


def fetch_item_image(*, item: Item, settings: Settings, blobs: BlobStore) -> str | None:
    """Copies the item's referenced image into the blob store; returns why not (also kept on the item)."""
    if refusal(item.image_uri or "", settings) is not None:
        return refusal(item.image_uri or "", settings)  # policy: decided again at each freeze, never stored
    try:
        data = fetch_remote_image(item.image_uri or "", settings)
        checked = check_image(data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    except (RemoteRefused, ImageRejected) as exc:
        item.image_error = str(exc)[:500]
        return item.image_error
    item.sha256 = blobs.put(checked.data)
    item.width, item.height, item.phash = checked.width, checked.height, checked.phash
    item.image_error = None
    return None


def fetch_referenced_images(
    *, db_session: Session, project: Project, item_ids: list[int] | None, settings: Settings, blobs: BlobStore
) -> dict[str, int]:
    """Fetches the project's unstored references (those of `item_ids`, or all); commits as it goes."""
    ids = unfetched_item_ids(db_session=db_session, project=project, retry_failed=True, item_ids=item_ids)
    outcome = {"stored": 0, "failed": 0}
    for item_id in ids:
        item = db_session.get(Item, item_id)
        if item is None or item.sha256 is not None:
            continue
        reason = fetch_item_image(item=item, settings=settings, blobs=blobs)
        outcome["failed" if reason else "stored"] += 1
        db_session.commit()
    return outcome


def queue_fetch(
    *,
    db_session: Session,
    settings: Settings,
    project_id: int,
    item_ids: list[int],
    after_commit: bool = True,
) -> None:
    """Hands the ids to a `cpu` worker, after the commit (items created in this transaction) or at once (items
    already stored); nothing is sent while the allowlist is empty. A broker outage is logged, never raised:
    the next freeze queues them again."""
    if not item_ids or not parse_allowlist(settings.remote_image_allowlist):
        return
    from app.jobs.dispatch import PUBLISH_RETRY_POLICY, celery_client

    def send() -> None:
        try:
            for start in range(0, len(item_ids), CHUNK):
                celery_client(settings).send_task(
                    FETCH_TASK,
                    args=[project_id, item_ids[start : start + CHUNK]],
                    queue="cpu",
                    ignore_result=True,
                    retry_policy=PUBLISH_RETRY_POLICY,
                )
        except Exception:  # noqa: BLE001 - kombu raises many kinds; the fetch is retried by the next freeze
            log.exception("could not queue %d image fetches of project %d", len(item_ids), project_id)

    if after_commit:
        on_commit(db_session, send)
    else:
        send()


def fetchable_now(item: Item, settings: Settings) -> bool:
    uri = item.image_uri or ""
    return is_remote_reference(uri) and refusal(uri, settings) is None


def unstored_reasons(items: Iterable[Item], settings: Settings | None) -> dict[int, str]:
    """Why each item's image is not in the blob store: the policy now, else its fetch error, else pending."""
    reasons = {}
    for item in items:
        uri = item.image_uri or ""
        if not is_remote_reference(uri):
            reasons[item.id] = NOT_A_REFERENCE
        elif settings is not None and (policy := refusal(uri, settings)) is not None:
            reasons[item.id] = policy
        else:
            reasons[item.id] = item.image_error or PENDING
    return reasons


def reason_summary(reasons: dict[int, str], items: dict[int, Item]) -> list[dict]:
    """One entry per reason, most items first, with a few external ids as examples."""
    return _grouped(reasons, {item_id: items[item_id].external_id for item_id in reasons})


def reference_status(*, db_session: Session, project: Project, settings: Settings) -> dict:
    """Counts of the project's referenced images (stored, failed, pending) and the failures by reason (a fetch
    that failed, or settings that forbid one)."""
    query = select(Item.id, Item.external_id, Item.image_uri, Item.sha256, Item.image_error).where(
        Item.project_id == project.id, Item.image_uri.not_like(f"{BLOB_SCHEME}%")
    )
    counts = {"references": 0, "stored": 0, "failed": 0, "pending": 0}
    failed: dict[int, str] = {}
    names: dict[int, str] = {}
    for item_id, external_id, uri, sha, error in db_session.execute(query):
        if not is_remote_reference(uri):
            continue
        counts["references"] += 1
        reason = None if sha else refusal(uri, settings) or error
        counts["stored" if sha else "failed" if reason else "pending"] += 1
        if reason:
            failed[item_id], names[item_id] = reason, external_id
    return {**counts, "failures": _grouped(failed, names)}


def _grouped(reasons: dict[int, str], names: dict[int, str]) -> list[dict]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for item_id, reason in sorted(reasons.items()):
        grouped[reason].append(item_id)
    return [
        {"reason": reason, "items": len(ids), "examples": [names[i] for i in ids[:MAX_EXAMPLES]]}
        for reason, ids in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
