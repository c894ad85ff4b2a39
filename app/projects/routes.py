"""Project endpoints (service keys may read; creating projects is done by admins or the CLI)."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ProjectDep, ReadKey, SessionDep
from app.projects import service
from app.projects.schemas import ProjectRead

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


@router.get("", response_model=list[ProjectRead])
def list_projects(session: SessionDep, _key: ReadKey) -> list[ProjectRead]:
    return [ProjectRead.model_validate(p) for p in service.list_projects(db_session=session)]


@router.get("/{project}", response_model=ProjectRead)
def read_project(project: ProjectDep, _key: ReadKey) -> ProjectRead:
    return ProjectRead.model_validate(project)
