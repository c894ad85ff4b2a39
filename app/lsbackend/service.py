"""Label Studio annotations become Hardcase annotations (append-only, attributed to an 'ls:<user id>' account),
and Label Studio's START_TRAINING freezes a dataset version and queues the project's default training job."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.users import create_user, get_by_username
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.datasets.schemas import DatasetFreeze
from app.datasets.service import freeze_dataset_version
from app.ingest.models import Item
from app.jobs import service as jobs
from app.jobs.models import Job
from app.jobs.schemas import JobCreate
from app.labels.models import Annotation
from app.labels.service import class_count, refresh_item_status, validate_label
from app.lsbackend.models import LabelStudioAnnotation
from app.lsbackend.predict import find_items, item_of
from app.lsbackend.regions import (
    LabelingConfig,
    LabelingConfigError,
    RegionError,
    match_name,
    parse_labeling_config,
    read_result,
    task_key,
)
from app.metrics import events as metrics
from app.projects.models import Project
from app.queue.service import hardness_of

log = logging.getLogger("hardcase.lsbackend")

USER_PREFIX = "ls:"
UNKNOWN_USER = "unknown"


class SkippedAnnotation(ValueError):
    """A Label Studio annotation Hardcase cannot take (unknown task, unknown choice, no answer): logged, skipped."""


# --- who ----------------------------------------------------------------------------------------------------


def ls_user_name(completed_by: Any) -> str:
    """'ls:<Label Studio user id>' (exports and webhooks both carry the id; a dict carries it as 'id')."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return f"{USER_PREFIX}{completed_by}"
    if isinstance(completed_by, str) and completed_by.strip():
        return f"{USER_PREFIX}{completed_by.strip()[:90]}"
    return f"{USER_PREFIX}{UNKNOWN_USER}"


def ls_account(*, db_session: Session, username: str) -> User:
    """The attribution-only account of a Label Studio annotator: inactive, so nobody can log in as it."""
    user = get_by_username(db_session=db_session, username=username)
    if user is None:
        user = create_user(db_session=db_session, username=username, password=secrets.token_urlsafe(24))
        user.is_active = False
        db_session.flush()
    return user


# --- what ---------------------------------------------------------------------------------------------------


def answer_of(project: Project, result: Any) -> tuple[int, list[list[Any]]]:
    """A Label Studio `result` as a Hardcase (label, boxes), validated like every Hardcase answer."""
    try:
        regions = read_result(result)
    except RegionError as exc:
        raise SkippedAnnotation(str(exc)) from exc
    label = None
    if regions.choices and project.kind != "detection":
        label = match_name(list(project.classes)[: class_count(project)], regions.choices[0])
        if label is None:
            raise SkippedAnnotation(
                f"choice {regions.choices[0]!r} is none of the project's classes {list(project.classes)}"
            )
    elif project.kind == "binary" and regions.boxes:
        label = 1  # boxes drawn and no choice made: the answer is yes
    elif project.kind != "detection":
        raise SkippedAnnotation("the annotation chooses no class")
    try:
        return validate_label(project, label, regions.boxes)
    except ApiError as exc:
        raise SkippedAnnotation(f"{exc.field}: {exc.message}") from exc


def duration_ms_of(annotation: dict) -> int | None:
    lead_time = annotation.get("lead_time")
    if isinstance(lead_time, int | float) and not isinstance(lead_time, bool) and 0 <= lead_time < 10**6:
        return int(lead_time * 1000)
    return None


# --- recording ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    outcome: str  # created | superseded | unchanged | retracted | absent
    annotation_id: int | None = None


def _link(db_session: Session, project: Project, ls_annotation_id: int) -> LabelStudioAnnotation | None:
    return db_session.scalar(
        select(LabelStudioAnnotation).where(
            LabelStudioAnnotation.project_id == project.id,
            LabelStudioAnnotation.ls_annotation_id == ls_annotation_id,
        )
    )


@metrics.counts_annotation
def _append(
    db_session: Session,
    *,
    project: Project,
    item_id: int,
    user: User,
    answer: tuple[int, list],
    duration_ms: int | None,
    supersedes: Annotation | None,
    created_at: datetime | None,
) -> Annotation:
    if supersedes is not None:
        supersedes.state, supersedes.state_changed_at = "superseded", utcnow()
    annotation = Annotation(
        item_id=item_id,
        project_id=project.id,
        annotator_id=user.id,
        label=answer[0],
        boxes=answer[1],
        duration_ms=duration_ms,
        supersedes_id=supersedes.id if supersedes is not None else None,
        created_at=created_at or utcnow(),
    )
    db_session.add(annotation)
    db_session.flush()
    return annotation


