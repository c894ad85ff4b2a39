"""Hardness rows from the cascade's predictions through ml.scoring: incremental on ingest, vectorised in bulk."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table, bindparam, case, func, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import is_postgres, utcnow
from app.ingest.models import Item, Prediction
from app.projects.models import Project
from app.projects.service import takes_boxes
from app.queue.bulk_upsert import upsert_hardness
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
        from app.core.pg_binary import binary_cursor, pg_array

        with binary_cursor(db_session.connection().connection.driver_connection) as cursor:
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


def _scatter(
    project: Project, item_ids: np.ndarray, rows: PredictionRows
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(score matrix, model names, row position of each prediction, indices of the latest per item and model)."""
    models = sorted(set(rows.models))
    n_items, n_models = len(item_ids), len(models)
    shape = (n_items, n_models, len(project.classes)) if project.kind == "multiclass" else (n_items, n_models)
    matrix = np.full(shape, np.nan)
    if not n_models:
        return matrix, models, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    column = {m: j for j, m in enumerate(models)}
    positions = np.searchsorted(item_ids, np.array(rows.item_ids, dtype=np.int64))
    columns = np.array([column[m] for m in rows.models], dtype=np.int64)
    last = _last_per_item(positions * n_models + columns)
    matrix[positions[last], columns[last]] = _values(project, rows)[last]
    return matrix, models, positions, last


