"""Hardness rows from the cascade's predictions through ml.scoring: incremental on ingest, vectorised in bulk."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core.db import is_postgres, utcnow
from app.ingest.models import Item, Prediction
from app.projects.models import Project
from app.queue.models import Hardness
from ml.scoring import HardnessArrays, StrategyConfig, box_disagreement, rank_matrix

log = logging.getLogger("hardcase.queue")

# rank_matrix needs 0 < t < 1; a project may store the extremes.
THRESHOLD_EPSILON = 1e-6
MEASURE_COLUMNS = (
    "priority",
    "mean_score",
    "entropy",
    "margin",
    "disagreement",
    "threshold_distance",
    "vote_ratio",
    "score_std",
)


@dataclass(frozen=True)
class RerankSummary:
    project_id: int
    items: int
    rows_created: int
    seconds: float


def strategy_of(project: Project) -> StrategyConfig:
    return StrategyConfig(name=project.strategy, weights=dict(project.strategy_weights or {}))


def ranking_threshold(project: Project) -> float:
    return float(np.clip(project.threshold, THRESHOLD_EPSILON, 1.0 - THRESHOLD_EPSILON))


def prediction_value(project: Project, score: float | None, probs: list | None) -> Any:
    """What one prediction contributes to the score matrix: P(positive), a class vector, or None."""
    if project.kind == "multiclass":
        return probs if probs is not None and len(probs) == len(project.classes) else None
    if score is not None:
        return float(score)
    if probs is not None and len(probs) == 2:
        return float(probs[1])
    return None


def _matrix(project: Project, values: list[dict[str, Any]], models: list[str]) -> np.ndarray:
    """Rows of {model: value} -> (items, models) or (items, models, classes) with NaN where missing."""
    if project.kind == "multiclass":
        out = np.full((len(values), len(models), len(project.classes)), np.nan)
    else:
        out = np.full((len(values), len(models)), np.nan)
    column = {m: j for j, m in enumerate(models)}
    for i, row in enumerate(values):
        for model, value in row.items():
            if value is not None:
                out[i, column[model]] = value
    return out


def rank(
    project: Project, matrix: np.ndarray, models: list[str], item_ids: np.ndarray, boxes: np.ndarray
) -> HardnessArrays:
    if not models:  # no predictions at all: every measure is undefined, priority 0
        matrix = np.full((len(item_ids), 1), np.nan)
        models = ["none"]
    return rank_matrix(
        matrix,
        models,
        threshold=ranking_threshold(project),
        strategy=strategy_of(project),
        box_disagreement=boxes,
        item_keys=np.asarray(item_ids, dtype=np.uint64),
        class_names=list(project.classes) if project.kind == "multiclass" else None,
    )


def measure_columns(project: Project, arrays: HardnessArrays) -> dict[str, np.ndarray]:
    """The stored columns as arrays (NaN where a measure is undefined, e.g. no model scored the item)."""
    columns = {name: np.asarray(getattr(arrays, name), dtype=np.float64) for name in MEASURE_COLUMNS}
    columns["priority"] = np.nan_to_num(columns["priority"], nan=0.0)
    columns["box_disagreement"] = np.asarray(arrays.box_disagreement, dtype=np.float64)
    columns["n_models"] = np.asarray(arrays.n_models, dtype=np.int64)
    binary = project.kind != "multiclass"
    mean = np.nan_to_num(columns["mean_score"], nan=-1.0)
    columns["likely_positive"] = (mean >= ranking_threshold(project)) & binary
    return columns


def _python_value(value: Any) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return None if not np.isfinite(value) else float(value)


def hardness_rows(project: Project, arrays: HardnessArrays, item_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Row dicts with the reasons a human reads (the incremental path: a batch at a time)."""
    columns = measure_columns(project, arrays)
    now = utcnow()
    return [
        {
            "item_id": int(item_id),
            "project_id": project.id,
            **{name: _python_value(values[i]) for name, values in columns.items()},
            "reasons": arrays.reasons_for(i),
            "updated_at": now,
        }
        for i, item_id in enumerate(item_ids)
    ]


# --- incremental: the items an ingestion batch touched ------------------------------------------------------


