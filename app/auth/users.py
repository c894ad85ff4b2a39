"""User accounts: create, look up, authenticate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ROLES, User
from app.auth.passwords import hash_password, verify_password

# Accounts an admin creates or re-keys (API, users page); the demo's documented logins are shorter on purpose.
MIN_PASSWORD_LENGTH = 8


def get_by_username(*, db_session: Session, username: str) -> User | None:
    return db_session.scalar(select(User).where(User.username == username))


def create_user(*, db_session: Session, username: str, password: str, role: str = "annotator") -> User:
    if role not in ROLES:
        raise ValueError(f"role: must be one of {list(ROLES)}")
    if len(password) < 4:
        raise ValueError("password: at least 4 characters")
    if get_by_username(db_session=db_session, username=username) is not None:
        raise ValueError(f"username: {username!r} exists already")
    user = User(username=username, password_hash=hash_password(password), role=role)
    db_session.add(user)
    db_session.flush()
    return user


def authenticate(*, db_session: Session, username: str, password: str) -> User | None:
    user = get_by_username(db_session=db_session, username=username)
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        return None
    return user
