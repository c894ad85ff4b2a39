"""Import a Label Studio JSON export (tasks with annotations and predictions) into a Hardcase project: items,
the models' predictions and every annotation with its author, so a team moves over with its history."""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.blobs import BlobStore
from app.core.config import Settings
from app.ingest.models import Item
from app.ingest.service import ingest_batch
from app.lsbackend.predict import MODEL_VERSION_PREFIX
from app.lsbackend.regions import (
    LabelingConfig,
    RegionError,
    match_name,
    read_result,
    task_key,
)
from app.lsbackend.service import SkippedAnnotation, record_ls_annotation
from app.projects.models import Project

log = logging.getLogger("hardcase.lsbackend")

MAX_EXTERNAL_ID = 255
MAX_URL = 1024
METADATA_KEYS = ("captured_at", "camera_id", "is_night", "lat", "lon")
DEFAULT_MODEL = "label-studio"


@dataclass
class ImportSummary:
    tasks: int = 0
    items_created: int = 0
    predictions_created: int = 0
    images_stored: int = 0
    annotations: dict[str, int] = field(default_factory=dict)  # outcome -> count
    errors: list[str] = field(default_factory=list)


# --- tasks -> ingest items ----------------------------------------------------------------------------------


def external_id_of(task: dict, config: LabelingConfig) -> str:
    """The task's `data.external_id`, else its image URL, else 'ls-task-<id>' (the LS backend matches the same
    way, so imported items are found again when Label Studio asks for predictions)."""
    key = task_key(task, config)
    if key.external_id and len(key.external_id) <= MAX_EXTERNAL_ID:
        return key.external_id
    if key.image_url and len(key.image_url) <= MAX_EXTERNAL_ID:
        return key.image_url
    return f"ls-task-{task.get('id')}"