def _latest_predictions(db_session: Session, item_ids: list[int]) -> dict[int, dict[str, Prediction]]:
    """Per item, per model, the latest prediction (a newer model version replaces the older one)."""
    latest: dict[int, dict[str, Prediction]] = {i: {} for i in item_ids}
    rows = db_session.scalars(
        select(Prediction).where(Prediction.item_id.in_(item_ids)).order_by(Prediction.id)
    )
    for pred in rows:
        latest[pred.item_id][pred.model] = pred
    return latest


def _box_score(project: Project, by_model: dict[str, Prediction]) -> float:
    if project.kind != "detection" or len(by_model) < 2:
        return 0.0
    return box_disagreement({m: p.boxes for m, p in by_model.items()}).score


def score_items(*, db_session: Session, project: Project, item_ids: Iterable[int]) -> int:
    """Recomputes the hardness of exactly these items and upserts their rows; queue state is left alone."""
    ids = sorted(set(item_ids))
    if not ids:
        return 0
    latest = _latest_predictions(db_session, ids)
    values = [{m: prediction_value(project, p.score, p.probs) for m, p in latest[i].items()} for i in ids]
    models = sorted({m for row in values for m in row})
    boxes = np.array([_box_score(project, latest[i]) for i in ids])
    arrays = rank(project, _matrix(project, values, models), models, np.array(ids), boxes)
    _upsert(db_session, hardness_rows(project, arrays, ids))
    return len(ids)


