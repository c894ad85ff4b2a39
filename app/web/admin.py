"""The admin's users page: create accounts, change role, activity and project membership (plain HTML forms)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from app.auth import permissions as can
from app.auth.models import ROLES, User
from app.auth.users import MIN_PASSWORD_LENGTH
from app.core.db import DbId
from app.core.errors import ApiError
from app.deps import IdPath, SessionDep
from app.projects import service as project_service
from app.users import service as user_service
from app.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)


def _users_page(
    request: Request,
    session: Session,
    *,
    message: str = "",
    error: str = "",
    status: int = 200,
    form_username: str = "",
) -> Response:
    users = user_service.list_users(db_session=session)
    memberships = {u.id: set(user_service.project_ids_of(db_session=session, user_id=u.id)) for u in users}
    return render(
        request,
        "admin/users.html",
        status_code=status,
        users=users,
        projects=project_service.list_projects(db_session=session),
        memberships=memberships,
        roles=ROLES,
        min_password=MIN_PASSWORD_LENGTH,
        form_username=form_username,
        message=message,
        error=error,
    )


def _known_project_ids(session: Session, project_ids: list[int]) -> list[int]:
    """Raises ValueError for an id that names no project (a forged form), instead of a foreign-key error."""
    known = {p.id for p in project_service.list_projects(db_session=session)}
    unknown = sorted(set(project_ids) - known)
    if unknown:
        raise ValueError(f"project_ids: there is no project {unknown[0]}")
    return project_ids


def _set_membership(session: Session, user: User, project_ids: list[int]) -> None:
    wanted = set(_known_project_ids(session, project_ids))
    current = set(user_service.project_ids_of(db_session=session, user_id=user.id))
    for project_id in wanted - current:
        user_service.add_member(db_session=session, project_id=project_id, user_id=user.id)
    for project_id in current - wanted:
        user_service.remove_member(db_session=session, project_id=project_id, user_id=user.id)


@router.get("/users", response_class=HTMLResponse, dependencies=[Depends(can.page_admin)])
def users_page(request: Request, session: SessionDep, done: str = "") -> Response:
    return _users_page(request, session, message=done)


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    _admin: can.PageAdmin,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "annotator",
    project_ids: Annotated[list[DbId], Form()] = [],  # noqa: B006 (FastAPI copies form defaults)
) -> Response:
    username = username.strip()
    if not username:
        return _users_page(request, session, error="username: required", status=422)
    try:
        user_service.create_account(
            db_session=session,
            username=username,
            password=password,
            role=role,
            project_ids=_known_project_ids(session, project_ids),
        )
    except ValueError as exc:
        session.rollback()
        return _users_page(request, session, error=str(exc), status=422, form_username=username)
    session.commit()
    return RedirectResponse(f"/admin/users?done=Created+{username}", status_code=303)


@router.post("/users/{user_id}", response_class=HTMLResponse)
def update_user(
    request: Request,
    user_id: IdPath,
    admin: can.PageAdmin,
    session: SessionDep,
    role: Annotated[str, Form()] = "annotator",
    is_active: Annotated[str | None, Form()] = None,
    password: Annotated[str, Form()] = "",
    project_ids: Annotated[list[DbId], Form()] = [],  # noqa: B006
) -> Response:
    user = session.get(User, user_id)
    if user is None:
        raise ApiError(404, "user_id", f"no user {user_id}")
    try:
        user_service.update_account(
            db_session=session,
            user=user,
            acting_admin=admin,
            role=role,
            is_active=is_active is not None,
            password=password or None,
        )
        _set_membership(session, user, project_ids)
    except ValueError as exc:
        session.rollback()
        return _users_page(request, session, error=str(exc), status=422)
    session.commit()
    return RedirectResponse(f"/admin/users?done=Saved+{user.username}", status_code=303)
