"""Engine and session factory for SQLite (embedded) and PostgreSQL (production): one code path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from pydantic import Field
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Ids are PostgreSQL integers: a number beyond that range can only name nothing, so a request carrying one gets a
# 422 naming the field instead of a driver error.
INT4_MAX = 2**31 - 1
DbId = Annotated[int, Field(ge=1, le=INT4_MAX)]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL, JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict: JsonType, list: JsonType}


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, *, sqlite_immediate: bool = True) -> Engine:
    """`sqlite_immediate`: every transaction takes SQLite's write lock up front (BEGIN IMMEDIATE), so
    concurrent writers queue on busy_timeout instead of failing when a read transaction turns into a write.
    Observers that only read (tests, reports) pass False so they never hold the write lock."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if sqlite_immediate else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    # A host that drops packets must end in a quick 503, not a request held until the TCP timeout.
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
    event.listen(engine, "connect", _fast_json_loads)
    _ping_connections_that_sat_idle(engine)
    return engine


# A pooled connection unused for this long is pinged before it is handed out, and replaced if the ping fails
# (a database restart, a dropped link). One that served a request within this time is handed out as it is:
# pinging every checkout was a round trip and 0.3 ms of every request. If such a connection died in that
# second, the one request that takes it gets a 503 (nothing acknowledged is lost), and SQLAlchemy then
# replaces every older connection of the pool at its next checkout.
PING_IF_IDLE_S = 1.0
_IDLE_SINCE = "hardcase.idle_since"


def _ping_connections_that_sat_idle(engine: Engine) -> None:
    def stamp(dbapi_conn, record, *_args) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def ping_if_idle(dbapi_conn, record, _proxy) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) < PING_IF_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection failed its ping") from exc  # the pool reconnects

    event.listen(engine, "connect", stamp)
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", ping_if_idle)


def json_loads(data: str | bytes) -> Any:
    """JSON as json.loads reads it, by msgspec where it can (5× faster: exports read every item's boxes and
    metadata); a number beyond float range (PostgreSQL's jsonb holds any numeric) goes to json.loads."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


def _fast_json_loads(dbapi_conn, _record) -> None:
    from psycopg.types.json import set_json_loads

    set_json_loads(json_loads, dbapi_conn)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # autocommit at the driver; transactions come from the "begin" hook
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for workers and the CLI: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


def commit_soft_state(db_session: Session) -> None:
    """Commits a transaction that changed only soft state (leases, skips, serving cursors) without waiting
    for PostgreSQL's WAL flush: the flush is ~4 ms of fdatasync per commit on this kind of disk, most of a
    lease. A database crash may forget such changes from its last fraction of a second (3 × wal_writer_delay);
    a forgotten lease sends its item back to the pool, as expiry would. Labels, ingest and jobs always
    commit durably, and a crash of the API or a dropped connection loses nothing either way."""
    if is_postgres(db_session):
        db_session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    db_session.commit()
