"""Server-rendered pages: log in and out, the project list and the label page."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from app.auth import permissions as can
from app.auth.sessions import end_session, load_session_user, read_session, start_session
from app.auth.throttle import LoginThrottled, login_attempt
from app.deps import BrowserSession, ProjectDep, SessionDep, SettingsDep
from app.ingest.models import Item
from app.projects import service as project_service
from app.projects.markdown import render_markdown
from app.users import service as user_service
from app.web.templating import render

router = APIRouter(include_in_schema=False)

# Login CSRF guard: the form must echo a random token that only our own /login page put in a cookie.
LOGIN_COOKIE = "hc_login"


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after login would hand phishers a trusted link."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, *, next_url: str, error: str = "", username: str = "", status: int = 200):
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status_code=status,
        next_url=next_url,
        login_token=token,
        error=error,
        username=username,
    )
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/login")
    return response


@router.get("/login", response_class=HTMLResponse, dependencies=[Depends(can.public)])
def login_form(request: Request, settings: SettingsDep, session: SessionDep, next: str = "/") -> Response:
    data = read_session(request, settings.secret_key)
    if data is not None and load_session_user(db_session=session, data=data) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_url=safe_next(next))


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(can.public)])
def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    login_token: Annotated[str, Form()] = "",
) -> Response:
    next_url = safe_next(next)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, login_token):
        return _login_page(
            request, next_url=next_url, username=username, status=400, error="The form expired; try again."
        )
    try:
        user = login_attempt(
            db_session=session,
            username=username.strip(),
            password=password,
            client_ip=request.client.host if request.client else "",
        )
    except LoginThrottled as exc:
        return _login_page(
            request,
            next_url=next_url,
            username=username,
            status=429,
            error=f"Too many failed attempts. Try again in {exc.retry_after_s} seconds.",
        )
    if user is None:
        return _login_page(
            request, next_url=next_url, username=username, status=401, error="Wrong username or password."
        )
    response = RedirectResponse(next_url, status_code=303)
    start_session(
        response,
        db_session=session,
        secret_key=settings.secret_key,
        user_id=user.id,
        secure=settings.secure_cookies,
    )
    session.commit()
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(_user: can.PageUser, browser: BrowserSession, session: SessionDep) -> Response:
    response = RedirectResponse("/login", status_code=303)
    end_session(response, db_session=session, data=browser)
    session.commit()
    return response


@router.get("/", response_class=HTMLResponse)
def project_list(request: Request, user: can.PageUser, session: SessionDep) -> Response:
    projects = user_service.visible_projects(db_session=session, user=user)
    counts = dict(
        session.execute(select(Item.project_id, func.count()).group_by(Item.project_id)).tuples().all()
    )
    return render(request, "projects.html", projects=projects, item_counts=counts)


@router.get("/projects/{project}/label", response_class=HTMLResponse)
def label_page(
    request: Request, _user: can.LabelPageUser, project: ProjectDep, settings: SettingsDep
) -> Response:
    return render(request, "label.html", project=project, **label_page_context(project, settings))


def label_page_context(project, settings) -> dict:
    """What the label page offers is what the project takes: boxes only where it declares box classes."""
    scheme = project_service.key_scheme(project)
    config = {
        "project": project.name,
        "kind": project.kind,
        "threshold": project.threshold,
        "scheme": scheme,
        "box_classes": [c["name"] for c in scheme["box_classes"]],
        "daily_goal": project.daily_goal,
        "lease_seconds": settings.lease_minutes * 60,
    }
    return {
        "scheme": scheme,
        "takes_boxes": scheme["boxes"],
        "instructions_html": render_markdown(project.instructions),
        "label_config": config,
    }