def local_image_path(url: str, images_root: Path) -> Path | None:
    """The file a Label Studio URL names under `images_root`: local-files (`/data/local-files/?d=<path>`,
    relative to the root or absolute inside it) or uploads (`/data/upload/<project>/<file>`); None otherwise."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/data/local-files"):
        relative = parse_qs(parts.query).get("d", [""])[0]
    elif "/data/upload/" in parts.path and not parts.scheme:
        relative = "upload/" + unquote(parts.path.split("/data/upload/", 1)[1])
    elif not parts.scheme and not parts.netloc and parts.path:
        relative = unquote(parts.path)
    else:
        return None
    root = Path(os.path.abspath(images_root))
    for candidate in (root / relative.lstrip("/"), Path("/") / relative.lstrip("/")):
        path = Path(
            os.path.abspath(candidate)
        )  # '..' removed; a dataset's links into the blob store are kept
        if path.is_relative_to(root) and path.is_file():
            return path
    return None


def image_of(task: dict, config: LabelingConfig, images_root: Path | None) -> dict | None:
    url = task_key(task, config).image_url
    if url is None:
        return None
    path = local_image_path(url, images_root) if images_root is not None else None
    if path is not None:
        return {"base64": base64.b64encode(path.read_bytes()).decode()}
    return {"url": url} if len(url) <= MAX_URL else None


def metadata_of(task: dict) -> dict[str, Any]:
    data = task.get("data") or {}
    metadata = {k: data[k] for k in METADATA_KEYS if k in data}
    if isinstance(task.get("id"), int):
        metadata["label_studio_task"] = task["id"]
    return metadata


def model_of(prediction: dict) -> tuple[str, str]:
    """(model, version) from Label Studio's `model_version`, split at '@' as Hardcase's export joins them."""
    version = prediction.get("model_version")
    if not isinstance(version, str) or not version.strip():
        return DEFAULT_MODEL, ""
    model, _, model_version = version.strip().partition("@")
    return model[:100], model_version[:100]


def prediction_of(project: Project, prediction: dict) -> dict | None:
    """A Label Studio prediction as a Hardcase one. Its `score` is the confidence of what its result says, so
    P(positive) is the score when the result says positive (the positive choice, or boxes for a detector) and
    1 - score otherwise; a multiclass choice gets its score and the other classes share the rest."""
    regions = read_result(prediction.get("result"))
    model, version = model_of(prediction)
    score = prediction.get("score")
    score = float(score) if isinstance(score, int | float) and 0 <= score <= 1 else regions.choice_score
    out: dict[str, Any] = {"model": model, "model_version": version, "boxes": _boxes(regions, score)}
    classes = list(project.classes)
    choice = match_name(classes, regions.choices[0]) if regions.choices else None
    if project.kind == "multiclass":
        if choice is None:
            return None
        out["label"] = classes[choice]
        if score is not None:
            rest = (1.0 - score) / (len(classes) - 1)
            out["probs"] = [score if i == choice else rest for i in range(len(classes))]
        return out
    says_positive = choice == 1 if choice is not None else bool(regions.boxes)
    if score is not None:
        out["score"] = score if says_positive else 1.0 - score
    elif choice is not None:
        out["label"] = classes[choice]
    else:
        return out if out["boxes"] else None
    return out


def _boxes(regions, score: float | None) -> list[list[Any]]:
    return [
        [*box, box_score if box_score is not None else (score if score is not None else 1.0)]
        for box, box_score in zip(regions.boxes, regions.box_scores, strict=True)
    ]


def ingest_item_of(project: Project, task: dict, config: LabelingConfig, images_root: Path | None) -> dict:
    predictions = []
    for prediction in task.get("predictions") or []:
        if not isinstance(prediction, dict):
            continue
        if str(prediction.get("model_version") or "").startswith(MODEL_VERSION_PREFIX):
            continue  # Hardcase's own predictions served to Label Studio: derived, not a model's output
        try:
            converted = prediction_of(project, prediction)
        except RegionError:
            continue
        if converted is not None:
            predictions.append(converted)
    item: dict[str, Any] = {
        "external_id": external_id_of(task, config),
        "metadata": metadata_of(task),
        "predictions": predictions,
    }
    image = image_of(task, config, images_root)
    if image is not None:
        item["image"] = image
    return item


# --- the import ---------------------------------------------------------------------------------------------


def import_label_studio_tasks(
    *,
    db_session: Session,
    project: Project,
    tasks: list[Any],
    blobs: BlobStore,
    settings: Settings,
    config: LabelingConfig | None = None,
    images_root: Path | None = None,
) -> ImportSummary:
    """Items and predictions through the ingestion path (idempotent), then the annotations in order
    (append-only; importing the same export again changes nothing)."""
    config = config or LabelingConfig()
    summary = ImportSummary(tasks=len(tasks))
    valid = [t for t in tasks if isinstance(t, dict) and isinstance(t.get("data"), dict)]
    summary.errors += [f"tasks[{i}]: not a task with data" for i, t in enumerate(tasks) if t not in valid]
    for start in range(0, len(valid), settings.max_batch_items):
        chunk = valid[start : start + settings.max_batch_items]
        items = [ingest_item_of(project, task, config, images_root) for task in chunk]
        result = ingest_batch(
            db_session=db_session, project=project, raw_items=items, files={}, blobs=blobs, settings=settings
        )
        summary.items_created += result.items_created
        summary.predictions_created += result.predictions_created
        summary.images_stored += result.images_stored
        summary.errors += [f"tasks[{start + e.index}] {e.field}: {e.message}" for e in result.errors]
    _import_annotations(db_session, project, valid, config, summary)
    return summary


def _import_annotations(
    db_session: Session, project: Project, tasks: list[dict], config: LabelingConfig, summary: ImportSummary
) -> None:
    ids = sorted({external_id_of(t, config) for t in tasks})
    items: dict[str, Item] = {}
    for start in range(0, len(ids), 500):
        query = select(Item).where(
            Item.project_id == project.id, Item.external_id.in_(ids[start : start + 500])
        )
        items |= {item.external_id: item for item in db_session.scalars(query)}
    for index, task in enumerate(tasks):
        item = items.get(external_id_of(task, config))
        for annotation in task.get("annotations") or []:
            if item is None or not isinstance(annotation, dict):
                continue
            try:
                recorded = record_ls_annotation(
                    db_session=db_session, project=project, item=item, annotation=annotation
                )
            except SkippedAnnotation as exc:
                summary.errors.append(f"tasks[{index}] annotation {annotation.get('id')}: {exc}")
                continue
            summary.annotations[recorded.outcome] = summary.annotations.get(recorded.outcome, 0) + 1
    db_session.commit()