def record_answer(
    *,
    db_session: Session,
    project: Project,
    item: Item,
    ls_annotation_id: int | None,
    username: str,
    answer: tuple[int, list],
    duration_ms: int | None = None,
    created_at: datetime | None = None,
) -> Recorded:
    """The Label Studio annotation's answer becomes current: a new annotation, or one superseding the answer
    it held before (kept in history); the same answer again changes nothing, so a redelivery is harmless.
    Without a Label Studio id (a hand-made export) the user's own current answer on the item is the one."""
    user = ls_account(db_session=db_session, username=username)
    link = _link(db_session, project, ls_annotation_id) if ls_annotation_id is not None else None
    if ls_annotation_id is None:
        previous = _current_answer_of(db_session, user, item)
    else:
        previous = db_session.get(Annotation, link.annotation_id) if link and link.annotation_id else None
    if previous is not None and (previous.state != "current" or previous.item_id != item.id):
        previous = None
    if previous is not None and (previous.label, previous.boxes) == answer:
        return Recorded("unchanged", previous.id)
    hardness = hardness_of(db_session=db_session, project=project, item_id=item.id, lock=True)
    annotation = _append(
        db_session,
        project=project,
        item_id=item.id,
        user=user,
        answer=answer,
        duration_ms=duration_ms,
        supersedes=previous,
        created_at=created_at,
    )
    if ls_annotation_id is not None:
        if link is None:
            link = LabelStudioAnnotation(project_id=project.id, ls_annotation_id=ls_annotation_id)
            db_session.add(link)
        link.item_id, link.annotation_id, link.updated_at = item.id, annotation.id, utcnow()
    refresh_item_status(db_session, project, hardness)
    return Recorded("superseded" if previous is not None else "created", annotation.id)


def _current_answer_of(db_session: Session, user: User, item: Item) -> Annotation | None:
    return db_session.scalar(
        select(Annotation)
        .where(
            Annotation.item_id == item.id, Annotation.annotator_id == user.id, Annotation.state == "current"
        )
        .order_by(Annotation.id.desc())
        .limit(1)
    )


def retract_answer(*, db_session: Session, project: Project, ls_annotation_id: int) -> Recorded:
    """Deleted (or skipped) in Label Studio: the answer is retracted, its history kept."""
    link = _link(db_session, project, ls_annotation_id)
    current = db_session.get(Annotation, link.annotation_id) if link and link.annotation_id else None
    if current is None or current.state != "current":
        return Recorded("absent")
    current.state, current.state_changed_at = "retracted", utcnow()
    db_session.flush()
    refresh_item_status(
        db_session,
        project,
        hardness_of(db_session=db_session, project=project, item_id=current.item_id, lock=True),
    )
    return Recorded("retracted", current.id)


def record_ls_annotation(*, db_session: Session, project: Project, item: Item, annotation: dict) -> Recorded:
    """One annotation object as Label Studio sends or exports it ({id, completed_by, result, was_cancelled})."""
    ls_id = annotation.get("id")
    if not isinstance(ls_id, int) or isinstance(ls_id, bool):
        ls_id = None
    if annotation.get("was_cancelled"):  # skipped in Label Studio: no answer
        if ls_id is None:
            return Recorded("absent")
        return retract_answer(db_session=db_session, project=project, ls_annotation_id=ls_id)
    return record_answer(
        db_session=db_session,
        project=project,
        item=item,
        ls_annotation_id=ls_id,
        username=ls_user_name(annotation.get("completed_by")),
        answer=answer_of(project, annotation.get("result")),
        duration_ms=duration_ms_of(annotation),
        created_at=created_at_of(annotation),
    )


def created_at_of(annotation: dict) -> datetime | None:
    """When it was answered in Label Studio (kept on import, so the history keeps its order and pace)."""
    value = annotation.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- webhook events -----------------------------------------------------------------------------------------

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_EVENTS = ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED")
TRAIN_EVENTS = ("START_TRAINING",)
HANDLED_EVENTS = ANNOTATION_EVENTS + DELETE_EVENTS + TRAIN_EVENTS


