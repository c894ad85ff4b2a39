"""Ingestion and item read endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from app.auth import permissions as can
from app.core.errors import ApiError
from app.deps import BlobsDep, LimitQuery, OffsetQuery, ProjectDep, SessionDep, SettingsDep
from app.ingest import references, service
from app.ingest.schemas import IngestSummary, ItemPage, ItemRead, PredictionRead, ReferenceStatus

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["ingest"])
# GET /items/{external_id:path} matches any tail, so app.main includes this router after the routes of
# /items/{item_id}/... (image, history): an external id may hold '/' (cam7/2026-11-25T08:14:03Z).
items_router = APIRouter(prefix="/api/v1/projects/{project}", tags=["ingest"])


async def _read_batch(request: Request, max_bytes: int) -> tuple[bytes, dict[str, bytes]]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=max_bytes)
        files = {
            key: await value.read() for key, value in form.multi_items() if isinstance(value, UploadFile)
        }
        raw = form.get("batch")
        if not isinstance(raw, str):
            raise ApiError(422, "batch", "multipart uploads need a 'batch' form field holding the JSON batch")
        return raw.encode(), files
    return await request.body(), {}


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
    return _within_limit(items, limit)


def _within_limit(items: list[Any], limit: int) -> list[Any]:
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
    body, files = await _read_batch(request, settings.max_image_bytes)
    # One validating parse of the whole body; only a batch with a problem is parsed again item by item,
    # which keeps its good items and names each bad one.
    items = service.parse_batch_json(body, max_metadata_bytes=settings.max_metadata_bytes)
    if items is None:
        items = _items_of(_parse_json(body), settings.max_batch_items)
    return UploadedBatch(raw_items=_within_limit(items, settings.max_batch_items), files=files)


UploadedBatchDep = Annotated[UploadedBatch, Depends(read_uploaded_batch)]


@router.post(
    "/predictions",
    response_model=IngestSummary,
    status_code=201,
    responses={
        207: {"model": IngestSummary, "description": "some items were rejected; the rest were stored"},
        422: {"description": "every item was rejected, or the body is not a batch"},
    },
    dependencies=[Depends(can.ingest_into_project)],
)
def ingest_predictions(
    batch: UploadedBatchDep,
    project: ProjectDep,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
) -> Any:
    """Idempotent batch upload of items and their model predictions (JSON or multipart).

    Parameter order matters: the access rule (declared on the route, so it runs first) commits, the body is read while no transaction is open, and the
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


@router.get("/images/references", response_model=ReferenceStatus, dependencies=[Depends(can.read_project)])
def reference_status(project: ProjectDep, session: SessionDep, settings: SettingsDep) -> ReferenceStatus:
    """How many referenced images workers have fetched, how many failed (and why), how many are pending."""
    status = references.reference_status(db_session=session, project=project, settings=settings)
    return ReferenceStatus.model_validate(status)


@router.get("/items", response_model=ItemPage, dependencies=[Depends(can.read_project)])
def list_items(
    project: ProjectDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
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


@items_router.get(
    "/items/{external_id:path}", response_model=ItemRead, dependencies=[Depends(can.read_item_by_external_id)]
)
def read_item(external_id: str, project: ProjectDep, session: SessionDep) -> ItemRead:
    item = service.get_item(db_session=session, project=project, external_id=external_id)
    if item is None:
        raise ApiError(404, "external_id", f"no item {external_id!r} in project {project.name!r}")
    return _item_read(item, service.predictions_for(db_session=session, item_ids=[item.id])[item.id])
