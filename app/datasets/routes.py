"""Dataset endpoints: freeze a version, list/read versions, export one as a zip, grow the holdout."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from app.auth import permissions as can
from app.datasets import service
from app.datasets.models import DatasetVersion
from app.datasets.schemas import (
    DatasetFreeze,
    DatasetItemRead,
    DatasetVersionDetail,
    DatasetVersionRead,
    HoldoutGrow,
    HoldoutRead,
)
from app.deps import BlobsDep, IdPath, OffsetQuery, ProjectDep, SessionDep, SettingsDep
from app.jobs.service import as_utc
from app.projects.models import Project

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["datasets"])


def version_read(project: Project, version: DatasetVersion) -> DatasetVersionRead:
    return DatasetVersionRead.model_validate({**_columns(version), "project": project.name})


def _columns(version: DatasetVersion) -> dict:
    columns = {c.key: getattr(version, c.key) for c in DatasetVersion.__table__.columns}
    return {**columns, "created_at": as_utc(version.created_at)}


@router.post("/datasets", response_model=DatasetVersionRead, status_code=201)
def freeze(
    body: DatasetFreeze,
    user: can.ProjectReviewer,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
) -> DatasetVersionRead:
    version = service.freeze_dataset_version(
        db_session=session, project=project, freeze=body, user_id=user.id, settings=settings
    )
    session.commit()
    return version_read(project, version)


@router.get("/datasets", response_model=list[DatasetVersionRead], dependencies=[Depends(can.read_project)])
def list_versions(project: ProjectDep, session: SessionDep) -> list[DatasetVersionRead]:
    return [version_read(project, v) for v in service.list_versions(db_session=session, project=project)]


@router.get(
    "/datasets/{version}",
    response_model=DatasetVersionDetail,
    dependencies=[Depends(can.read_dataset_version)],
)
def read_version(
    version: IdPath,
    project: ProjectDep,
    session: SessionDep,
    split: Literal["train", "val", "holdout"] | None = Query(None, description="only this split's items"),
    offset: OffsetQuery = 0,
    limit: int = Query(
        10_000, ge=0, le=100_000, description="items per page (stats cover the whole version)"
    ),
) -> DatasetVersionDetail:
    from ml.exports import EXPORT_FORMATS

    found = service.get_version(db_session=session, project=project, version=version)
    items = [
        DatasetItemRead(
            item_id=row.item_id,
            external_id=item.external_id,
            label=row.label,
            label_name=service.class_name(project, row.label),
            boxes=row.boxes,
            split=row.split,
        )
        for row, item in service.version_items(
            db_session=session, version=found, split=split, offset=offset, limit=limit
        )
    ]
    return DatasetVersionDetail(
        **version_read(project, found).model_dump(), items=items, export_formats=list(EXPORT_FORMATS)
    )


@router.get(
    "/datasets/{version}/export",
    response_class=FileResponse,
    dependencies=[Depends(can.read_dataset_version)],
    responses={409: {"description": "an item's image is missing from the blob store"}},
)
def export_version(
    version: IdPath,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    format: str = Query(
        "jsonl", description="jsonl, parquet, imagefolder, yolo, coco, label_studio, dpo_pairs"
    ),
) -> FileResponse:
    found = service.get_version(db_session=session, project=project, version=version)
    archive = service.export_archive(
        db_session=session, project=project, version=found, fmt=format, settings=settings, blobs=blobs
    )
    return FileResponse(
        archive, media_type="application/zip", filename=f"{project.name}-v{found.version}-{format}.zip"
    )


@router.get("/holdout", response_model=HoldoutRead, dependencies=[Depends(can.read_project)])
def read_holdout(project: ProjectDep, session: SessionDep) -> HoldoutRead:
    classes = service.holdout_summary(db_session=session, project=project)
    return HoldoutRead(project=project.name, size=sum(classes.values()), classes=classes)


@router.post("/holdout/grow", response_model=HoldoutRead)
def grow_holdout(
    body: HoldoutGrow, user: can.ProjectAdmin, project: ProjectDep, session: SessionDep
) -> HoldoutRead:
    added = service.grow_holdout(db_session=session, project=project, fraction=body.fraction, user_id=user.id)
    session.commit()
    classes = service.holdout_summary(db_session=session, project=project)
    return HoldoutRead(project=project.name, size=sum(classes.values()), added=len(added), classes=classes)
