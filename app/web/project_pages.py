"""Pages for reviewers and admins beside the label page: the review screen, project creation and settings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.auth import permissions as can
from app.deps import ProjectDep, SessionDep
from app.projects.schemas import ProjectCreate
from app.projects.service import key_scheme
from app.users import service as user_service
from app.web.templating import render

router = APIRouter(include_in_schema=False)

STRATEGIES = ("hybrid", "uncertainty", "disagreement", "random")
KINDS = ("binary", "multiclass", "detection")


@router.get("/projects/{project}/review", response_class=HTMLResponse)
def review_page(request: Request, _reviewer: can.DashboardReviewer, project: ProjectDep) -> Response:
    return render(request, "review.html", project=project, keys=key_scheme(project))


@router.get("/admin/projects/new", response_class=HTMLResponse)
def new_project_page(request: Request, _admin: can.PageAdmin) -> Response:
    defaults = ProjectCreate(name="new-project")
    return render(
        request, "project_settings.html", project=None, defaults=defaults, kinds=KINDS, strategies=STRATEGIES
    )


@router.get("/projects/{project}/settings", response_class=HTMLResponse)
def settings_page(
    request: Request, _admin: can.PageAdmin, project: ProjectDep, session: SessionDep
) -> Response:
    members = user_service.members_of(db_session=session, project_id=project.id)
    member_ids = {m.id for m in members}
    others = [
        u for u in user_service.list_users(db_session=session) if u.id not in member_ids and u.is_active
    ]
    return render(
        request,
        "project_settings.html",
        project=project,
        defaults=project,
        kinds=KINDS,
        strategies=STRATEGIES,
        keys=key_scheme(project),
        members=members,
        candidates=others,
    )
