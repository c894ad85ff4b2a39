"""Hardness rows from the cascade's predictions through ml.scoring: incremental on ingest, vectorised in bulk."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, case, func, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core.db import is_postgres, utcnow
from app.ingest.models import Item, Prediction
from app.projects.models import Project
from app.projects.service import takes_boxes
from app.queue.bulk_upsert import PackedArray, PackedArrayDumper, pg_array, upsert_hardness
from app.queue.models import Hardness
from ml.scoring import HardnessArrays, StrategyConfig, box_disagreement, rank_matrix

log = logging.getLogger("hardcase.queue")

# SQLite's bound-parameter limit is far above this; chunks keep one statement's list modest.
SQLITE_IN_CHUNK = 5_000
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


# --- incremental: the items an ingestion batch touched ------------------------------------------------------


@dataclass(frozen=True)
class PredictionRows:
    """The predictions of some items as columns, in insertion order (the last one per item and model wins)."""

    item_ids: list[int]
    models: list[str]
    scores: list[float | None]
    probs: list[list | None]  # only where needed: multiclass, or a binary prediction without a score
    boxes: list[list | None]  # projects that take boxes only


def _prediction_columns(project: Project) -> list[Any]:
    if project.kind == "multiclass":
        probs = Prediction.probs
    else:
        probs = case((Prediction.score.is_(None), Prediction.probs))
    boxes = Prediction.boxes if takes_boxes(project) else null()
    return [Prediction.item_id, Prediction.model, Prediction.score, probs, boxes, Prediction.id]


def _prediction_tuples(db_session: Session, project: Project, item_ids: list[int]) -> list[tuple]:
    """(item_id, model, score, probs, boxes, id) in insertion order; probs and boxes only where needed."""
    if is_postgres(db_session):
        # The ids go as one binary int8[] parameter (a 1,000-value IN list costs more than the query).
        probs = "probs" if project.kind == "multiclass" else "CASE WHEN score IS NULL THEN probs END"
        boxes = "boxes" if takes_boxes(project) else "NULL"
        sql = (
            f"SELECT item_id, model, score, {probs}, {boxes}, id FROM predictions "
            "WHERE item_id = ANY(%s) ORDER BY id"
        )
        raw = db_session.connection().connection.driver_connection
        with raw.cursor() as cursor:
            cursor.adapters.register_dumper(PackedArray, PackedArrayDumper)
            return cursor.execute(sql, [pg_array(item_ids, "int8")]).fetchall()
    columns = _prediction_columns(project)
    rows = []
    for start in range(0, len(item_ids), SQLITE_IN_CHUNK):
        chunk = item_ids[start : start + SQLITE_IN_CHUNK]
        rows.extend(db_session.connection().execute(select(*columns).where(Prediction.item_id.in_(chunk))))
    return sorted(rows, key=lambda row: row[-1])


def _fetch_predictions(db_session: Session, project: Project, item_ids: list[int]) -> PredictionRows:
    """One query (per chunk on SQLite) returning plain tuples of just the columns the ranking reads."""
    rows = _prediction_tuples(db_session, project, item_ids)
    if not rows:
        return PredictionRows([], [], [], [], [])
    item_column, model_column, scores, probs, boxes, _ = (list(column) for column in zip(*rows, strict=True))
    return PredictionRows(item_column, model_column, scores, probs, boxes)


def _values(project: Project, rows: PredictionRows) -> np.ndarray:
    """Each prediction's contribution to the matrix: (rows,) P(positive) or (rows, classes), NaN if none."""
    if project.kind == "multiclass":
        out = np.full((len(rows.models), len(project.classes)), np.nan)
        for i, probs in enumerate(rows.probs):
            value = prediction_value(project, None, probs)
            if value is not None:
                out[i] = value
        return out
    out = np.array(rows.scores, dtype=np.float64)  # None becomes NaN
    for i in np.flatnonzero(np.isnan(out)).tolist():
        value = prediction_value(project, rows.scores[i], rows.probs[i])
        out[i] = np.nan if value is None else value
    return out


