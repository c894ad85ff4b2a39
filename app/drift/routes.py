"""Drift endpoint: latest checks and alarms, for a logged-in user or a service key with the read scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.auth import permissions as can
from app.deps import ProjectDep, SessionDep
from app.drift import service
from app.drift.schemas import DriftCheckRead, DriftReport

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["drift"])


@router.get("/drift", response_model=DriftReport, dependencies=[Depends(can.read_project)])
def read_drift(
    project: ProjectDep,
    session: SessionDep,
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
