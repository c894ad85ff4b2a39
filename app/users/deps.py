"""Project-level permission dependencies: members only (admins see all), and session-or-read-key for images."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.models import ApiKey, User
from app.core.errors import ApiError
from app.deps import (
    BrowserSession,
    CurrentUser,
    ProjectDep,
    SessionDep,
    carries_api_key,
    require_api_key,
    require_role,
    user_of_session,
)
from app.users import service


def require_project_member(project: ProjectDep, user: CurrentUser, session: SessionDep) -> User:
    if not service.can_access_project(db_session=session, user=user, project_id=project.id):
        raise ApiError(403, "project", f"you are not assigned to project {project.name!r}")
    return user


ProjectMember = Annotated[User, Depends(require_project_member)]


def require_project_reviewer(
    member: ProjectMember, _reviewer: Annotated[User, Depends(require_role("reviewer"))]
) -> User:
    return member


ProjectReviewer = Annotated[User, Depends(require_project_reviewer)]

_read_key = require_api_key("read")


def require_project_reader(
    request: Request, project: ProjectDep, browser: BrowserSession, session: SessionDep
) -> User | ApiKey:
    """A service key with the `read` scope, or a logged-in member of the project."""
    if carries_api_key(request):
        return _read_key(request, session)
    return require_project_member(project, user_of_session(browser, session), session)


ProjectReader = Annotated[User | ApiKey, Depends(require_project_reader)]
