"""Dependencies as annotated aliases: routes read like their signature."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from app.auth import keys as key_service
from app.auth.models import ApiKey, User
from app.auth.sessions import SessionData, csrf_ok, load_session_user, read_session
from app.core.blobs import BlobStore
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.projects import service as project_service
from app.projects.models import Project


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()


def get_blobs(request: Request) -> BlobStore:
    return request.app.state.blobs


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


def get_project(session: SessionDep, project: Annotated[str, Path(description="project name")]) -> Project:
    found = project_service.get_by_name(db_session=session, name=project)
    if found is None:
        raise ApiError(404, "project", f"unknown project {project!r}")
    return found


ProjectDep = Annotated[Project, Depends(get_project)]


def carries_api_key(request: Request) -> bool:
    return _secret_from(request) is not None


def _secret_from(request: Request) -> str | None:
    header = request.headers.get("x-api-key")
    if header:
        return header
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


KEY_USE_RESOLUTION = timedelta(minutes=1)


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def require_api_key(scope: str):
    """A dependency factory: the request must carry an active key with `scope` (and for this project)."""

    def dependency(request: Request, session: SessionDep) -> ApiKey:
        secret = _secret_from(request)
        if not secret:
            raise ApiError(401, "X-API-Key", "an API key is required (X-API-Key or Authorization: Bearer)")
        key = key_service.find_active_key(db_session=session, secret=secret)
        if key is None:
            raise ApiError(401, "X-API-Key", "unknown or revoked API key")
        if scope not in key.scopes:
            raise ApiError(403, "X-API-Key", f"this key lacks the {scope!r} scope")
        project_name = request.path_params.get("project")
        if key.project_id is not None and project_name is not None:
            project = project_service.get_by_name(db_session=session, name=project_name)
            if project is not None and project.id != key.project_id:
                raise ApiError(403, "X-API-Key", "this key is scoped to another project")
        now = utcnow()
        if key.last_used_at is None or _as_utc(key.last_used_at) < now - KEY_USE_RESOLUTION:
            key.last_used_at = now  # a write per minute, not per request
        session.commit()  # also ends the transaction before the route reads the request body
        return key

    return dependency


IngestKey = Annotated[ApiKey, Depends(require_api_key("ingest"))]
ReadKey = Annotated[ApiKey, Depends(require_api_key("read"))]


# --- browser users -----------------------------------------------------------------------------------------

ROLE_RANK = {"annotator": 0, "reviewer": 1, "admin": 2}


async def read_checked_session(request: Request, settings: SettingsDep) -> SessionData | None:
    """The browser session (None without one), CSRF-checked on unsafe methods.

    No database access here: checking a form's CSRF field awaits the body, and on SQLite a transaction held
    across that await would block every other writer. The user is loaded afterwards, in a sync dependency.
    """
    data = read_session(request, settings.secret_key)
    if data is None:
        return None
    if not await csrf_ok(request, data):
        raise ApiError(403, "csrf_token", "missing or wrong CSRF token")
    request.state.csrf = data.csrf
    return data


BrowserSession = Annotated[SessionData | None, Depends(read_checked_session)]


def user_of_session(data: SessionData | None, session: Session) -> User:
    user = load_session_user(db_session=session, data=data) if data else None
    if user is None:  # no cookie, or its session was logged out, revoked, expired or the user deactivated
        raise ApiError(401, "session", "log in first")
    return user


def get_current_user(browser: BrowserSession, session: SessionDep) -> User:
    return user_of_session(browser, session)


CurrentUser = Annotated[User, Depends(get_current_user)]


def ensure_role(user: User, role: str) -> User:
    """The user must hold `role` or a higher one (annotator < reviewer < admin)."""
    if ROLE_RANK[user.role] < ROLE_RANK[role]:
        raise ApiError(403, "role", f"this needs the {role} role")
    return user


def require_role(role: str):
    """A dependency: the logged-in user must hold `role` or a higher one."""

    def dependency(user: CurrentUser) -> User:
        return ensure_role(user, role)

    return dependency


ReviewerUser = Annotated[User, Depends(require_role("reviewer"))]
AdminUser = Annotated[User, Depends(require_role("admin"))]
