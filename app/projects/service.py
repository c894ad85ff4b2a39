"""Project service functions."""

from __future__ import annotations

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
