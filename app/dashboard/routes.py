"""Dashboard pages (server-rendered; the live parts poll the JSON APIs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from app.auth.models import User
from app.dashboard import charts
from app.dashboard.overview import project_overview
from app.deps import ProjectDep, SessionDep
from app.drift import service as drift_service
from app.web.deps import require_page_role
from app.web.templating import render

router = APIRouter(include_in_schema=False)

# Annotators label; the dashboard (jobs, models, datasets, drift) is for reviewers and admins.
PageReviewer = Annotated[User, Depends(require_page_role("reviewer"))]


@router.get("/projects/{project}", response_class=HTMLResponse)
def overview_page(request: Request, user: PageReviewer, project: ProjectDep, session: SessionDep) -> Response:
    overview = project_overview(db_session=session, project=project)
    return render(
        request,
        "dashboard/overview.html",
        project=project,
        overview=overview,
        alarms=drift_service.drift_alarms(db_session=session, project=project),
        drift=drift_service.latest_checks(db_session=session, project=project),
        throughput_chart=charts.throughput_chart(overview.throughput),
        balance_chart=charts.balance_chart(overview.label_balance),
    )
