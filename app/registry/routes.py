"""Registry endpoints: the comparison table, promote / roll back (admins), production for the cascade."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from app.auth import permissions as can
from app.core.config import Settings
from app.core.errors import ApiError
from app.deps import IdPath, ProjectDep, SessionDep, SettingsDep
from app.registry import service
from app.registry.schemas import (
    ModelVersionRead,
    ProductionModel,
    PromoteBody,
    PromoteRequest,
    SliceRouteRead,
    StageChangeRead,
)
from ml.slices import slice_label

router = APIRouter(prefix="/api/v1/projects/{project}/models", tags=["registry"])


@router.get("", response_model=list[ModelVersionRead], dependencies=[Depends(can.read_project)])
def list_models(project: ProjectDep, session: SessionDep, settings: SettingsDep) -> list[dict]:
    return service.comparison_rows(
        db_session=session, project=project, min_holdout_items=settings.min_holdout_items
    )


@router.get("/production", response_model=ProductionModel, dependencies=[Depends(can.pull_production_model)])
def read_production(project: ProjectDep, session: SessionDep) -> ProductionModel:
    model = service.production_model(db_session=session, project=project)
    if model is None:
        raise ApiError(404, "stage", f"project {project.name!r} has no production model yet")
    return ProductionModel(
        project=project.name,
        name=model.name,
        version=model.version,
        kind=model.kind,
        threshold=model.threshold,
        metrics=model.metrics,
        artifact_url=service.artifact_url(project, model),
        artifact_sha256=model.artifact_sha256,
        artifact_bytes=model.artifact_bytes,
        files=model.files,
        promoted_at=service.as_utc(model.promoted_at),
        routes=[
            SliceRouteRead(
                slice=route.spec,
                label=slice_label(route.spec),
                name=specialist.name,
                version=specialist.version,
                kind=specialist.kind,
                threshold=specialist.threshold,
                artifact_url=service.artifact_url(project, specialist),
                artifact_sha256=specialist.artifact_sha256,
                artifact_bytes=specialist.artifact_bytes,
                files=specialist.files,
                promoted_at=service.as_utc(route.promoted_at),
            )
            for route, specialist in service.slice_routes(db_session=session, project=project)
        ],
    )


@router.get("/history", response_model=list[StageChangeRead], dependencies=[Depends(can.read_project)])
def read_history(project: ProjectDep, session: SessionDep) -> list[dict]:
    return service.stage_history(db_session=session, project=project)


@router.post("/rollback", response_model=ModelVersionRead)
def rollback_production(
    user: can.ProjectAdmin,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    body: PromoteBody | None = None,
) -> dict:
    model = service.rollback(
        db_session=session, project=project, user_id=user.id, note=(body or PromoteBody()).note
    )
    session.commit()
    return _row(session, project, model.version, settings)


@router.get("/{version}", response_model=ModelVersionRead, dependencies=[Depends(can.read_model_version)])
def read_model(version: IdPath, project: ProjectDep, session: SessionDep, settings: SettingsDep) -> dict:
    return _row(session, project, version, settings)


@router.post("/{version}/promote", response_model=ModelVersionRead)
def promote_model(
    version: IdPath,
    user: can.ModelVersionAdmin,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    body: PromoteRequest | None = None,
) -> dict:
    body = body or PromoteRequest()
    service.promote(
        db_session=session,
        project=project,
        version=version,
        user_id=user.id,
        min_holdout_items=settings.min_holdout_items,
        note=body.note,
        force=body.force,
        reason=body.reason,
    )
    session.commit()
    return _row(session, project, version, settings)


@router.post("/{version}/rollback", response_model=ModelVersionRead)
def rollback_to(
    version: IdPath,
    user: can.ModelVersionAdmin,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    body: PromoteBody | None = None,
) -> dict:
    service.rollback(
        db_session=session,
        project=project,
        user_id=user.id,
        to_version=version,
        note=(body or PromoteBody()).note,
    )
    session.commit()
    return _row(session, project, version, settings)


@router.post("/{version}/withdraw-slice", response_model=ModelVersionRead)
def withdraw_slice(
    version: IdPath,
    user: can.ModelVersionAdmin,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    body: PromoteBody | None = None,
) -> dict:
    """Stops routing a slice to this specialist: the production generalist serves it again."""
    service.withdraw_slice(
        db_session=session,
        project=project,
        version=version,
        user_id=user.id,
        note=(body or PromoteBody()).note,
    )
    session.commit()
    return _row(session, project, version, settings)


@router.get(
    "/{version}/artifact",
    response_class=FileResponse,
    dependencies=[Depends(can.download_artifact)],
    responses={410: {"description": "the artifact file is gone from the data dir"}},
)
def download_artifact(version: IdPath, project: ProjectDep, session: SessionDep) -> FileResponse:
    model = service.get_model(db_session=session, project=project, version=version)
    archive = Path(model.artifact_archive)
    if not archive.exists():
        raise ApiError(410, "artifact", f"the artifact of v{version} is gone from {archive.parent}")
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=f"{model.name}-v{model.version}.zip",
        headers={"X-Artifact-SHA256": model.artifact_sha256},
    )


def _row(session: SessionDep, project: ProjectDep, version: int, settings: Settings) -> dict:
    rows = service.comparison_rows(
        db_session=session, project=project, version=version, min_holdout_items=settings.min_holdout_items
    )
    if not rows:
        raise ApiError(404, "version", f"project {project.name!r} has no model version {version}")
    return rows[0]
