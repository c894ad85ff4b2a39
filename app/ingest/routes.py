"""Ingestion and item read endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from app.core.errors import ApiError
from app.deps import BlobsDep, IngestKey, ProjectDep, ReadKey, SessionDep, SettingsDep
from app.ingest import service
from app.ingest.schemas import IngestSummary, ItemPage, ItemRead, PredictionRead

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["ingest"])


async def _read_batch(request: Request, max_bytes: int) -> tuple[Any, dict[str, bytes]]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=max_bytes)
        files = {
            key: await value.read() for key, value in form.multi_items() if isinstance(value, UploadFile)
        }
        raw = form.get("batch")
        if not isinstance(raw, str):
            raise ApiError(422, "batch", "multipart uploads need a 'batch' form field holding the JSON batch")
        return _parse_json(raw.encode()), files
    return _parse_json(await request.body()), {}


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body", f"malformed JSON: {exc}") from exc


def _items_of(payload: Any, limit: int) -> list[Any]:
    if not isinstance(payload, dict) or "items" not in payload:
        raise ApiError(422, "items", "the body must be an object with an 'items' list")
    items = payload["items"]
    if not isinstance(items, list):
        raise ApiError(422, "items", "'items' must be a list")
    if not items:
        raise ApiError(422, "items", "'items' is empty")
    if len(items) > limit:
        raise ApiError(413, "items", f"batch of {len(items)} items exceeds the limit of {limit}; split it")
    return items


@dataclass
class UploadedBatch:
    raw_items: list[Any]
    files: dict[str, bytes]


async def read_uploaded_batch(request: Request, settings: SettingsDep) -> UploadedBatch:
    payload, files = await _read_batch(request, settings.max_image_bytes)
    return UploadedBatch(raw_items=_items_of(payload, settings.max_batch_items), files=files)


UploadedBatchDep = Annotated[UploadedBatch, Depends(read_uploaded_batch)]


@router.post(
    "/predictions",
    response_model=IngestSummary,
    status_code=201,
    responses={
        207: {"description": "some items were rejected; the rest were stored"},
        422: {"description": "every item was rejected, or the body is not a batch"},
    },
)
def ingest_predictions(
    _key: IngestKey,
    batch: UploadedBatchDep,
    project: ProjectDep,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
) -> Any:
    """Idempotent batch upload of items and their model predictions (JSON or multipart).

    Parameter order matters: the key check commits, the body is read while no transaction is open, and the
    handler is sync, so it runs in the threadpool and never holds SQLite's write lock across an await.
    """
    summary = service.ingest_batch(
        db_session=session,
        project=project,
        raw_items=batch.raw_items,
        files=batch.files,
        blobs=blobs,
        settings=settings,
    )
    status = 201 if not summary.errors else (207 if summary.accepted else 422)
    body = summary.model_dump(mode="json")
    if status == 422:
        body["detail"] = "; ".join(f"{e.field}: {e.message}" for e in summary.errors[:5])
    return JSONResponse(body, status_code=status)


def _item_read(item, predictions) -> ItemRead:
    read = ItemRead.model_validate(item)
    read.predictions = [PredictionRead.model_validate(p) for p in predictions]
    return read


@router.get("/items", response_model=ItemPage)
def list_items(
    project: ProjectDep,
    session: SessionDep,
    _key: ReadKey,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    model: str | None = None,
    camera_id: str | None = None,
    is_night: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ItemPage:
    items, total, preds = service.list_items(
        db_session=session,
        project=project,
        limit=limit,
        offset=offset,
        model=model,
        camera_id=camera_id,
        is_night=is_night,
        since=since,
        until=until,
    )
    return ItemPage(
        items=[_item_read(i, preds[i.id]) for i in items], total=total, limit=limit, offset=offset
    )


@router.get("/items/{external_id}", response_model=ItemRead)
def read_item(external_id: str, project: ProjectDep, session: SessionDep, _key: ReadKey) -> ItemRead:
    item = service.get_item(db_session=session, project=project, external_id=external_id)
    if item is None:
        raise ApiError(404, "external_id", f"no item {external_id!r} in project {project.name!r}")
    return _item_read(item, service.predictions_for(db_session=session, item_ids=[item.id])[item.id])
