"""Test data and sessions for the dataset, job and registry tests: real roadwork photos as labeled items, logged-in clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.auth.models import User
from app.auth.sessions import SESSION_COOKIE, start_session
from app.core.blobs import BlobStore, blob_uri, sha_from_uri
from app.ingest.models import Item, Prediction
from app.labels.models import Annotation, Review
from app.projects.models import Project
from app.registry.models import HoldoutScore
from app.users.models import ProjectMember
from ml.sample_data import roadwork_pool

START = datetime(2026, 6, 1, tzinfo=UTC)
CAMERAS = ("cam-a", "cam-b", "cam-c")


def balanced_photos(n: int, seed: int = 0) -> list[dict]:
    """n real photos, half with roadwork, always including the non-road negatives and night frames."""
    pool, _ = roadwork_pool()
    rng = np.random.default_rng(seed)
    positives = [p for p in pool if p["label"] == 1]
    negatives = [p for p in pool if p["label"] == 0]
    pos = [positives[i] for i in rng.permutation(len(positives))[: n // 2]]
    neg = [negatives[i] for i in rng.permutation(len(negatives))[: n - n // 2]]
    mixed = pos + neg
    return [mixed[i] for i in rng.permutation(len(mixed))]


def seed_labeled_items(
    db: Session,
    blobs: BlobStore,
    project: Project,
    annotator: User,
    n: int = 40,
    *,
    start_index: int = 0,
    seed: int = 0,
    url_only: int = 0,
    reviewer: User | None = None,
) -> list[Item]:
    """Items with stored photos, three cascade predictions and one human label each (overlap 1 = consensus).

    `url_only` more items carry only an image URL (never fetched); with `reviewer`, labels are reviews.
    """
    rng = np.random.default_rng(seed + 1000)
    items = []
    for offset, photo in enumerate(balanced_photos(n, seed)):
        index = start_index + offset
        sha = blobs.put(photo["image"].read_bytes())
        items.append(_item(db, project, index, photo, blob_uri(sha), rng))
    for offset in range(url_only):
        photo = {"label": offset % 2, "boxes": [], "is_night": False}
        items.append(
            _item(db, project, start_index + n + offset, photo, f"https://cams.example/{offset}.jpg", rng)
        )
    db.flush()
    for item, label in zip(items, [it.meta["truth"] for it in items], strict=True):
        if reviewer is not None:
            db.add(Review(item_id=item.id, project_id=project.id, reviewer_id=reviewer.id, label=label))
        else:
            db.add(Annotation(item_id=item.id, project_id=project.id, annotator_id=annotator.id, label=label))
    db.commit()
    return items


def _item(db: Session, project: Project, index: int, photo: dict, uri: str, rng: np.random.Generator) -> Item:
    item = Item(
        project_id=project.id,
        external_id=f"photo-{index}",
        image_uri=uri,
        captured_at=START + timedelta(hours=index),
        camera_id=CAMERAS[index % len(CAMERAS)],
        is_night=bool(photo["is_night"]),
        meta={"truth": int(photo["label"]), "road": "A1" if index % 2 else "B7"},
    )
    db.add(item)
    db.flush()
    for model, skill in (("yolo", 2.0), ("vlm", 1.2), ("clf", 0.8)):
        logit = skill * (1 if photo["label"] else -1) + rng.normal(0, 1.5)
        db.add(
            Prediction(
                item_id=item.id,
                project_id=project.id,
                model=model,
                model_version="1",
                score=float(1 / (1 + np.exp(-logit))),
                boxes=[],
            )
        )
    return item


def client_as(
    app, db: Session, role: str, username: str | None = None, project: Project | None = None
) -> tuple[TestClient, User]:
    """A TestClient with a browser session of a fresh user with `role` (and the user), a member of `project`.

    The session cookie is minted directly: logging in through the form costs two Argon2 hashes per user.
    """
    user = User(username=username or f"{role}-user", password_hash="!no-password-login", role=role)
    db.add(user)
    db.flush()
    if project is not None:
        db.add(ProjectMember(project_id=project.id, user_id=user.id))
    db.commit()
    response = Response()
    session = start_session(
        response, db_session=db, secret_key=app.state.settings.secret_key, user_id=user.id, secure=False
    )
    db.commit()
    cookie = SimpleCookie(response.headers["set-cookie"])[SESSION_COOKIE].value
    client = TestClient(app)
    client.cookies.set(SESSION_COOKIE, cookie)
    client.headers["X-CSRF-Token"] = session.csrf
    return client, user


def stored_holdout(sessions, blobs: BlobStore, model_version_id: int, column: str = "score") -> list[tuple]:
    """(image path, stored value) per holdout item of a registry version: `score`, or `probs` (multiclass)."""
    with sessions() as session:
        rows = session.execute(
            select(Item.image_uri, getattr(HoldoutScore, column))
            .join(HoldoutScore, HoldoutScore.item_id == Item.id)
            .where(HoldoutScore.model_version_id == model_version_id)
        ).all()
    return [(str(blobs.path_for(sha_from_uri(uri))), value) for uri, value in rows]
