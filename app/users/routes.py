"""Session login/logout, the current user, admin user management and project membership."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.auth import permissions as can
from app.auth.models import User
from app.auth.sessions import end_session, start_session
from app.auth.throttle import LoginThrottled, login_attempt
from app.core.errors import ApiError
from app.deps import BrowserSession, IdPath, ProjectDep, SessionDep, SettingsDep
from app.projects import service as project_service
from app.users import service
from app.users.schemas import (
    LoginIn,
    ProjectBrief,
    SessionRead,
    UserAdminRead,
    UserCreate,
    UserRead,
    UserUpdate,
)

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"])
members_router = APIRouter(prefix="/api/v1/projects/{project}/members", tags=["users"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _session_read(db_session, user: User, csrf: str) -> SessionRead:
    projects = service.visible_projects(db_session=db_session, user=user)
    return SessionRead(
        user=UserRead.model_validate(user),
        csrf_token=csrf,
        projects=[ProjectBrief.model_validate(p) for p in projects],
    )


@auth_router.post(
    "/login",
    response_model=SessionRead,
    responses={401: {"description": "wrong credentials"}, 429: {"description": "throttled; see Retry-After"}},
    dependencies=[Depends(can.public)],
)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> SessionRead | JSONResponse:
    try:
        user = login_attempt(
            db_session=session, username=body.username, password=body.password, client_ip=client_ip(request)
        )
    except LoginThrottled as exc:
        return JSONResponse(
            {"detail": str(exc), "errors": [{"field": "username", "message": str(exc)}]},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if user is None:
        raise ApiError(401, "password", "wrong username or password")
    data = start_session(
        response,
        db_session=session,
        secret_key=settings.secret_key,
        user_id=user.id,
        secure=settings.secure_cookies,
    )
    session.commit()
    return _session_read(session, user, data.csrf)


@auth_router.post("/logout", status_code=204)
def logout(_user: can.SignedInUser, browser: BrowserSession, session: SessionDep) -> Response:
    response = Response(status_code=204)
    end_session(response, db_session=session, data=browser)
    session.commit()
    return response


@auth_router.get("/me", response_model=SessionRead)
def me(request: Request, user: can.SignedInUser, session: SessionDep) -> SessionRead:
    return _session_read(session, user, request.state.csrf)


def _admin_read(session, user: User) -> UserAdminRead:
    read = UserAdminRead.model_validate(user, from_attributes=True)
    read.project_ids = service.project_ids_of(db_session=session, user_id=user.id)
    return read


@users_router.get("", response_model=list[UserAdminRead], dependencies=[Depends(can.admin)])
def list_users(session: SessionDep) -> list[UserAdminRead]:
    return [_admin_read(session, u) for u in service.list_users(db_session=session)]


def _project_ids(session, names: list[str]) -> list[int]:
    ids = []
    for name in names:
        project = project_service.get_by_name(db_session=session, name=name)
        if project is None:
            raise ApiError(422, "projects", f"unknown project {name!r}")
        ids.append(project.id)
    return ids


def _value_error(exc: ValueError) -> ApiError:
    field, _, message = str(exc).partition(": ")
    status = 409 if "exists already" in message else 422
    return ApiError(status, field, message or str(exc))


@users_router.post("", response_model=UserAdminRead, status_code=201, dependencies=[Depends(can.admin)])
def create_user(body: UserCreate, session: SessionDep) -> UserAdminRead:
    project_ids = _project_ids(session, body.projects)
    try:
        user = service.create_account(
            db_session=session,
            username=body.username,
            password=body.password,
            role=body.role,
            project_ids=project_ids,
        )
    except ValueError as exc:
        raise _value_error(exc) from exc
    session.commit()
    return _admin_read(session, user)


def _user_or_404(session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise ApiError(404, "user_id", f"no user {user_id}")
    return user


@users_router.patch("/{user_id}", response_model=UserAdminRead)
def update_user(user_id: IdPath, body: UserUpdate, session: SessionDep, admin: can.Admin) -> UserAdminRead:
    user = _user_or_404(session, user_id)
    try:
        service.update_account(db_session=session, user=user, acting_admin=admin, **body.model_dump())
    except ValueError as exc:
        raise _value_error(exc) from exc
    session.commit()
    return _admin_read(session, user)


@members_router.get("", response_model=list[UserRead], dependencies=[Depends(can.admin_project)])
def list_members(project: ProjectDep, session: SessionDep) -> list[UserRead]:
    return [UserRead.model_validate(u) for u in service.members_of(db_session=session, project_id=project.id)]


@members_router.put("/{user_id}", status_code=204, dependencies=[Depends(can.admin_project)])
def add_member(project: ProjectDep, user_id: IdPath, session: SessionDep) -> Response:
    _user_or_404(session, user_id)
    service.add_member(db_session=session, project_id=project.id, user_id=user_id)
    session.commit()
    return Response(status_code=204)


@members_router.delete("/{user_id}", status_code=204, dependencies=[Depends(can.admin_project)])
def remove_member(project: ProjectDep, user_id: IdPath, session: SessionDep) -> Response:
    service.remove_member(db_session=session, project_id=project.id, user_id=user_id)
    session.commit()
    return Response(status_code=204)
