"""Project service functions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.projects.models import Project
from app.projects.schemas import ProjectCreate, ProjectUpdate


def get_by_name(*, db_session: Session, name: str) -> Project | None:
    return db_session.scalar(select(Project).where(Project.name == name))


def list_projects(*, db_session: Session) -> list[Project]:
    return list(db_session.scalars(select(Project).order_by(Project.id)))


def create(*, db_session: Session, project_in: ProjectCreate) -> Project:
    project = Project(**project_in.model_dump())
    db_session.add(project)
    db_session.flush()
    return project


def get_or_create(*, db_session: Session, project_in: ProjectCreate) -> Project:
    return get_by_name(db_session=db_session, name=project_in.name) or create(
        db_session=db_session, project_in=project_in
    )


def update(*, db_session: Session, project: Project, project_in: ProjectUpdate) -> Project:
    for field, value in project_in.model_dump(exclude_unset=True).items():
        setattr(project, field, value)
    db_session.flush()
    return project


# --- the label page's keys ----------------------------------------------------------------------------------

ANSWER_KEYS = "123456789"
# Letters only, never digits, and none of the page's action keys (A accept all, S skip, U undo, F flag,
# Y/N yes/no, D delete), so a key means one thing whether or not a box is selected.
BOX_CLASS_KEYS = "qwertiopghjklzxcvbm"
ACTION_KEYS = {
    "skip": "s",
    "undo": "u",
    "flag": "f",
    "accept_all": "a",
    "delete_box": "d",
    "help": "?",
    "zoom_in": "+",
    "zoom_out": "-",
    "zoom_reset": "0",
}


def takes_boxes(project: Project) -> bool:
    """Detection projects, and binary projects whose yes is justified by boxes of declared classes."""
    return project.kind == "detection" or (project.kind == "binary" and bool(project.box_classes))


def key_scheme(project: Project) -> dict[str, Any]:
    """The one key map of a project's label page (derived, never stored): answers take digits 1..9 in class
    order (binary also Y/N), box classes take letters. The label page, its help and the settings UI show it."""
    if project.kind in ("binary", "detection"):
        answers = [
            {"label": 0, "name": "No", "class_name": project.classes[0], "keys": ["n", "1"]},
            {"label": 1, "name": "Yes", "class_name": project.classes[1], "keys": ["y", "2"]},
        ]
    elif project.kind == "multiclass":
        answers = [
            {"label": i, "name": name, "class_name": name, "keys": list(ANSWER_KEYS[i : i + 1])}
            for i, name in enumerate(project.classes)
        ]
    else:
        answers = []
    boxes = takes_boxes(project)
    box_classes = [
        {"index": i, "name": name, "key": BOX_CLASS_KEYS[i] if i < len(BOX_CLASS_KEYS) else None}
        for i, name in enumerate(project.box_classes if boxes else [])
    ]
    return {"answers": answers, "boxes": boxes, "box_classes": box_classes, "actions": dict(ACTION_KEYS)}
