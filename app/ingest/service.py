"""Batch ingestion of cascade predictions: idempotent by (project, external_id) and (item, model, version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.blobs import BlobStore, blob_uri
from app.core.bulk import insert_ignoring_conflicts
from app.core.config import Settings
from app.ingest.images import ImageRejected, check_image, decode_base64
from app.ingest.models import Item, Prediction
from app.ingest.schemas import IngestSummary, ItemError, ItemIn
from app.projects.models import Project
from app.queue.ranking import rescore_after_ingest


@dataclass
class _ValidItem:
    index: int
    item: ItemIn
    image_fields: dict[str, Any] = field(default_factory=dict)


def error_field(prefix: str, loc: tuple) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_items(
    raw_items: list[Any], *, max_metadata_bytes: int
) -> tuple[list[_ValidItem], list[ItemError]]:
    valid: list[_ValidItem] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_items):
        external_id = raw.get("external_id") if isinstance(raw, dict) else None
        try:
            item = ItemIn.model_validate(raw, context={"max_metadata_bytes": max_metadata_bytes})
        except ValidationError as exc:
            first = exc.errors()[0]
            errors.append(
                ItemError(
                    index=index,
                    external_id=_str_or_none(external_id),
                    field=error_field(f"items[{index}]", first["loc"]),
                    message=first["msg"],
                )
            )
            continue
        if item.external_id in seen:
            errors.append(
                ItemError(
                    index=index,
                    external_id=item.external_id,
                    field=f"items[{index}].external_id",
                    message="duplicate external_id in batch",
                )
            )
            continue
        seen.add(item.external_id)
        valid.append(_ValidItem(index=index, item=item))
    return valid, errors


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def store_images(
    valid: list[_ValidItem], files: Mapping[str, bytes], *, blobs: BlobStore, settings: Settings
) -> tuple[list[_ValidItem], list[ItemError], int]:
    kept: list[_ValidItem] = []
    errors: list[ItemError] = []
    stored = 0
    for entry in valid:
        ref = entry.item.image
        if ref is None:
            kept.append(entry)
            continue
        if ref.url is not None:
            entry.image_fields = {"image_uri": ref.url}
            kept.append(entry)
            continue
        try:
            data = decode_base64(ref.base64) if ref.base64 is not None else _multipart_part(files, ref.file)
            checked = check_image(
                data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
            )
        except ImageRejected as exc:
            errors.append(
                ItemError(
                    index=entry.index,
                    external_id=entry.item.external_id,
                    field=f"items[{entry.index}].image",
                    message=str(exc),
                )
            )
            continue
        sha = blobs.put(checked.data)
        stored += 1
        entry.image_fields = {
            "image_uri": blob_uri(sha),
            "sha256": sha,
            "width": checked.width,
            "height": checked.height,
            "phash": checked.phash,
        }
        kept.append(entry)
    return kept, errors, stored


def _multipart_part(files: Mapping[str, bytes], name: str | None) -> bytes:
    if name not in files:
        raise ImageRejected(f"no uploaded file part named {name!r}")
    return files[name]


def _item_row(project_id: int, entry: _ValidItem) -> dict[str, Any]:
    meta = entry.item.metadata
    extra = meta.model_dump(exclude={"captured_at", "camera_id", "is_night", "lat", "lon"}, mode="json")
    return {
        "project_id": project_id,
        "external_id": entry.item.external_id,
        "image_uri": None,
        "sha256": None,
        "width": None,
        "height": None,
        "phash": None,
        "captured_at": meta.captured_at,
        "camera_id": meta.camera_id,
        "is_night": meta.is_night,
        "lat": meta.lat,
        "lon": meta.lon,
        "meta": extra,
        **entry.image_fields,
    }


def upsert_items(session: Session, project_id: int, entries: list[_ValidItem]) -> tuple[dict[str, int], int]:
    """Inserts new items, keeps existing ones; returns external_id -> item id and how many were new."""
    if not entries:
        return {}, 0
    rows = [_item_row(project_id, e) for e in entries]
    created = insert_ignoring_conflicts(session, Item.__table__, rows, ["project_id", "external_id"], "id")
    ids = dict(
        session.execute(
            select(Item.external_id, Item.id).where(
                Item.project_id == project_id, Item.external_id.in_([e.item.external_id for e in entries])
            )
        )
        .tuples()
        .all()
    )
    return ids, len(created)


def insert_predictions(
    session: Session, project_id: int, entries: list[_ValidItem], item_ids: dict[str, int]
) -> list[int]:
    """Adds predictions not seen before; returns one item id per new prediction."""
    rows = [
        {
            "item_id": item_ids[e.item.external_id],
            "project_id": project_id,
            "model": p.model,
            "model_version": p.model_version,
            "score": p.score,
            "probs": p.probs,
            "label": p.label,
            "boxes": p.boxes,
            "embedding": p.embedding,
            "extra": p.extra,
        }
        for e in entries
        for p in e.item.predictions
    ]
    conflict = ["item_id", "model", "model_version"]
    return insert_ignoring_conflicts(session, Prediction.__table__, rows, conflict, "item_id")


def ingest_batch(
    *,
    db_session: Session,
    project: Project,
    raw_items: list[Any],
    files: Mapping[str, bytes],
    blobs: BlobStore,
    settings: Settings,
) -> IngestSummary:
    valid, errors = validate_items(raw_items, max_metadata_bytes=settings.max_metadata_bytes)
    valid, image_errors, stored = store_images(valid, files, blobs=blobs, settings=settings)
    errors.extend(image_errors)
    item_ids, items_created = upsert_items(db_session, project.id, valid)
    new_prediction_items = insert_predictions(db_session, project.id, valid, item_ids)
    changed = sorted(set(new_prediction_items))
    # Every ingest path (API, CLI demo, workers) goes through here, so the queue stays ranked.
    rescore_after_ingest(
        db_session=db_session, project=project, changed_item_ids=changed, batch_item_ids=item_ids.values()
    )
    db_session.commit()
    return IngestSummary(
        received=len(raw_items),
        accepted=len(valid),
        items_created=items_created,
        predictions_created=len(new_prediction_items),
        images_stored=stored,
        errors=sorted(errors, key=lambda e: e.index),
    )


def list_items(
    *,
    db_session: Session,
    project: Project,
    limit: int,
    offset: int,
    model: str | None = None,
    camera_id: str | None = None,
    is_night: bool | None = None,
    since: Any = None,
    until: Any = None,
) -> tuple[list[Item], int, dict[int, list[Prediction]]]:
    query = select(Item).where(Item.project_id == project.id)
    if camera_id is not None:
        query = query.where(Item.camera_id == camera_id)
    if is_night is not None:
        query = query.where(Item.is_night == is_night)
    if since is not None:
        query = query.where(Item.captured_at >= since)
    if until is not None:
        query = query.where(Item.captured_at < until)
    if model is not None:
        query = query.where(
            select(Prediction.id).where(Prediction.item_id == Item.id, Prediction.model == model).exists()
        )
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db_session.scalars(query.order_by(Item.id).limit(limit).offset(offset)))
    return items, total, predictions_for(db_session=db_session, item_ids=[i.id for i in items])


def predictions_for(*, db_session: Session, item_ids: list[int]) -> dict[int, list[Prediction]]:
    grouped: dict[int, list[Prediction]] = {i: [] for i in item_ids}
    if item_ids:
        rows = db_session.scalars(
            select(Prediction)
            .where(Prediction.item_id.in_(item_ids))
            .order_by(Prediction.model, Prediction.id)
        )
        for pred in rows:
            grouped[pred.item_id].append(pred)
    return grouped


def get_item(*, db_session: Session, project: Project, external_id: str) -> Item | None:
    return db_session.scalar(
        select(Item).where(Item.project_id == project.id, Item.external_id == external_id)
    )
