"""Periodic drift checks (cpu queue): alibi-detect runs here, never in the web process."""

from __future__ import annotations

import logging
from typing import Any

from app.core.db import session_scope
from app.drift import service
from app.drift.config import DriftSettings
from app.projects import service as project_service
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker

log = logging.getLogger("hardcase.drift")


def run_drift_checks(
    *, sessions, project: str | None = None, overrides: dict[str, Any] | None = None
) -> dict:
    """Checks one project (or all), commits the stored checks and returns a summary."""
    settings = DriftSettings(**(overrides or {}))
    with session_scope(sessions) as session:
        if project is None:
            checks = service.check_all_projects(db_session=session, settings=settings)
        else:
            found = project_service.get_by_name(db_session=session, name=project)
            if found is None:
                raise ValueError(f"project: unknown project {project!r}")
            checks = service.check_project(db_session=session, project=found, settings=settings)
        alarms = [f"{c.model}/{c.kind} p={c.p_value:.3g}" for c in checks if c.is_drift]
        summary = {"checks": len(checks), "alarms": alarms}
    if alarms:
        log.warning("drift alarms: %s", ", ".join(alarms))
    return summary


@celery_app.task(name="hardcase.check_drift", ignore_result=False)
def check_drift(project: str | None = None, overrides: dict[str, Any] | None = None) -> dict:
    return run_drift_checks(sessions=worker_sessionmaker(), project=project, overrides=overrides)
