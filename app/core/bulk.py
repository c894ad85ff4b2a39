"""Bulk "insert, skip duplicates, return what was new" for both backends, from columns rather than row dicts.

On PostgreSQL the columns become one COPY text buffer (each column encoded by one comprehension, rows joined
in C) into a per-connection staging table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING:
the new rows' keys come back from the insert itself. Values that are the same for every row travel once, as
parameters of that INSERT. Elsewhere SQLAlchemy's multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING.

PostgreSQL's planner works from statistics that only ANALYZE refreshes (autovacuum may be off or late), so
`refresh_statistics` re-analyses a table once it has grown by a fifth since its last analysis (looked at no
more than once a second per process): a lookup planned from a 1,000-row snapshot of a 1M-row table scans
instead of probing an index.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import methodcaller
from typing import Any

from pydantic_core import to_json
from sqlalchemy import JSON, Boolean, DateTime, String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core.db import is_postgres

_PG = postgresql.dialect()
# COPY text format: backslash, newline, carriage return and tab are escaped; NULL is \N.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_NULL = "\\N"
# ANALYZE once a table grew by this fraction (plus a floor, in 8 kB pages) since its last analysis. The size
# comes from the file itself, not from the statistics collector, which lags behind by up to a few seconds.
ANALYZE_SCALE_FACTOR = 0.2
ANALYZE_THRESHOLD = 100
# ... checked at most this often per process and database: the check is a round trip and a commit, a tenth of
# a 1,000-item batch's time, while a table grows by a fifth in far more than a second of ingest.
ANALYZE_CHECK_INTERVAL_S = 1.0
_last_checked: dict[tuple[str, tuple[str, ...]], float] = {}


def insert_new_rows(
    session: Session,
    table: Table,
    columns: dict[str, list[Any]],
    *,
    constants: dict[str, Any],
    conflict: Sequence[str],
    returning: Sequence[str],
) -> list[tuple]:
    """Inserts the rows given column-wise (plus `constants`, the same for every row), skipping those that clash
    on `conflict`; returns the `returning` columns of the rows actually inserted."""
    if not columns or not len(next(iter(columns.values()))):
        return []
    constants = {**_python_defaults(table, {*columns, *constants}), **constants}
    if is_postgres(session):
        return _pg_copy_insert(session, table, columns, constants, conflict, returning)
    names = list(columns)
    rows = [
        dict(zip(names, values, strict=True)) | constants for values in zip(*columns.values(), strict=True)
    ]
    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    stmt = stmt.returning(*(table.c[name] for name in returning))
    return [tuple(row) for row in session.execute(stmt, rows).all()]


def _python_defaults(table: Table, given: set[str]) -> dict[str, Any]:
    """Client-side column defaults (e.g. created_at) evaluated once for the whole batch."""
    defaults = {}
    for column in table.columns:
        if column.name in given or column.default is None or (column.primary_key and column.autoincrement):
            continue
        arg = column.default.arg
        defaults[column.name] = arg(None) if callable(arg) else arg
    return defaults


def _pg_copy_insert(
    session: Session,
    table: Table,
    columns: dict[str, list[Any]],
    constants: dict[str, Any],
    conflict: Sequence[str],
    returning: Sequence[str],
) -> list[tuple]:
    names = list(columns)
    # One staging table per column set (CREATE TABLE AS copies no NOT NULL: constant columns stay out of it).
    stage = f"hc_stage_{table.name}_{hashlib.sha1(','.join(names).encode()).hexdigest()[:8]}"
    encoded = [_encode_column(table.c[name], values) for name, values in columns.items()]
    buffer = "\n".join(map("\t".join, zip(*encoded, strict=True))) + "\n"
    target = ", ".join([*names, *constants])
    casts = [f"%s::{table.c[name].type.compile(dialect=_PG)}" for name in constants]
    selected = ", ".join([*names, *casts])
    cursor = session.connection().connection.cursor()
    try:
        # One round trip for both (no parameters, so the simple protocol takes several statements).
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(names)} FROM {table.name} WITH NO DATA; DELETE FROM {stage}"
        )
        with cursor.copy(f"COPY {stage} ({', '.join(names)}) FROM STDIN") as copy:
            copy.write(buffer)
        cursor.execute(
            f"INSERT INTO {table.name} ({target}) SELECT {selected} FROM {stage} "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING {', '.join(returning)}",
            [_pg_parameter(table.c[name], value) for name, value in constants.items()],
        )
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _is_json(column) -> bool:
    return isinstance(column.type, JSON) or isinstance(column.type.dialect_impl(_PG), postgresql.JSONB)


def _pg_parameter(column, value: Any) -> Any:
    return to_json(value).decode() if value is not None and _is_json(column) else value


def _encode_column(column, values: list[Any]) -> list[str]:
    """One column's values in COPY text format (C-level where the column holds no NULL or only NULLs)."""
    nulls = values.count(None)
    if nulls == len(values):  # e.g. no image, no embedding in the whole batch
        return [_NULL] * nulls
    if _is_plain_string(column) and not _needs_escape("".join(v for v in values if v is not None)):
        # The usual case (ids, names, URLs): four C-level scans of the column instead of a translate per value.
        return [_NULL if value is None else value for value in values] if nulls else values
    encode = _encoder(column)
    if nulls:
        return [_NULL if value is None else encode(value) for value in values]
    return list(map(encode, values))


def _encoder(column) -> Callable[[Any], str]:
    if _is_json(column):
        return _encode_json
    if isinstance(column.type, Boolean):
        return {True: "t", False: "f"}.__getitem__
    if isinstance(column.type, DateTime):
        return datetime.isoformat
    if isinstance(column.type, String):
        return methodcaller("translate", _COPY_ESCAPES)
    return str


def _is_plain_string(column) -> bool:
    return isinstance(column.type, String) and not _is_json(column)


def _needs_escape(text: str) -> bool:
    return "\\" in text or "\n" in text or "\r" in text or "\t" in text


def _encode_json(value: Any) -> str:
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    # JSON text holds no raw newline, carriage return or tab (escaped inside strings): only \ needs doubling.
    text = to_json(value).decode()
    return text.replace("\\", "\\\\") if "\\" in text else text


def refresh_statistics(session: Session, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` that grew by more than a fifth since their last analysis; returns them.

    Run after the bulk load committed: ANALYZE then holds its lock only for itself, not for a request's
    transaction. No-op on SQLite (its planner needs no statistics for the lookups ingest does).
    """
    if not is_postgres(session):
        return []
    key = (session.get_bind().url.render_as_string(), tuple(tables))
    now = time.monotonic()
    if now - _last_checked.get(key, -math.inf) < ANALYZE_CHECK_INTERVAL_S:
        return []
    _last_checked[key] = now
    stale = [
        name
        for (name,) in session.connection().exec_driver_sql(
            "SELECT relname FROM pg_class WHERE oid = ANY(%(tables)s::regclass[]) "
            "AND pg_relation_size(oid) / current_setting('block_size')::int > %(floor)s + %(scale)s * relpages",
            {"tables": list(tables), "floor": ANALYZE_THRESHOLD, "scale": 1 + ANALYZE_SCALE_FACTOR},
        )
    ]
    for name in stale:
        session.connection().exec_driver_sql(f"ANALYZE {name}")
    session.commit()
    return stale
