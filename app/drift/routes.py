"""Drift endpoint: latest checks and alarms, for a logged-in user or a service key with the read scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.auth.models import ApiKey, User
from app.deps import ProjectDep, SessionDep, get_current_user, require_api_key
from app.drift import service
from app.drift.schemas import DriftCheckRead, DriftReport

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["drift"])
_read_key = require_api_key("read")


async def user_or_read_key(request: Request, session: SessionDep) -> User | ApiKey:
    """A browser session when one is present, otherwise a service key with the read scope."""
    if request.headers.get("x-api-key") or request.headers.get("authorization"):
        return _read_key(request, session)
    return await get_current_user(request, session, request.app.state.settings)


Reader = Annotated[User | ApiKey, Depends(user_or_read_key)]


@router.get("/drift", response_model=DriftReport)
def read_drift(
    project: ProjectDep,
    session: SessionDep,
    _reader: Reader,
    history: Annotated[int, Query(ge=0, le=500, description="how many past checks to list")] = 50,
) -> DriftReport:
    latest = service.latest_checks(db_session=session, project=project)
    past = service.recent_checks(db_session=session, project=project, limit=history) if history else []
    return DriftReport(
        project=project.name,
        latest=[DriftCheckRead.model_validate(c) for c in latest],
        alarms=[DriftCheckRead.model_validate(c) for c in latest if c.is_drift],
        history=[DriftCheckRead.model_validate(c) for c in past],
    )
