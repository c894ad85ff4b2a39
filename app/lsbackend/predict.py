"""Predictions for Label Studio tasks: regions from the production model's (or the cascade's) stored outputs,
and a `score` that makes Label Studio's lowest-score-first order Hardcase's hardest-first order."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.ingest.models import Item, Prediction
from app.ingest.service import predictions_for
from app.lsbackend.regions import LabelingConfig, TaskKey, box_region, choice_region, task_key
from app.projects.models import Project
from app.queue.models import Hardness
from app.queue.ranking import prediction_value
from app.registry.models import ModelVersion
from app.registry.service import production_model

MODEL_VERSION_PREFIX = "hardcase/"  # an import skips these predictions: they are Hardcase's own, derived


def model_version_of(*, db_session: Session, project: Project) -> str:
    """What Label Studio shows as the backend's model version: the production model, or the cascade."""
    production = production_model(db_session=db_session, project=project)
    if production is None:
        return f"{MODEL_VERSION_PREFIX}{project.name}/cascade"
    return f"{MODEL_VERSION_PREFIX}{project.name}/{production.name}/v{production.version}"


def task_score(priority: float | None) -> float:
    """1 / (1 + hardness priority): strictly falling with the priority (which is >= 0 and may exceed 1 after a
    drift boost), so sorting by prediction score, lowest first, serves the hardest item first."""
    return 1.0 / (1.0 + max(float(priority or 0.0), 0.0))


def find_items(*, db_session: Session, project: Project, keys: list[TaskKey]) -> dict[str, Item]:
    """Items by external id, or by image URL (an item's external id or its stored image reference)."""
    wanted = sorted({value for key in keys for value in key.candidates()})
    if not wanted:
        return {}
    found: dict[str, Item] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = db_session.scalars(
            select(Item).where(
                Item.project_id == project.id, or_(Item.external_id.in_(chunk), Item.image_uri.in_(chunk))
            )
        )
        for item in rows:
            found.setdefault(item.external_id, item)
            if item.image_uri:
                found.setdefault(item.image_uri, item)
    return found


def item_of(key: TaskKey, items: dict[str, Item]) -> Item | None:
    """The task's explicit external id decides; only a task without one is matched by its image URL."""
    if key.external_id is not None:
        return items.get(key.external_id)
    return items.get(key.image_url) if key.image_url else None


def _latest_by_model(predictions: list[Prediction]) -> dict[str, Prediction]:
    latest: dict[str, Prediction] = {}
    for prediction in sorted(predictions, key=lambda p: p.id):
        latest[prediction.model] = prediction
    return latest


def _class_scores(project: Project, predictions: list[Prediction], hardness: Hardness | None) -> Any:
    """P(positive) (binary, detection) or mean class probabilities (multiclass); None when unscored."""
    values = [v for v in (prediction_value(project, p.score, p.probs) for p in predictions) if v is not None]
    if project.kind == "multiclass":
        return np.mean(np.asarray(values, dtype=float), axis=0) if values else None
    if len(predictions) > 1 and hardness is not None and hardness.mean_score is not None:
        return float(hardness.mean_score)  # the cascade's weighted mean, as ranked
    return float(np.mean(values)) if values else None


def _choice(project: Project, config: LabelingConfig, scores: Any) -> dict | None:
    if scores is None or project.kind == "detection":
        return None
    if project.kind == "multiclass":
        index = int(np.argmax(scores))
        return choice_region(config, project.classes[index], float(scores[index]))
    positive = scores >= project.threshold
    confidence = scores if positive else 1.0 - scores
    return choice_region(config, project.classes[int(positive)], confidence)


def _box_class_name(project: Project, cls: Any) -> str:
    if isinstance(cls, str):
        return cls
    names = list(project.box_classes)
    index = int(cls) if isinstance(cls, int | float) else -1
    return names[index] if 0 <= index < len(names) else str(cls)


def _boxes(project: Project, config: LabelingConfig, source: list[Prediction], item: Item) -> list[dict]:
    detector = max((p for p in source if p.boxes), key=lambda p: p.id, default=None)
    if detector is None:
        return []
    regions = (
        box_region(config, box, _box_class_name(project, box[4]), (item.width, item.height))
        for box in detector.boxes
    )
    return [r for r in regions if r is not None]


def _source_predictions(latest: dict[str, Prediction], production: ModelVersion | None) -> list[Prediction]:
    """The production model's own stored output when the cascade posts it; else every model's latest."""
    if production is not None and production.name in latest:
        return [latest[production.name]]
    return list(latest.values())


def task_prediction(
    project: Project,
    config: LabelingConfig,
    item: Item | None,
    predictions: list[Prediction],
    hardness: Hardness | None,
    production: ModelVersion | None,
    model_version: str,
) -> dict[str, Any]:
    if item is None:  # not a Hardcase item: nothing predicted, and last in an uncertainty ordering
        return {"result": [], "score": 1.0, "model_version": model_version}
    source = _source_predictions(_latest_by_model(predictions), production)
    regions = [_choice(project, config, _class_scores(project, source, hardness))]
    regions += _boxes(project, config, source, item)
    return {
        "result": [r for r in regions if r is not None],
        "score": task_score(hardness.priority if hardness is not None else None),
        "model_version": model_version,
    }


def predict_tasks(
    *, db_session: Session, project: Project, tasks: list[Any], config: LabelingConfig
) -> list[dict[str, Any]]:
    """One prediction per task, in the tasks' order."""
    keys = [task_key(task, config) for task in tasks]
    items = find_items(db_session=db_session, project=project, keys=keys)
    matched = [item_of(key, items) for key in keys]
    item_ids = sorted({item.id for item in matched if item is not None})
    predictions = predictions_for(db_session=db_session, item_ids=item_ids)
    hardness = {
        h.item_id: h for h in db_session.scalars(select(Hardness).where(Hardness.item_id.in_(item_ids)))
    }
    production = production_model(db_session=db_session, project=project)
    version = model_version_of(db_session=db_session, project=project)
    grouped: dict[int, list[Prediction]] = defaultdict(list, predictions)
    return [
        task_prediction(
            project,
            config,
            item,
            grouped[item.id] if item is not None else [],
            hardness.get(item.id) if item is not None else None,
            production,
            version,
        )
        for item in matched
    ]
