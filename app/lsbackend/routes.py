"""Hardcase as a Label Studio ML backend, one per Hardcase project, under /ls/{project}/ (the URL to give
Label Studio). Label Studio authenticates with HTTP Basic auth (password: a Hardcase key with read + ingest)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends

from app.auth import permissions as can
from app.core.errors import ApiError
from app.deps import BlobsDep, ProjectDep, SessionDep, SettingsDep
from app.jobs.routes import enqueue_with
from app.lsbackend import predict, service
from app.lsbackend.importer import import_label_studio_tasks
from app.lsbackend.regions import LabelingConfigError, parse_labeling_config
from app.lsbackend.schemas import (
    HealthRead,
    ImportRead,
    LabelStudioImport,
    PredictIn,
    PredictRead,
    SetupIn,
    SetupRead,
    VersionsRead,
    WebhookIn,
    WebhookRead,
)

router = APIRouter(prefix="/ls/{project}", tags=["label-studio"])
import_router = APIRouter(prefix="/api/v1/projects/{project}", tags=["label-studio"])
MODEL_CLASS = "Hardcase"
log = logging.getLogger("hardcase.lsbackend")


@router.get("/health", response_model=HealthRead, dependencies=[Depends(can.ls_read_project)])
def health(project: ProjectDep, session: SessionDep) -> HealthRead:
    version = predict.model_version_of(db_session=session, project=project)
    return HealthRead(status="UP", model_class=MODEL_CLASS, model_version=version)


@router.post("/setup", response_model=SetupRead, dependencies=[Depends(can.ls_read_project)])
def setup(body: SetupIn, project: ProjectDep, session: SessionDep) -> SetupRead:
    """Label Studio connects (and re-checks before predicting): the config is checked, the version named."""
    _config(body.schema_, "schema")
    return SetupRead(model_version=predict.model_version_of(db_session=session, project=project))


@router.get("/versions", response_model=VersionsRead, dependencies=[Depends(can.ls_read_project)])
def versions(project: ProjectDep, session: SessionDep) -> VersionsRead:
    return VersionsRead(versions=[predict.model_version_of(db_session=session, project=project)])


@router.post("/predict", response_model=PredictRead, dependencies=[Depends(can.ls_read_project)])
def predict_tasks(body: PredictIn, project: ProjectDep, session: SessionDep) -> PredictRead:
    """One prediction per task, in order: regions from the stored model outputs, `score` from the hardness."""
    config = _config(body.label_config, "label_config")
    results = predict.predict_tasks(db_session=session, project=project, tasks=body.tasks, config=config)
    return PredictRead(
        results=results, model_version=predict.model_version_of(db_session=session, project=project)
    )


@router.post("/webhook", response_model=WebhookRead, dependencies=[Depends(can.ls_ingest_into_project)])
def webhook(body: WebhookIn, project: ProjectDep, session: SessionDep, settings: SettingsDep) -> WebhookRead:
    """Answers at once (Label Studio waits about a second); a worker records the annotation or queues the job."""
    if body.action not in service.HANDLED_EVENTS:
        return WebhookRead(status="ignored", action=body.action)
    payload = body.model_dump(mode="json", exclude={"action"})
    return _hand_over(session, settings, project, body.action, payload)


@router.post("/train", response_model=WebhookRead, dependencies=[Depends(can.ls_ingest_into_project)])
def train(project: ProjectDep, session: SessionDep, settings: SettingsDep) -> WebhookRead:
    """Label Studio's older training call (without its webhook feature flag): the same as START_TRAINING."""
    return _hand_over(session, settings, project, "START_TRAINING", {})


def _hand_over(session, settings, project, action: str, payload: dict) -> WebhookRead:
    """To the cpu queue; with the broker down, done here instead (Label Studio never sends an event twice)."""
    try:
        service.enqueue_event(settings, project.name, action, payload)
    except Exception as exc:  # noqa: BLE001 - kombu raises several types; the work is done in the request
        log.warning("broker unavailable (%s): handling Label Studio %s in the request", exc, action)
        outcome = service.handle_event(
            db_session=session,
            project=project,
            action=action,
            payload=payload,
            settings=settings,
            enqueue=enqueue_with(settings),
        )
        return WebhookRead(status="handled", action=action, outcome=outcome)
    return WebhookRead(status="queued", action=action)


@import_router.post(
    "/label-studio/import",
    response_model=ImportRead,
    dependencies=[Depends(can.ingest_into_project)],
)
def import_export(
    body: LabelStudioImport, project: ProjectDep, session: SessionDep, settings: SettingsDep, blobs: BlobsDep
) -> ImportRead:
    """A Label Studio JSON export: items (images by URL), predictions and annotations with their authors."""
    summary = import_label_studio_tasks(
        db_session=session,
        project=project,
        tasks=body.tasks,
        blobs=blobs,
        settings=settings,
        config=_config(body.label_config, "label_config"),
    )
    return ImportRead(**vars(summary))


def _config(xml: str | None, field: str):
    try:
        return parse_labeling_config(xml)
    except LabelingConfigError as exc:
        raise ApiError(422, field, str(exc)) from exc
