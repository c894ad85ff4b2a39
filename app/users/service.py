"""Admin user management and project membership (plain functions, session passed in)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.auth.models import ROLES, User
from app.auth.passwords import hash_password
from app.auth.sessions import revoke_user_sessions
from app.auth.users import MIN_PASSWORD_LENGTH, create_user
from app.core.db import is_postgres
from app.projects.models import Project
from app.users.models import ProjectMember

# --- admin user management ----------------------------------------------------------------------------------


def list_users(*, db_session: Session) -> list[User]:
    return list(db_session.scalars(select(User).order_by(User.id)))


def check_password_length(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password: at least {MIN_PASSWORD_LENGTH} characters")


def create_account(
    *, db_session: Session, username: str, password: str, role: str, project_ids: list[int] | None = None
) -> User:
    """Raises ValueError("field: message") for a taken username, unknown role or short password."""
    check_password_length(password)
    user = create_user(db_session=db_session, username=username, password=password, role=role)
    for project_id in project_ids or []:
        add_member(db_session=db_session, project_id=project_id, user_id=user.id)
    return user


def update_account(
    *,
    db_session: Session,
    user: User,
    acting_admin: User,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> User:
    """Raises ValueError("field: message"); an admin cannot demote or deactivate themselves (no lock-out).

    A new password or a deactivation ends all of the user's sessions (an admin re-keying themselves too)."""
    if role is not None:
        if role not in ROLES:
            raise ValueError(f"role: must be one of {list(ROLES)}")
        if user.id == acting_admin.id and role != "admin":
            raise ValueError("role: you cannot remove your own admin role")
        user.role = role
    if is_active is not None:
        if user.id == acting_admin.id and not is_active:
            raise ValueError("is_active: you cannot deactivate yourself")
        user.is_active = is_active
    if password is not None:
        check_password_length(password)
        user.password_hash = hash_password(password)
    if password is not None or is_active is False:
        revoke_user_sessions(db_session=db_session, user_id=user.id)  # old cookies end everywhere at once
    db_session.flush()
    return user


# --- project membership ---------------------------------------------------------------------------------------


def add_member(*, db_session: Session, project_id: int, user_id: int) -> None:
    """Idempotent: assigning someone twice is not an error."""
    dialect = postgresql if is_postgres(db_session) else sqlite
    db_session.execute(
        dialect.insert(ProjectMember)
        .values(project_id=project_id, user_id=user_id)
        .on_conflict_do_nothing(index_elements=["project_id", "user_id"])
    )


def remove_member(*, db_session: Session, project_id: int, user_id: int) -> None:
    db_session.execute(
        delete(ProjectMember).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
    )


def members_of(*, db_session: Session, project_id: int) -> list[User]:
    return list(
        db_session.scalars(
            select(User)
            .join(ProjectMember, ProjectMember.user_id == User.id)
            .where(ProjectMember.project_id == project_id)
            .order_by(User.id)
        )
    )


def visible_projects(*, db_session: Session, user: User) -> list[Project]:
    query = select(Project).order_by(Project.id)
    if user.role != "admin":
        query = query.join(ProjectMember, ProjectMember.project_id == Project.id).where(
            ProjectMember.user_id == user.id
        )
    return list(db_session.scalars(query))


def project_ids_of(*, db_session: Session, user_id: int) -> list[int]:
    return list(
        db_session.scalars(
            select(ProjectMember.project_id)
            .where(ProjectMember.user_id == user_id)
            .order_by(ProjectMember.project_id)
        )
    )
