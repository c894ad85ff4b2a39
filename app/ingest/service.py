"""Batch ingestion of cascade predictions: idempotent by (project, external_id) and (item, model, version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.blobs import BlobStore, blob_uri
from app.core.bulk import insert_new_rows, refresh_statistics
from app.core.config import Settings
from app.ingest.decode import ItemFast, MetadataFast, decode_batch
from app.ingest.images import ImageRejected, check_image, decode_base64
from app.ingest.models import Item, Prediction
from app.ingest.references import queue_fetch
from app.ingest.remote import is_remote_reference
from app.ingest.schemas import IngestSummary, ItemError, ItemIn, ItemMetadata
from app.metrics import events as metrics
from app.projects.models import Project
from app.queue.ranking import PredictionRows, rescore_after_ingest

# Tables whose statistics the next batch's plans (and the queue's) depend on.
INGEST_TABLES = ("items", "predictions", "hardness")


@dataclass
class _ValidItem:
    index: int
    item: ItemIn | ItemFast
    image_fields: dict[str, Any] = field(default_factory=dict)


class _Batch(BaseModel):
    items: list[ItemIn]


def parse_batch_json(body: bytes, *, max_metadata_bytes: int) -> list[ItemIn] | list[ItemFast] | None:
    """Parses and validates a whole JSON batch in one pass: msgspec first (the fast path), then pydantic-core
    for what msgspec does not take as it is (lax coercions such as "0.5" for a number).

    None when anything in it is not valid: the caller then parses it item by item, which keeps the good items
    and names each bad one's first error.
    """
    fast = decode_batch(body, max_metadata_bytes=max_metadata_bytes)
    if fast is not None:
        return fast
    try:
        return _Batch.model_validate_json(body, context={"max_metadata_bytes": max_metadata_bytes}).items
    except ValidationError:
        return None


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
            item = (
                raw
                if isinstance(raw, ItemFast)  # validated by `decode_batch`
                else ItemIn.model_validate(raw, context={"max_metadata_bytes": max_metadata_bytes})
            )
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


_METADATA_COLUMNS = ("captured_at", "camera_id", "is_night", "lat", "lon")
_IMAGE_COLUMNS = ("image_uri", "sha256", "width", "height", "phash")


def _free_metadata(meta: ItemMetadata | MetadataFast) -> dict[str, Any]:
    """Tags and whatever else the cascade sent (stored as the item's `meta`)."""
    if isinstance(meta, MetadataFast):  # decoded from JSON: already JSON-able
        return {"tags": meta.tags, **meta.extra}
    extra = meta.__pydantic_extra__
    return {"tags": meta.tags, **to_jsonable_python(extra)} if extra else {"tags": meta.tags}


def _item_columns(entries: list[_ValidItem]) -> dict[str, list[Any]]:
    metas = [e.item.metadata for e in entries]
    columns: dict[str, list[Any]] = {"external_id": [e.item.external_id for e in entries]}
    columns |= {name: [e.image_fields.get(name) for e in entries] for name in _IMAGE_COLUMNS}
    columns |= {name: [getattr(m, name) for m in metas] for name in _METADATA_COLUMNS}
    columns["meta"] = [_free_metadata(m) for m in metas]
    return columns


def upsert_items(
    session: Session, project_id: int, entries: list[_ValidItem]
) -> tuple[dict[str, int], set[int]]:
    """Inserts new items, keeps existing ones; returns external_id -> item id and the ids created now.

    The new ids come back from the INSERT itself; only items that already existed are looked up.
    """
    if not entries:
        return {}, set()
    created = insert_new_rows(
        session,
        Item.__table__,
        _item_columns(entries),
        constants={"project_id": project_id},
        conflict=["project_id", "external_id"],
        returning=["external_id", "id"],
    )
    ids = dict(created)
    existing = [e.item.external_id for e in entries if e.item.external_id not in ids]
    if existing:
        ids |= dict(
            session.execute(
                select(Item.external_id, Item.id).where(
                    Item.project_id == project_id, Item.external_id.in_(existing)
                )
            )
            .tuples()
            .all()
        )
    return ids, {item_id for _, item_id in created}


def _prediction_columns(entries: list[_ValidItem], item_ids: dict[str, int]) -> dict[str, list[Any]]:
    """The batch's predictions column-wise, the first of each (item, model, version) only (as the table keeps)."""
    columns: dict[str, list[Any]] = {name: [] for name in _PREDICTION_COLUMNS}
    seen: set[tuple[int, str, str]] = set()
    for entry in entries:
        item_id = item_ids[entry.item.external_id]
        for p in entry.item.predictions:
            key = (item_id, p.model, p.model_version)
            if key in seen:
                continue
            seen.add(key)
            for name, value in zip(
                _PREDICTION_COLUMNS,
                (item_id, p.model, p.model_version, p.score, p.probs, p.label, p.boxes, p.embedding, p.extra),
                strict=True,
            ):
                columns[name].append(value)
    return columns


_PREDICTION_COLUMNS = (
    "item_id",
    "model",
    "model_version",
    "score",
    "probs",
    "label",
    "boxes",
    "embedding",
    "extra",
)


def insert_predictions(session: Session, project_id: int, columns: dict[str, list[Any]]) -> list[int]:
    """Adds predictions not seen before; returns one item id per new prediction."""
    inserted = insert_new_rows(
        session,
        Prediction.__table__,
        columns,
        constants={"project_id": project_id},
        conflict=["item_id", "model", "model_version"],
        returning=["item_id"],
    )
    return [item_id for (item_id,) in inserted]


def _created_predictions(columns: dict[str, list[Any]], created: set[int]) -> PredictionRows:
    """The complete predictions of the items created by this batch, from memory, in insertion order."""
    keep = [i for i, item_id in enumerate(columns["item_id"]) if item_id in created]
    pick = [columns[name] for name in ("item_id", "model", "score", "probs", "boxes")]
    return PredictionRows(*([column[i] for i in keep] for column in pick))


def _new_references(entries: list[_ValidItem], item_ids: dict[str, int], created: set[int]) -> list[int]:
    """Items created now whose image is a reference a worker can fetch (the request itself never fetches)."""
    ids = (
        item_ids[e.item.external_id] for e in entries if is_remote_reference(e.image_fields.get("image_uri"))
    )
    return sorted(i for i in ids if i in created)


@metrics.counts_ingest
def ingest_batch(
    *,
    db_session: Session,
    project: Project,
    raw_items: list[Any],
    files: Mapping[str, bytes],
    blobs: BlobStore,
    settings: Settings,
) -> IngestSummary:
    """Stores a batch. `raw_items` are dicts, or items `parse_batch_json` already validated."""
    valid, errors = validate_items(raw_items, max_metadata_bytes=settings.max_metadata_bytes)
    valid, image_errors, stored = store_images(valid, files, blobs=blobs, settings=settings)
    errors.extend(image_errors)
    item_ids, created = upsert_items(db_session, project.id, valid)
    predictions = _prediction_columns(valid, item_ids)
    new_prediction_items = insert_predictions(db_session, project.id, predictions)
    # Every ingest path (API, CLI demo, workers) goes through here, so the queue stays ranked.
    rescore_after_ingest(
        db_session=db_session,
        project=project,
        changed_item_ids=set(new_prediction_items),
        batch_item_ids=item_ids.values(),
        created_item_ids=created,
        created_predictions=_created_predictions(predictions, created),
    )
    if settings.remote_prefetch:
        queue_fetch(
            db_session=db_session,
            settings=settings,
            project_id=project.id,
            item_ids=_new_references(valid, item_ids, created),
        )
    db_session.commit()
    refresh_statistics(db_session, INGEST_TABLES)
    return IngestSummary(
        received=len(raw_items),
        accepted=len(valid),
        items_created=len(created),
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
