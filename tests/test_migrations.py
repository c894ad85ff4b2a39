"""Alembic migrations build the whole schema from an empty database, and match the models exactly."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from app.core.db import make_engine
from app.core.migrate import check, upgrade
from app.models import Base
from tests.conftest import PG_ADMIN_URL, _create_pg_database, _drop_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path, postgres_admin_url):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = _create_pg_database(postgres_admin_url)
    yield url
    _drop_pg_database(PG_ADMIN_URL, url)


def test_upgrade_from_empty_creates_every_table_and_matches_the_models(empty_database):
    upgrade(empty_database)
    engine = make_engine(empty_database)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    check(empty_database)  # raises if autogenerate would still find differences
