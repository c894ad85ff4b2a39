"""Accounts, logged-in clients and seeded items for the queue, labels, review and users tests."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.models import User
from app.auth.users import create_user
from app.ingest.models import Item
from app.projects.models import Project
from app.users.service import add_member
from tests.utils.factories import item, make_key, make_project

PASSWORD = "pw-secret"


def make_user(db, username: str, role: str = "annotator", project: Project | None = None) -> User:
    user = create_user(db_session=db, username=username, password=PASSWORD, role=role)
    if project is not None:
        add_member(db_session=db, project_id=project.id, user_id=user.id)
    db.commit()
    return user


def logged_in(app, username: str, password: str = PASSWORD) -> TestClient:
    """A client with its own cookie jar, logged in, sending the CSRF header on every request."""
    client = TestClient(app)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def seed_project(db, client, scores: dict[str, dict[str, float]], **project_fields) -> tuple[Project, str]:
    """A project whose items carry the given per-model scores, ingested through the API (ranked on ingest)."""
    project = make_project(db, **project_fields)
    key = make_key(db)
    batch = {"items": [item(external_id, scores=s) for external_id, s in scores.items()]}
    response = client.post(
        f"/api/v1/projects/{project.name}/predictions", json=batch, headers={"X-API-Key": key}
    )
    assert response.status_code == 201, response.text
    return project, key


def item_ids(db, project: Project) -> dict[str, int]:
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    ids = dict(
        db.execute(select(Item.external_id, Item.id).where(Item.project_id == project.id)).tuples().all()
    )
    db.commit()  # SQLite: a reading test session must not keep the write lock the app needs
    return ids


def spread_scores(n: int) -> dict[str, dict[str, float]]:
    """n items whose hardness falls with the index: item-0 sits on the threshold, later ones are confident."""
    return {
        f"item-{i}": {"det": 0.5 + 0.45 * i / max(n - 1, 1), "clf": 0.5 + 0.45 * i / max(n - 1, 1)}
        for i in range(n)
    }