def latest_matrix(
    project: Project, item_ids: np.ndarray, rows: PredictionRows
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(score matrix, model names, box disagreement per item) from the latest prediction per item and model."""
    matrix, models, positions, last = _scatter(project, item_ids, rows)
    boxes = np.zeros(len(item_ids))
    if models and takes_boxes(project):
        detectors = None if project.kind == "detection" else _detectors(rows)
        boxes = _box_scores(
            len(item_ids),
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

# Items per step of a full re-rank: memory stays bounded (about 100 MB a step) whatever the project's size.
RERANK_CHUNK = 250_000
# Chunks re-ranked at once on PostgreSQL (each in its own session and server process): about one per core.
RERANK_WORKERS = max(1, min(4, os.cpu_count() or 1))
RERANK_TABLE = "hardcase_rerank"
# One binary COPY tuple per item: the measures written back, plus whether the item has no hardness row yet.
RERANK_COLUMNS = {
    "item_id": "int8",
    **{c: "float8" for c in MEASURE_COLUMNS},
    "box_disagreement": "float8",
    "n_models": "int4",
    "likely_positive": "bool",
    "is_new": "bool",
}
NULLABLE = frozenset(MEASURE_COLUMNS) - {"priority"}


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


def _last_per_item(positions: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each position (rows come in insertion order: latest wins)."""
    reversed_positions = positions[::-1]
    _, first_in_reversed = np.unique(reversed_positions, return_index=True)
    return len(positions) - 1 - first_in_reversed


def rerank_project(
    *, db_session: Session, project: Project, chunk: int = RERANK_CHUNK, workers: int = RERANK_WORKERS
) -> RerankSummary:
    """Re-scores every item of the project, `chunk` items at a time (read, rank_matrix, write back); items
    without a hardness row get one. Stored box disagreement is kept (it does not depend on the ranking).

    PostgreSQL moves whole columns with binary COPY in both directions (one query reads a chunk's scores, one
    COPY and one UPDATE ... FROM write it back); other databases read predictions as tuples.
    Each chunk commits (with whatever the session held before): a re-rank in one transaction kept every row it
    had written locked until the end, and leases, which skip locked rows, found a project near its end empty.
    Reasons are cleared rather than rebuilt (a Python call per item would dominate at 1M items); the label
    page computes them for the one item it shows, and the next ingest of an item stores them again.
    """
    started = time.perf_counter()
    if is_postgres(db_session) and project.kind != "multiclass":
        items, created = _rerank_postgres(db_session, project, chunk, workers)
    else:
        items, created = _rerank_generic(db_session, project, chunk)
    seconds = time.perf_counter() - started
    log.info("re-ranked project %s: %d items in %.2fs", project.name, items, seconds)
    return RerankSummary(project_id=project.id, items=items, rows_created=created, seconds=seconds)


# PostgreSQL, binary projects: the score matrix as one numpy array per chunk, no Python object per value.

_MODELS_SQL = """
WITH RECURSIVE m(model) AS (
    SELECT min(model) FROM predictions WHERE project_id = %(project)s
    UNION ALL
    SELECT (SELECT min(model) FROM predictions WHERE project_id = %(project)s AND model > m.model)
    FROM m WHERE m.model IS NOT NULL
)
SELECT model FROM m WHERE model IS NOT NULL
"""
# The project's items after a cursor, their stored box disagreement and whether they are ranked yet: one row
# of arrays (array_agg), read in binary and parsed by numpy.
# The aggregates carry no ORDER BY (each would sort the chunk again): the arrays come aligned, in scan order,
# and numpy sorts them by id (`_by_first`).
_ITEMS_SQL = (
    "SELECT array_agg(id), array_agg(box), array_agg(is_new) FROM ("
    "SELECT i.id::int8 AS id, COALESCE(h.box_disagreement, 0)::float8 AS box, h.item_id IS NULL AS is_new "
    "FROM items AS i LEFT JOIN hardness AS h ON h.item_id = i.id "
    "WHERE i.project_id = %(project)s AND i.id > %(after)s ORDER BY i.id LIMIT %(limit)s) AS chunk"
)
# Each prediction's P(positive): the score, else probs[1] of a two-class vector (as prediction_value), else NaN;
# with the prediction id, by which numpy puts them in insertion order (the latest per item and model wins).
_SCORES_SQL = (
    "SELECT array_agg(id), array_agg(item_id), array_agg(model), array_agg(score) FROM ("
    "SELECT id::int8 AS id, item_id::int8 AS item_id, COALESCE(array_position(%(models)s::text[], model::text), 0)::int4 "
    "AS model, COALESCE(score, CASE WHEN jsonb_typeof(probs) = 'array' AND jsonb_array_length(probs) = 2 "
    "AND jsonb_typeof(probs -> 1) = 'number' THEN (probs ->> 1)::float8 END, 'NaN')::float8 AS score "
    "FROM predictions WHERE project_id = %(project)s AND item_id BETWEEN %(first)s AND %(last)s) AS chunk"
)


def _by_first(columns: list[np.ndarray]) -> list[np.ndarray]:
    """The aligned arrays reordered by the first one (ids: unique, so the order is total)."""
    order = np.argsort(columns[0], kind="stable")
    return [column[order] for column in columns]


def _project_models(cursor: Any, project_id: int) -> list[str]:
    """Distinct model names by skip scan over (project_id, model): milliseconds, not a pass over predictions."""
    return [row[0] for row in cursor.execute(_MODELS_SQL, {"project": project_id}).fetchall()]


def _score_matrix(cursor: Any, project_id: int, models: list[str], ids: np.ndarray) -> np.ndarray:
    """(items, models) P(positive) of the latest prediction per item and model, NaN where none."""
    from app.core.pg_binary import fetch_columns

    _, item_ids, model_ids, scores = _by_first(
        fetch_columns(
            cursor,
            _SCORES_SQL,
            {"models": models, "project": project_id, "first": int(ids[0]), "last": int(ids[-1])},
            ["int8", "int8", "int4", "float8"],
        )
    )
    matrix = np.full((len(ids), len(models)), np.nan)
    positions = np.searchsorted(ids, item_ids)
    # A model first seen after the model list was read waits for the next re-rank; so does an item added
    # to the id range after its chunk was listed.
    known = (model_ids > 0) & (positions < len(ids))
    known[known] = ids[positions[known]] == item_ids[known]
    positions, columns, scores = positions[known], model_ids[known].astype(np.int64) - 1, scores[known]
    if len(positions):
        last = _last_per_item(positions * len(models) + columns)
        matrix[positions[last], columns[last]] = scores[last]
    return matrix


def _rerank_postgres(db_session: Session, project: Project, chunk: int, workers: int) -> tuple[int, int]:
    """The project's items in id order, `chunk` at a time; with `workers` > 1 that many chunks at once, each in
    its own session (PostgreSQL writes them on as many cores). Each chunk commits on its own: leases, which
    skip locked rows, are served from the chunks already written."""
    with db_session.connection().connection.driver_connection.cursor() as cursor:
        models = _project_models(cursor, project.id)
        starts = _chunk_starts(cursor, project.id, chunk) if workers > 1 else []
    db_session.commit()  # what the caller's session held, as the first chunk's commit did
    db_session.refresh(project)  # chunk threads read its settings: loaded here, not lazily from a thread
    items = created = after = 0
    engine = db_session.get_bind()
    if len(starts) > 1 and isinstance(engine, Engine):
        factory = sessionmaker(engine)

        def one_chunk(first_id: int) -> tuple[int, int, int]:
            with factory() as session:
                done = _rerank_chunk(session, project, models, first_id - 1, chunk)
                session.commit()
                return done

        with ThreadPoolExecutor(workers) as pool:
            for n_items, n_created, last_id in pool.map(one_chunk, starts):
                items, created, after = items + n_items, created + n_created, max(after, last_id)
    while True:  # serially, or what was added behind the planned chunks while they ran
        n_items, n_created, last_id = _rerank_chunk(db_session, project, models, after, chunk)
        if not n_items:
            return items, created
        items, created, after = items + n_items, created + n_created, last_id
        db_session.commit()  # releases the chunk's row locks: leases skip locked rows (SKIP LOCKED)


# The first id of every `chunk`-th item of the project: where each parallel chunk starts.
_CHUNK_STARTS_SQL = (
    "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM items WHERE project_id = %(project)s) "
    "AS numbered WHERE n %% %(chunk)s = 1 ORDER BY id"
)


def _chunk_starts(cursor: Any, project_id: int, chunk: int) -> list[int]:
    return [row[0] for row in cursor.execute(_CHUNK_STARTS_SQL, {"project": project_id, "chunk": chunk})]


def _rerank_chunk(
    db_session: Session, project: Project, models: list[str], after: int, chunk: int
) -> tuple[int, int, int]:
    """Ranks the `chunk` items after id `after` in the session's transaction: (items, rows created, last id)."""
    from app.core.pg_binary import fetch_columns

    with db_session.connection().connection.driver_connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")  # a chunk's join hashed in memory, not on disk
        ids, boxes, is_new = _by_first(
            fetch_columns(
                cursor,
                _ITEMS_SQL,
                {"project": project.id, "after": after, "limit": chunk},
                ["int8", "float8", "bool"],
            )
        )
        if not len(ids):
            return 0, 0, after
        matrix = _score_matrix(cursor, project.id, models, ids) if models else np.zeros((len(ids), 0))
        columns = measure_columns(project, rank(project, matrix, models, ids, boxes))
        _create_rerank_table(cursor)
        created = _write_rerank_chunk(cursor, project.id, ids, columns, is_new.astype(bool))
    return len(ids), created, int(ids[-1])


def _create_rerank_table(cursor: Any) -> None:
    types = {"int8": "bigint", "int4": "integer", "float8": "double precision", "bool": "boolean"}
    columns = ", ".join(f"{name} {types[kind]}" for name, kind in RERANK_COLUMNS.items())
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {RERANK_TABLE} ({columns}) ON COMMIT DROP")


def _write_rerank_chunk(
    cursor: Any, project_id: int, ids: np.ndarray, columns: dict[str, np.ndarray], is_new: np.ndarray
) -> int:
    """One binary COPY into the temporary table, one UPDATE ... FROM for ranked items (rows whose values did
    not change are left alone: no dead tuple, no index entry), one INSERT for items ranked the first time.
    The id range lets the join read only the chunk's rows of hardness (a hash join scanned all of it)."""
    from app.core.pg_binary import copy_in

    cursor.execute(f"TRUNCATE {RERANK_TABLE}")
    values = {"item_id": ("int8", ids), **{c: ("float8", columns[c]) for c in MEASURE_COLUMNS}}
    values |= {
        "box_disagreement": ("float8", columns["box_disagreement"]),
        "n_models": ("int4", columns["n_models"]),
        "likely_positive": ("bool", columns["likely_positive"]),
        "is_new": ("bool", is_new),
    }
    copy_in(cursor, RERANK_TABLE, values)
    written = [*MEASURE_COLUMNS, "n_models", "likely_positive"]
    read = [f"NULLIF(u.{c}, 'NaN')" if c in NULLABLE else f"u.{c}" for c in written]
    cursor.execute(
        f"UPDATE hardness AS h SET {', '.join(f'{c} = {v}' for c, v in zip(written, read, strict=True))}, "
        f"reasons = NULL, updated_at = now() FROM {RERANK_TABLE} AS u "
        f"WHERE h.item_id = u.item_id AND NOT u.is_new AND h.item_id BETWEEN {int(ids[0])} AND {int(ids[-1])} "
        f"AND ({', '.join(f'h.{c}' for c in written)}) IS DISTINCT FROM ({', '.join(read)})"
    )
    if not is_new.any():
        return 0
    inserted = cursor.execute(
        f"INSERT INTO hardness (item_id, project_id, {', '.join(written)}, box_disagreement, reasons, status, "
        f"annotation_count, skip_count, updated_at) SELECT u.item_id, %s, {', '.join(read)}, u.box_disagreement, "
        f"NULL, 'pending', 0, 0, now() FROM {RERANK_TABLE} AS u WHERE u.is_new "
        "ON CONFLICT (item_id) DO NOTHING",
        [project_id],
    )
    return max(inserted.rowcount or 0, 0)


# Other databases, and multiclass projects (class vectors live in JSON): predictions read as tuples per chunk.


def _rerank_generic(db_session: Session, project: Project, chunk: int) -> tuple[int, int]:
    created = enrol_missing_items(db_session=db_session, project=project)
    items, after = 0, 0
    while True:
        batch = db_session.execute(
            select(Hardness.item_id, Hardness.box_disagreement)
            .where(Hardness.project_id == project.id, Hardness.item_id > after)
            .order_by(Hardness.item_id)
            .limit(chunk)
        ).all()
        if not batch:
            break
        ids = np.array([row[0] for row in batch], dtype=np.int64)
        boxes = np.array([row[1] for row in batch], dtype=np.float64)
        rows = _fetch_predictions(db_session, project, ids.tolist())
        matrix, models, _, _ = _scatter(project, ids, rows)
        columns = measure_columns(project, rank(project, matrix, models, ids, boxes))
        write = _bulk_update_postgres if is_postgres(db_session) else _bulk_update_generic
        write(db_session, ids, columns)
        items += len(ids)
        after = int(ids[-1])
        db_session.commit()  # as on PostgreSQL: the chunk is served in its new order from now on
    return items, created


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
    """Multiclass on PostgreSQL: the chunk's measures through the binary COPY path of the binary projects."""
    raw = db_session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        _create_rerank_table(cursor)
        _write_rerank_chunk(cursor, 0, ids, columns, np.zeros(len(ids), dtype=bool))


def ranked_count(*, db_session: Session, project_id: int) -> int:
    return db_session.scalar(select(func.count()).where(Hardness.project_id == project_id)) or 0