def latest_matrix(
    project: Project, item_ids: np.ndarray, rows: PredictionRows
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(score matrix, model names, box disagreement per item) from the latest prediction per item and model."""
    models = sorted(set(rows.models))
    n_items, n_models = len(item_ids), len(models)
    shape = (n_items, n_models, len(project.classes)) if project.kind == "multiclass" else (n_items, n_models)
    matrix = np.full(shape, np.nan)
    boxes = np.zeros(n_items)
    if not n_models:
        return matrix, models, boxes
    column = {m: j for j, m in enumerate(models)}
    positions = np.searchsorted(item_ids, np.array(rows.item_ids, dtype=np.int64))
    columns = np.array([column[m] for m in rows.models], dtype=np.int64)
    last = _last_per_item(positions * n_models + columns)
    matrix[positions[last], columns[last]] = _values(project, rows)[last]
    if takes_boxes(project):
        detectors = None if project.kind == "detection" else _detectors(rows)
        boxes = _box_scores(
            n_items,
            positions[last],
            [rows.models[i] for i in last],
            [rows.boxes[i] for i in last],
            detectors,
        )
    return matrix, models, boxes


def _detectors(rows: PredictionRows) -> set[str]:
    """In a binary project the classifiers and VLMs send no boxes: the detectors are the models that drew a
    box on any of the items ranked together (one that found nothing on an item then disagrees there)."""
    return {model for model, boxes in zip(rows.models, rows.boxes, strict=True) if boxes}


def _box_scores(
    n_items: int,
    positions: np.ndarray,
    models: list[str],
    boxes: list[list | None],
    detectors: set[str] | None = None,
) -> np.ndarray:
    """Box disagreement of the items where two or more models answered and at least one drew a box;
    `detectors` limits the comparison to those models (None: every model)."""
    by_item: dict[int, dict[str, list | None]] = {}
    for position, model, model_boxes in zip(positions.tolist(), models, boxes, strict=True):
        if detectors is None or model in detectors:
            by_item.setdefault(position, {})[model] = model_boxes
    scores = np.zeros(n_items)
    for position, by_model in by_item.items():
        if len(by_model) >= 2 and any(by_model.values()):
            scores[position] = box_disagreement({m: b or [] for m, b in by_model.items()}).score
    return scores


def score_items(
    *,
    db_session: Session,
    project: Project,
    item_ids: Iterable[int],
    known_item_ids: Iterable[int] = (),
    known: PredictionRows | None = None,
) -> int:
    """Recomputes the hardness of exactly these items and upserts their rows; queue state is left alone.

    `known` holds every prediction of the items in `known_item_ids`, already in memory: those are not read back.
    Reasons are not stored (a Python call per item costs more than the rest of the ranking): the label page
    builds them for the item it shows.
    """
    ids = np.array(sorted(set(item_ids)), dtype=np.int64)
    if not len(ids):
        return 0
    known = known or PredictionRows([], [], [], [], [])
    to_read = sorted(set(ids.tolist()) - set(known_item_ids))
    rows = _concat(_fetch_predictions(db_session, project, to_read), known) if to_read else known
    matrix, models, boxes = latest_matrix(project, ids, rows)
    columns = measure_columns(project, rank(project, matrix, models, ids, boxes))
    upsert_hardness(db_session, project.id, ids, columns)
    return len(ids)


def _concat(first: PredictionRows, second: PredictionRows) -> PredictionRows:
    return PredictionRows(*(a + b for a, b in zip(vars(first).values(), vars(second).values(), strict=True)))


def rescore_after_ingest(
    *,
    db_session: Session,
    project: Project,
    changed_item_ids: Iterable[int],
    batch_item_ids: Iterable[int],
    created_item_ids: Iterable[int] = (),
    created_predictions: PredictionRows | None = None,
) -> int:
    """Ingestion hook: re-scores items with new predictions and enrols new items that have none yet.

    Items the batch created are scored from `created_predictions` (all they have, still in memory); only
    items that existed before are read back from the predictions table.
    """
    created = set(created_item_ids)
    changed = set(changed_item_ids) | created
    batch = set(batch_item_ids) - changed
    if batch:
        ranked = set(db_session.scalars(select(Hardness.item_id).where(Hardness.item_id.in_(batch))))
        changed |= batch - ranked
    return score_items(
        db_session=db_session,
        project=project,
        item_ids=changed,
        known_item_ids=created,
        known=created_predictions,
    )


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
