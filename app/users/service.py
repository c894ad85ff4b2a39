"""Login with throttling, admin user management and project membership (plain functions, session passed in)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.auth.models import ROLES, User
from app.auth.passwords import hash_password
from app.auth.users import MIN_PASSWORD_LENGTH, authenticate, create_user
from app.core.db import is_postgres
from app.projects.models import Project
from app.users.models import ProjectMember


class LoginThrottled(Exception):
    """Too many failed logins for this username from this client; `retry_after_s` says how long to wait."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class LoginThrottle:
    """Failed-login counter per (username, client IP): `max_failures` within `window_s` locks for `lockout_s`.

    In memory, per process: with several API processes an attacker gets `max_failures` tries per process
    per window, which still bounds guessing; a shared store (Redis) would make it exact.
    """

    max_failures: int = 5
    window_s: float = 300.0
    lockout_s: float = 300.0
    _failures: dict[tuple[str, str], deque] = field(default_factory=dict, repr=False)
    _locked_until: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def key(username: str, client_ip: str) -> tuple[str, str]:
        return (username.strip().lower(), client_ip)

    def retry_after(self, username: str, client_ip: str, now: float | None = None) -> int | None:
        """Seconds until this (username, client) may try again, or None when it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            until = self._locked_until.get(self.key(username, client_ip))
            if until is None or until <= now:
                return None
            return max(1, math.ceil(until - now))

    def record_failure(self, username: str, client_ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = self.key(username, client_ip)
        with self._lock:
            failures = self._failures.setdefault(key, deque())
            failures.append(now)
            while failures and failures[0] < now - self.window_s:
                failures.popleft()
            if len(failures) >= self.max_failures:
                self._locked_until[key] = now + self.lockout_s
                failures.clear()

    def record_success(self, username: str, client_ip: str) -> None:
        key = self.key(username, client_ip)
        with self._lock:
            self._failures.pop(key, None)
            self._locked_until.pop(key, None)


def login_attempt(
    *, db_session: Session, throttle: LoginThrottle, username: str, password: str, client_ip: str
) -> User | None:
    """The user when the credentials are right, None when wrong; raises LoginThrottled while locked out.

    The lockout is checked before the password, so a locked-out guesser learns nothing from a right guess.
    """
    wait = throttle.retry_after(username, client_ip)
    if wait is not None:
        raise LoginThrottled(wait)
    user = authenticate(db_session=db_session, username=username, password=password)
    if user is None:
        throttle.record_failure(username, client_ip)
        wait = throttle.retry_after(username, client_ip)
        if wait is not None:
            raise LoginThrottled(wait)
        return None
    throttle.record_success(username, client_ip)
    return user


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
    """Raises ValueError("field: message"); an admin cannot demote or deactivate themselves (no lock-out)."""
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


def can_access_project(*, db_session: Session, user: User, project_id: int) -> bool:
    """Admins see every project; annotators and reviewers only the projects they are assigned to."""
    if user.role == "admin":
        return True
    return db_session.get(ProjectMember, {"project_id": project_id, "user_id": user.id}) is not None


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