def _upsert(db_session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if is_postgres(db_session) else sqlite
    stmt = dialect.insert(Hardness)
    changing = [k for k in rows[0] if k not in ("item_id", "project_id")]
    stmt = stmt.on_conflict_do_update(
        index_elements=["item_id"], set_={k: getattr(stmt.excluded, k) for k in changing}
    )
    db_session.execute(stmt, rows)


def rescore_after_ingest(
    *, db_session: Session, project: Project, changed_item_ids: list[int], batch_item_ids: Iterable[int]
) -> int:
    """Ingestion hook: re-scores items with new predictions and enrols new items that have none yet."""
    changed = set(changed_item_ids)
    batch = set(batch_item_ids) - changed
    if batch:
        ranked = set(db_session.scalars(select(Hardness.item_id).where(Hardness.item_id.in_(batch))))
        changed |= batch - ranked
    return score_items(db_session=db_session, project=project, item_ids=changed)


# --- full re-rank: the whole project after its threshold or strategy changed ---------------------------------


def enrol_missing_items(*, db_session: Session, project: Project) -> int:
    """Inserts a pending hardness row for every item of the project that has none (one statement).

    ON CONFLICT on the primary key rather than NOT EXISTS: the anti-join against the table being filled
    is planned as a nested loop over an empty table and turns quadratic (150k items took minutes).
    """
    dialect = postgresql if is_postgres(db_session) else sqlite
    items = select(Item.id, Item.project_id).where(Item.project_id == project.id)
    stmt = dialect.insert(Hardness).from_select(["item_id", "project_id"], items)
    result = db_session.execute(stmt.on_conflict_do_nothing(index_elements=["item_id"]))
    return max(result.rowcount or 0, 0)


def _ranked_ids(db_session: Session, project_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = db_session.execute(
        select(Hardness.item_id, Hardness.box_disagreement)
        .where(Hardness.project_id == project_id)
        .order_by(Hardness.item_id)
    ).all()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    data = np.array(rows, dtype=np.float64)
    return data[:, 0].astype(np.int64), data[:, 1]


def _last_per_item(positions: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each position (rows come in insertion order: latest wins)."""
    reversed_positions = positions[::-1]
    _, first_in_reversed = np.unique(reversed_positions, return_index=True)
    return len(positions) - 1 - first_in_reversed


def _binary_matrix(db_session: Session, project: Project, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    models = sorted(
        db_session.scalars(select(Prediction.model).where(Prediction.project_id == project.id).distinct())
    )
    matrix = np.full((len(ids), len(models)), np.nan)
    for j, model in enumerate(models):
        rows = db_session.execute(
            select(Prediction.item_id, Prediction.score)
            .where(Prediction.project_id == project.id, Prediction.model == model)
            .order_by(Prediction.id)
        ).all()
        data = np.array([(r[0], np.nan if r[1] is None else r[1]) for r in rows], dtype=np.float64)
        if not len(data):
            continue
        positions = np.searchsorted(ids, data[:, 0].astype(np.int64))
        last = _last_per_item(positions)
        matrix[positions[last], j] = data[last, 1]
    return matrix, models


def _multiclass_matrix(
    db_session: Session, project: Project, ids: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    values: dict[int, dict[str, Any]] = {}
    rows = db_session.execute(
        select(Prediction.item_id, Prediction.model, Prediction.score, Prediction.probs)
        .where(Prediction.project_id == project.id)
        .order_by(Prediction.id)
    )
    for item_id, model, score, probs in rows:
        values.setdefault(item_id, {})[model] = prediction_value(project, score, probs)
    models = sorted({m for row in values.values() for m in row})
    return _matrix(project, [values.get(int(i), {}) for i in ids], models), models


def rerank_project(*, db_session: Session, project: Project) -> RerankSummary:
    """Re-scores every item of the project in one vectorised pass (bulk read, rank_matrix, bulk write).

    Reasons are cleared rather than rebuilt (a Python call per item would dominate at 1M items); the label
    page computes them for the one item it shows, and the next ingest of an item stores them again.
    """
    started = time.perf_counter()
    created = enrol_missing_items(db_session=db_session, project=project)
    ids, boxes = _ranked_ids(db_session, project.id)
    if len(ids):
        build = _multiclass_matrix if project.kind == "multiclass" else _binary_matrix
        matrix, models = build(db_session, project, ids)
        columns = measure_columns(project, rank(project, matrix, models, ids, boxes))
        write = _bulk_update_postgres if is_postgres(db_session) else _bulk_update_generic
        write(db_session, ids, columns)
    seconds = time.perf_counter() - started
    log.info("re-ranked project %s: %d items in %.2fs", project.name, len(ids), seconds)
    return RerankSummary(project_id=project.id, items=len(ids), rows_created=created, seconds=seconds)


UPDATED_COLUMNS = (*MEASURE_COLUMNS, "likely_positive")


def _bulk_update_generic(db_session: Session, ids: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    table: Table = Hardness.__table__
    stmt = (
        update(table)
        .where(table.c.item_id == bindparam("b_item_id"))
        .values(
            {
                **{c: bindparam(f"b_{c}") for c in UPDATED_COLUMNS},
                "reasons": None,
                "updated_at": bindparam("b_updated_at"),
            }
        )
    )
    now = utcnow()
    lists = {c: [_python_value(v) for v in columns[c]] for c in UPDATED_COLUMNS}
    params = [
        {"b_item_id": int(item_id), "b_updated_at": now, **{f"b_{c}": lists[c][i] for c in UPDATED_COLUMNS}}
        for i, item_id in enumerate(ids)
    ]
    for start in range(0, len(params), 20_000):
        db_session.connection().execute(stmt, params[start : start + 20_000])


def _bulk_update_postgres(db_session: Session, ids: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    """One UPDATE ... FROM unnest(arrays): the arrays travel as parameters, no per-row Python work."""
    floats = [c for c in UPDATED_COLUMNS if c != "likely_positive"]
    assignments = ", ".join(
        [f"{c} = u.{c}" if c == "priority" else f"{c} = NULLIF(u.{c}, 'NaN')" for c in floats]
        + ["likely_positive = u.likely_positive", "reasons = NULL", "updated_at = now()"]
    )
    arrays = ", ".join(["%s::bigint[]"] + ["%s::float8[]"] * len(floats) + ["%s::boolean[]"])
    sql = (
        f"UPDATE hardness AS h SET {assignments} FROM unnest({arrays}) "
        f"AS u(item_id, {', '.join(floats)}, likely_positive) WHERE h.item_id = u.item_id"
    )
    raw = db_session.connection().connection.driver_connection
    for start in range(0, len(ids), 200_000):
        chunk = slice(start, start + 200_000)
        params = [ids[chunk].tolist()] + [columns[c][chunk].tolist() for c in floats]
        params.append(columns["likely_positive"][chunk].tolist())
        with raw.cursor() as cursor:
            cursor.execute(sql, params)


def ranked_count(*, db_session: Session, project_id: int) -> int:
    return db_session.scalar(select(func.count()).where(Hardness.project_id == project_id)) or 0
