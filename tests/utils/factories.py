"""Small factories for tests: projects, keys, images, prediction batches."""

from __future__ import annotations

import base64
import io

from PIL import Image
from sqlalchemy.orm import Session

from app.auth.keys import create_api_key
from app.projects.models import Project
from app.projects.schemas import ProjectCreate
from app.projects.service import create


def make_project(db: Session, name: str = "roadwork", **fields) -> Project:
    project = create(db_session=db, project_in=ProjectCreate(name=name, **fields))
    db.commit()
    return project


def make_key(db: Session, scopes: list[str] | None = None, project_id: int | None = None) -> str:
    _, secret = create_api_key(db_session=db, name="test", scopes=scopes, project_id=project_id)
    db.commit()
    return secret


def png_bytes(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 120, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def item(
    external_id: str, *, scores: dict[str, float] | None = None, image: dict | None = None, **metadata
) -> dict:
    scores = scores if scores is not None else {"det": 0.9, "clf": 0.2, "vlm": 0.6}
    return {
        "external_id": external_id,
        "image": image or {"url": f"https://cams.example/{external_id}.jpg"},
        "metadata": {"camera_id": "cam-1", "is_night": False, **metadata},
        "predictions": [{"model": m, "model_version": "1", "score": s} for m, s in scores.items()],
    }
