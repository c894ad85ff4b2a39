"""`hardcase demo` leaves a project that every demo account can label at once, ranked hardest first."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.models import ApiKey
from app.auth.users import get_by_username
from app.demo import seed_demo
from app.ingest.models import Item, Prediction
from app.projects.service import get_by_name
from app.queue.models import Hardness
from app.users.service import visible_projects


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_project_is_ranked_and_open_to_every_demo_account(settings, db):
    seed_demo(settings, limit=12)
    seed_demo(settings, limit=12)  # idempotent: a second run adds nothing
    project = get_by_name(db_session=db, name="roadwork")
    assert db.scalar(select(func.count()).select_from(Item)) == 12
    assert db.scalar(select(func.count()).select_from(Prediction)) == 36
    assert db.scalar(select(func.count()).select_from(Hardness).where(Hardness.status == "pending")) == 12
    assert db.scalar(select(func.count()).select_from(Item).where(Item.sha256.is_(None))) == 0
    for username in ("admin", "reviewer", "annotator"):
        user = get_by_username(db_session=db, username=username)
        assert project in visible_projects(db_session=db, user=user), username


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_key_can_ingest_read_and_pull_models(settings, db, capsys):
    seed_demo(settings, limit=2)
    assert "cascade API key (ingest, read, models" in capsys.readouterr().out
    assert sorted(db.scalar(select(ApiKey.scopes))) == ["ingest", "models", "read"]
