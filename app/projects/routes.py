"""Project endpoints (service keys may read; creating projects is done by admins or the CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.auth import permissions as can
from app.core.errors import ApiError
from app.deps import ProjectDep, SessionDep
from app.projects import service
from app.projects.schemas import ProjectCreate, ProjectRead

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


@router.get("", response_model=list[ProjectRead])
def list_projects(session: SessionDep, caller: can.CatalogueReader) -> list[ProjectRead]:
    """The projects the caller may open (members see theirs, a project key its own, admins all)."""
    projects = can.visible_projects(db_session=session, caller=caller)
    return [ProjectRead.model_validate(p) for p in projects]


@router.get("/{project}", response_model=ProjectRead, dependencies=[Depends(can.read_project)])
def read_project(project: ProjectDep) -> ProjectRead:
    return ProjectRead.model_validate(project)


@router.post("", response_model=ProjectRead, status_code=201, dependencies=[Depends(can.admin)])
def create_project(project_in: ProjectCreate, session: SessionDep) -> ProjectRead:
    if service.get_by_name(db_session=session, name=project_in.name) is not None:
        raise ApiError(409, "name", f"project {project_in.name!r} exists")
    project = service.create(db_session=session, project_in=project_in)
    session.commit()
    return ProjectRead.model_validate(project)
