"""Dependencies as annotated aliases: routes read like their signature."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth import keys as key_service
from app.auth.models import ApiKey, User
from app.auth.sessions import SessionData, csrf_ok, load_session_user, read_session
from app.core.blobs import BlobStore
from app.core.config import Settings
from app.core.db import INT4_MAX, utcnow
from app.core.errors import ApiError
from app.projects import service as project_service
from app.projects.models import Project


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. Async: making a session and closing one that holds no connection touch no
    database, and as a sync dependency each cost a hand-off to a worker thread and back; closing one that
    still holds a transaction (a rollback) runs on a worker thread, off the event loop."""
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_blobs(request: Request) -> BlobStore:
    return request.app.state.blobs


# Bounded integers for ids, versions, offsets and limits (see `DbId`).
IdPath = Annotated[int, Path(ge=1, le=INT4_MAX)]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=INT4_MAX)]
OffsetQuery = Annotated[int, Query(ge=0, le=INT4_MAX)]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


LOCATED_PROJECT = "hardcase.located_project"


def remember_located_project(session: Session, project: Project | None) -> None:
    """The access rule already loaded the route's project: `get_project` reuses it (one query less a request)."""
    session.info[LOCATED_PROJECT] = project


async def get_project(
    session: SessionDep, project: Annotated[str, Path(description="project name")]
) -> Project:
    """The route's project. Async: the access rule has located it already on every project route, and a sync
    dependency would cost a hand-off to a worker thread and back for a dictionary lookup."""
    located = session.info.get(LOCATED_PROJECT)
    found = located if located is not None and located.name == project else None
    if found is None:
        found = await run_in_threadpool(project_service.get_by_name, db_session=session, name=project)
    if found is None:
        raise ApiError(404, "project", f"unknown project {project!r}")
    return found


ProjectDep = Annotated[Project, Depends(get_project)]


def carries_api_key(request: Request, basic: bool = False) -> bool:
    return _secret_from(request, basic) is not None


def _secret_from(request: Request, basic: bool = False) -> str | None:
    """The key from X-API-Key or a bearer token; with `basic`, also HTTP Basic auth (the password, else the
    user name), which is all Label Studio can send to an ML backend."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    auth = request.headers.get("authorization", "")
    if basic and auth.lower().startswith("basic "):
        return _basic_auth_secret(auth[6:])
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _basic_auth_secret(encoded: str) -> str:
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return password or user


KEY_USE_RESOLUTION = timedelta(minutes=1)


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def authenticated_key(request: Request, session: Session, basic: bool = False) -> ApiKey:
    """The active key the request carries (401 otherwise); what it may do is app/auth/permissions' decision."""
    secret = _secret_from(request, basic)
    if not secret:
        raise ApiError(401, "X-API-Key", "an API key is required (X-API-Key or Authorization: Bearer)")
    key = key_service.find_active_key(db_session=session, secret=secret)
    if key is None:
        raise ApiError(401, "X-API-Key", "unknown or revoked API key")
    now = utcnow()
    if key.last_used_at is None or _as_utc(key.last_used_at) < now - KEY_USE_RESOLUTION:
        key.last_used_at = now  # a write per minute, not per request; the access rule commits it
    return key


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
