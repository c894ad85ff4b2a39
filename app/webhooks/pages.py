"""The project's webhooks page (admins): endpoints, a "send test event" button and the delivery log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.auth import permissions as can
from app.deps import ProjectDep, SessionDep
from app.web.templating import render
from app.webhooks import service
from app.webhooks.models import EVENTS

router = APIRouter(include_in_schema=False)


@router.get("/projects/{project}/webhooks", response_class=HTMLResponse)
def webhooks_page(
    request: Request, _admin: can.PageAdmin, project: ProjectDep, session: SessionDep
) -> Response:
    endpoints = [
        service.endpoint_read(e) for e in service.list_endpoints(db_session=session, project=project)
    ]
    deliveries = service.list_deliveries(db_session=session, project=project, limit=20)
    return render(
        request, "webhooks.html", project=project, webhooks=endpoints, deliveries=deliveries, events=EVENTS
    )