def handle_annotation_event(*, db_session: Session, project: Project, payload: dict) -> Recorded:
    annotation, task = payload.get("annotation"), payload.get("task")
    if not isinstance(annotation, dict) or not isinstance(task, dict):
        raise SkippedAnnotation("the event carries no annotation and task objects")
    config = LabelingConfig(image_key=_image_key(payload))
    key = task_key(task, config)
    item = item_of(key, find_items(db_session=db_session, project=project, keys=[key]))
    if item is None:
        raise SkippedAnnotation(f"task {task.get('id')} names no item of project {project.name!r}: {key}")
    return record_ls_annotation(db_session=db_session, project=project, item=item, annotation=annotation)


def _image_key(payload: dict) -> str:
    """The task data key of the project's <Image>, from the project's label config when the event has it."""
    project = payload.get("project")
    label_config = project.get("label_config") if isinstance(project, dict) else None
    try:
        return parse_labeling_config(label_config).image_key
    except LabelingConfigError:
        return LabelingConfig().image_key


def handle_delete_event(*, db_session: Session, project: Project, payload: dict) -> list[Recorded]:
    annotations = payload.get("annotations")
    if not isinstance(annotations, list):
        annotations = [payload.get("annotation")]
    ids = [a.get("id") for a in annotations if isinstance(a, dict)]
    return [
        retract_answer(db_session=db_session, project=project, ls_annotation_id=i)
        for i in ids
        if isinstance(i, int) and not isinstance(i, bool)
    ]


# --- training -----------------------------------------------------------------------------------------------


def default_job_kind(project: Project) -> str:
    return "yolo" if project.kind == "detection" else "classifier_lora"


def start_training(
    *, db_session: Session, project: Project, settings: Settings, enqueue: jobs.Enqueue
) -> Job:
    """Freezes the current consensus labels and queues the project's default job kind on them."""
    version = freeze_dataset_version(
        db_session=db_session, project=project, freeze=DatasetFreeze(), user_id=None, settings=settings
    )
    job_in = JobCreate(kind=default_job_kind(project), dataset_version=version.version)
    job = jobs.create_job(
        db_session=db_session, project=project, job_in=job_in, user_id=None, settings=settings
    )
    db_session.commit()
    jobs.enqueue_job(db_session=db_session, job=job, enqueue=enqueue)
    db_session.commit()
    return job


# --- one event, wherever it runs -----------------------------------------------------------------------------


def handle_event(
    *,
    db_session: Session,
    project: Project,
    action: str,
    payload: dict,
    settings: Settings,
    enqueue: jobs.Enqueue,
) -> str:
    """What became of a Label Studio event, in words; a bad event is skipped, never an error (nobody waits)."""
    try:
        if action in ANNOTATION_EVENTS:
            recorded = handle_annotation_event(db_session=db_session, project=project, payload=payload)
            db_session.commit()
            return f"annotation {recorded.outcome} ({recorded.annotation_id})"
        if action in DELETE_EVENTS:
            outcomes = handle_delete_event(db_session=db_session, project=project, payload=payload)
            db_session.commit()
            return f"deleted: {[r.outcome for r in outcomes]}"
        if action in TRAIN_EVENTS:
            job = start_training(db_session=db_session, project=project, settings=settings, enqueue=enqueue)
            return f"training job {job.id} queued ({job.kind})"
    except SkippedAnnotation as exc:
        db_session.rollback()
        return f"skipped: {exc}"
    except ApiError as exc:
        db_session.rollback()
        return f"refused: {exc.field}: {exc.message}"
    return f"ignored action {action!r}"


# --- the worker's share -------------------------------------------------------------------------------------

WEBHOOK_TASK = "hardcase.label_studio_event"


def enqueue_event(settings: Settings, project_name: str, action: str, payload: dict) -> None:
    """Hands a Label Studio event to the cpu queue (bounded: a silent broker fails within about a second)."""
    from app.jobs.dispatch import PUBLISH_RETRY_POLICY, celery_client

    celery_client(settings).send_task(
        WEBHOOK_TASK,
        args=[project_name, action, payload],
        queue="cpu",
        ignore_result=True,
        retry_policy=PUBLISH_RETRY_POLICY,
    )
