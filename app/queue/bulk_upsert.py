"""Hardness rows written in one statement: PostgreSQL `INSERT ... SELECT FROM unnest ... ON CONFLICT DO UPDATE`,
SQLAlchemy's multi-row upsert elsewhere. Queue state (status, lease, counts) is never touched on conflict."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from app.core.db import is_postgres, utcnow
from app.queue.models import Hardness

# Measures that may be undefined (NaN in the arrays, NULL in the table).
NULLABLE_MEASURES = (
    "mean_score",
    "entropy",
    "margin",
    "disagreement",
    "threshold_distance",
    "vote_ratio",
    "score_std",
)
FLOAT_COLUMNS = ("priority", *NULLABLE_MEASURES, "box_disagreement")
WRITTEN = (*FLOAT_COLUMNS, "n_models", "likely_positive")


def upsert_hardness(
    db_session: Session, project_id: int, item_ids: np.ndarray, columns: dict[str, np.ndarray]
) -> None:
    """Inserts or refreshes the measures of these items; stored reasons are cleared (built when shown)."""
    if not len(item_ids):
        return
    write = _upsert_postgres if is_postgres(db_session) else _upsert_generic
    write(db_session, project_id, np.asarray(item_ids, dtype=np.int64), columns)


def _upsert_postgres(
    db_session: Session, project_id: int, item_ids: np.ndarray, columns: dict[str, np.ndarray]
) -> None:
    from app.core.pg_binary import binary_cursor, pg_array

    # NaN travels inside float8[] and becomes NULL here: no per-value Python conversion.
    selects = ["u.item_id", "%s::int"]
    selects += [f"NULLIF(u.{c}, 'NaN')" if c in NULLABLE_MEASURES else f"u.{c}" for c in FLOAT_COLUMNS]
    selects += ["u.n_models", "u.likely_positive", "NULL", "'pending'", "0", "0", "now()"]
    arrays = ", ".join(["%s"] * (len(WRITTEN) + 1))
    refreshed = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*WRITTEN, "reasons", "updated_at"))
    sql = (
        f"INSERT INTO hardness (item_id, project_id, {', '.join(WRITTEN)}, reasons, status, annotation_count, "
        f"skip_count, updated_at) SELECT {', '.join(selects)} FROM unnest({arrays}) "
        f"AS u(item_id, {', '.join(WRITTEN)}) ON CONFLICT (item_id) DO UPDATE SET {refreshed}"
    )
    params: list[Any] = [project_id, pg_array(item_ids, "int8")]
    params += [pg_array(np.asarray(columns[c], dtype=np.float64), "float8") for c in FLOAT_COLUMNS]
    params += [pg_array(columns["n_models"], "int8"), pg_array(columns["likely_positive"], "bool")]
    with binary_cursor(db_session.connection().connection.driver_connection) as cursor:
        cursor.execute(sql, params)


def _column_values(name: str, values: np.ndarray) -> list[Any]:
    if name == "n_models":
        return np.asarray(values, dtype=np.int64).tolist()
    if name == "likely_positive":
        return np.asarray(values, dtype=bool).tolist()
    floats = np.asarray(values, dtype=np.float64)
    listed = floats.tolist()
    if name in NULLABLE_MEASURES:
        for i in np.flatnonzero(~np.isfinite(floats)).tolist():
            listed[i] = None
    return listed


def _upsert_generic(
    db_session: Session, project_id: int, item_ids: np.ndarray, columns: dict[str, np.ndarray]
) -> None:
    lists = {c: _column_values(c, columns[c]) for c in WRITTEN}
    now = utcnow()
    rows = [
        {"item_id": item_id, "project_id": project_id, "reasons": None, "updated_at": now}
        | {c: lists[c][i] for c in WRITTEN}
        for i, item_id in enumerate(item_ids.tolist())
    ]
    stmt = sqlite.insert(Hardness)
    stmt = stmt.on_conflict_do_update(
        index_elements=["item_id"],
        set_={c: getattr(stmt.excluded, c) for c in (*WRITTEN, "reasons", "updated_at")},
    )
    db_session.execute(stmt, rows)
