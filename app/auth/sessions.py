"""Browser sessions: a signed cookie carrying the user id and a CSRF token (double-submit via header or form)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "hc_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 7 * 24 * 3600
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class SessionData:
    user_id: int
    csrf: str


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="hardcase-session")


def start_session(response: Response, *, secret_key: str, user_id: int, secure: bool) -> SessionData:
    data = SessionData(user_id=user_id, csrf=secrets.token_urlsafe(24))
    token = _serializer(secret_key).dumps({"uid": data.user_id, "csrf": data.csrf})
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_MAX_AGE_S, httponly=True, samesite="lax", secure=secure
    )
    return data


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)


def read_session(request: Request, secret_key: str) -> SessionData | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        raw = _serializer(secret_key).loads(token, max_age=SESSION_MAX_AGE_S)
    except BadSignature:
        return None
    return SessionData(user_id=int(raw["uid"]), csrf=str(raw["csrf"]))


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
