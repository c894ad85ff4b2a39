"""Queue endpoints: lease the next hard item, release/skip it, progress, the item image, ranking settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Form, Response
from fastapi.responses import FileResponse

from app.auth import permissions as can
from app.core.blobs import stored_sha
from app.core.errors import ApiError
from app.deps import BlobsDep, IdPath, ProjectDep, SessionDep, SettingsDep
from app.ingest.models import Item
from app.ingest.proxy import proxied_image
from app.ingest.remote import is_remote_reference
from app.labels import service as labels_service
from app.projects.schemas import ProjectRead, ProjectUpdate
from app.queue import service
from app.queue.flows import update_project_ranking
from app.queue.schemas import (
    LeasedItem,
    LeaseIds,
    LeaseRenewal,
    LeasesReleased,
    NextRequest,
    Progress,
    ProjectUpdated,
    QueueAction,
)

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["queue"])


@router.post(
    "/queue/next",
    response_model=LeasedItem,
    responses={204: {"description": "nothing left for this user in the pool"}},
)
def next_item(
    user: can.ProjectLabeler,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[NextRequest | None, Body()] = None,
) -> LeasedItem | Response:
    """Leases the hardest pending item to the caller for `lease_minutes` (a caller may hold several).

    The label page sends `holding` (the items it has open): the caller's other leases, left by closed pages,
    are served again first."""
    leased = service.lease_and_describe(
        db_session=session,
        project=project,
        user=user,
        lease_minutes=settings.lease_minutes,
        holding=None if body is None else body.holding,
    )
    if leased is None:
        return Response(status_code=204)
    lease, payload = leased
    return LeasedItem.model_validate({"item": payload, "lease_expires_at": lease.expires_at})


@router.post("/queue/renew", response_model=LeaseRenewal)
def renew(
    body: LeaseIds, user: can.ProjectLabeler, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> LeaseRenewal:
    """The open label page's heartbeat: extends the caller's leases; `lost` lists those no longer held."""
    held, expires_at = service.renew_leases(
        db_session=session,
        project=project,
        user=user,
        item_ids=body.item_ids,
        lease_minutes=settings.lease_minutes,
    )
    lost = sorted(set(body.item_ids) - set(held))
    return LeaseRenewal(renewed=held, lost=lost, lease_expires_at=expires_at)


@router.post("/queue/release", response_model=LeasesReleased)
def release_many(
    user: can.ProjectLabeler,
    project: ProjectDep,
    session: SessionDep,
    item_ids: Annotated[str, Form(max_length=20_000, description="comma-separated item ids")],
) -> LeasesReleased:
    """A closing page gives its leases back (a form post, so `navigator.sendBeacon` can send it with the
    CSRF token as the `csrf_token` field); ids the caller does not hold are ignored."""
    try:
        ids = [int(part) for part in item_ids.split(",") if part.strip()]
    except ValueError as exc:
        raise ApiError(422, "item_ids", "comma-separated integer item ids expected") from exc
    released = service.release_items(db_session=session, project=project, user=user, item_ids=ids)
    return LeasesReleased(released=released)


@router.post("/queue/{item_id}/release", response_model=QueueAction)
def release(item_id: IdPath, user: can.ItemLabeler, project: ProjectDep, session: SessionDep) -> QueueAction:
    row = service.release_item(db_session=session, project=project, user=user, item_id=item_id)
    return QueueAction(item_id=item_id, status=row.status)


@router.post("/queue/{item_id}/skip", response_model=QueueAction)
def skip(item_id: IdPath, user: can.ItemLabeler, project: ProjectDep, session: SessionDep) -> QueueAction:
    row = service.skip_item(db_session=session, project=project, user=user, item_id=item_id)
    return QueueAction(item_id=item_id, status=row.status)


@router.get("/progress", response_model=Progress)
def progress(user: can.ProjectLabeler, project: ProjectDep, session: SessionDep) -> Progress:
    return Progress.model_validate(labels_service.progress(db_session=session, project=project, user=user))


IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def media_type_of(head: bytes) -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next(
        (kind for magic, kind in IMAGE_SIGNATURES if head.startswith(magic)), "application/octet-stream"
    )


@router.get(
    "/items/{item_id}/image",
    response_class=FileResponse,
    dependencies=[Depends(can.view_item_image)],
    responses={
        200: {"content": {"image/*": {}}, "description": "the image bytes"},
        403: {
            "description": "also: settings forbid fetching the item's reference (allowlist, private address)"
        },
        502: {"description": "the item's referenced image could not be fetched; `errors` says why"},
    },
)
def item_image(
    item_id: IdPath, project: ProjectDep, session: SessionDep, blobs: BlobsDep, settings: SettingsDep
) -> Response:
    """The stored image, or the item's referenced (s3://, gs://, http(s)://) image through a caching proxy."""
    item = session.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise ApiError(404, "item_id", f"no item {item_id} in project {project.name!r}")
    sha = stored_sha(item.image_uri, item.sha256)
    if sha is not None and blobs.exists(sha):
        return _image_file(blobs.path_for(sha))
    if not is_remote_reference(item.image_uri):
        reference = f" (it references {item.image_uri})" if item.image_uri else ""
        raise ApiError(404, "image", f"item {item_id} has no stored or fetchable image{reference}")
    found = proxied_image(item.image_uri or "", settings)
    if isinstance(found, bytes):
        return Response(found, media_type=media_type_of(found[:12]), headers=IMAGE_CACHE_HEADERS)
    return _image_file(found)


IMAGE_CACHE_HEADERS = {"Cache-Control": "private, max-age=86400, immutable"}


def _image_file(path) -> FileResponse:
    with path.open("rb") as fh:
        head = fh.read(12)
    return FileResponse(path, media_type=media_type_of(head), headers=IMAGE_CACHE_HEADERS)


@router.patch("", response_model=ProjectUpdated, dependencies=[Depends(can.admin_project)])
def update_project(
    body: ProjectUpdate, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> ProjectUpdated:
    """Admins change threshold, strategy, weights or overlap; a ranking change re-ranks the whole project."""
    rerank = update_project_ranking(db_session=session, project=project, project_in=body, settings=settings)
    return ProjectUpdated(**ProjectRead.model_validate(project).model_dump(), rerank=rerank)
