"""Per-process database access for tasks (created lazily, after the prefork fork)."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker


@lru_cache
def worker_sessionmaker() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(get_settings().resolved_database_url))


def worker_settings() -> Settings:
    return get_settings()
