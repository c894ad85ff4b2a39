"""Bulk "insert, ignore duplicates, tell me what was new" for both backends.

On PostgreSQL one statement carries every row as arrays (`INSERT ... SELECT FROM unnest(...)`): a few
parameters instead of thousands, so psycopg need not parse a giant VALUES list. Elsewhere SQLAlchemy's
multi-row INSERT ... ON CONFLICT DO NOTHING does the same job.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Table, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_PG = postgresql.dialect()


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: list[dict[str, Any]], conflict: list[str], returning: str
) -> list[Any]:
    """Inserts rows, skipping those that clash on `conflict`; returns `returning` of the rows inserted."""
    if not rows:
        return []
    rows = _with_python_defaults(table, rows)
    if session.get_bind().dialect.name == "postgresql":
        return _pg_unnest_insert(session, table, rows, conflict, returning)
    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return list(session.execute(stmt.returning(table.c[returning]), rows).scalars().all())


def _with_python_defaults(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    columns = [c for c in table.columns if not (c.primary_key and c.autoincrement)]
    defaults = {}
    for column in columns:
        if column.default is None or column.name in rows[0]:
            continue
        arg = column.default.arg
        defaults[column.name] = arg(None) if callable(arg) else arg
    return [{**defaults, **row} for row in rows] if defaults else rows


def _is_json(column) -> bool:
    return isinstance(column.type, JSON) or isinstance(column.type.dialect_impl(_PG), postgresql.JSONB)


def _pg_unnest_insert(
    session: Session, table: Table, rows: list[dict[str, Any]], conflict: list[str], returning: str
) -> list[Any]:
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    params, selects, unnests = {}, [], []
    for i, column in enumerate(columns):
        values = [row[column.name] for row in rows]
        if _is_json(column):
            params[f"p{i}"] = [None if v is None else json.dumps(v) for v in values]
            unnests.append(f"CAST(:p{i} AS TEXT[])")
            selects.append(f"CAST(c{i} AS JSONB)")
        else:
            params[f"p{i}"] = values
            unnests.append(f"CAST(:p{i} AS {column.type.compile(dialect=_PG)}[])")
            selects.append(f"c{i}")
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(unnests)}) AS t({aliases}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING {returning}"
    )
    stmt = text(sql).bindparams(*[bindparam(k) for k in params])
    return list(session.execute(stmt, params).scalars().all())
