"""Browser sessions: a signed cookie naming a server-side session row, plus a CSRF token (double-submit).

The cookie carries a random session id; the database keeps only its SHA-256 in `user_sessions`. Logging out,
changing a password or deactivating an account deletes rows, so an old cookie stops working in every API
process on its next request. Checking a request costs one primary-key lookup joined to the user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from app.auth.models import User, UserSession
from app.core.db import utcnow

SESSION_COOKIE = "hc_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 7 * 24 * 3600
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class SessionData:
    """What the signed cookie says; only `load_session_user` decides whether it is still valid."""

    user_id: int
    session_id: str
    csrf: str


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="hardcase-session")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(
    response: Response, *, db_session: Session, secret_key: str, user_id: int, secure: bool
) -> SessionData:
    """Stores a new session row (the caller commits) and sets its cookie on `response`."""
    data = SessionData(user_id=user_id, session_id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(24))
    now = utcnow()
    db_session.execute(
        delete(UserSession).where(UserSession.user_id == user_id, UserSession.expires_at <= now)
    )
    db_session.add(
        UserSession(
            id=_digest(data.session_id),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=SESSION_MAX_AGE_S),
        )
    )
    token = _serializer(secret_key).dumps({"uid": data.user_id, "sid": data.session_id, "csrf": data.csrf})
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_MAX_AGE_S, httponly=True, samesite="lax", secure=secure
    )
    return data


def end_session(response: Response, *, db_session: Session, data: SessionData | None) -> None:
    """Deletes the session row (the caller commits) and the cookie."""
    if data is not None:
        db_session.execute(delete(UserSession).where(UserSession.id == _digest(data.session_id)))
    response.delete_cookie(SESSION_COOKIE)


def revoke_user_sessions(*, db_session: Session, user_id: int) -> None:
    """Ends every session of the user (password change, deactivation); the caller commits."""
    db_session.execute(delete(UserSession).where(UserSession.user_id == user_id))


def read_session(request: Request, secret_key: str) -> SessionData | None:
    """The cookie's claims when its signature and age are good; no database access."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        raw = _serializer(secret_key).loads(token, max_age=SESSION_MAX_AGE_S)
        return SessionData(user_id=int(raw["uid"]), session_id=str(raw["sid"]), csrf=str(raw["csrf"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None  # a forged, expired or pre-revocation cookie is simply no session


# Built once: building and keying the statement per request cost as much as running it.
_SESSION_USER_QUERY = (
    select(User)
    .join(UserSession, UserSession.user_id == User.id)
    .where(
        UserSession.id == bindparam("session_digest"),
        UserSession.user_id == bindparam("user_id"),
        UserSession.expires_at > bindparam("now"),
        User.is_active.is_(True),
    )
)


def load_session_user(*, db_session: Session, data: SessionData) -> User | None:
    """The active user whose unexpired session row the cookie names; one indexed lookup."""
    params = {"session_digest": _digest(data.session_id), "user_id": data.user_id, "now": utcnow()}
    return db_session.scalar(_SESSION_USER_QUERY, params)


async def csrf_ok(request: Request, session: SessionData) -> bool:
    """Unsafe methods must echo the session's CSRF token in the X-CSRF-Token header or a csrf_token field."""
    if request.method not in UNSAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    return isinstance(sent, str) and hmac.compare_digest(sent, session.csrf)
