"""Page dependencies: like the API's, but a missing session redirects the browser to /login instead of a 401."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from app.auth.models import User
from app.core.errors import ApiError
from app.deps import BrowserSession, SessionDep, ensure_role, user_of_session


def login_location(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


def get_page_user(request: Request, browser: BrowserSession, session: SessionDep) -> User:
    try:
        user = user_of_session(browser, session)
    except ApiError as exc:
        if exc.status_code == 401:
            # A 303 makes the browser follow with GET whatever the method was (a POST from a stale tab too).
            raise HTTPException(303, "log in first", headers={"Location": login_location(request)}) from exc
        raise
    request.state.user = user
    return user


PageUser = Annotated[User, Depends(get_page_user)]


def require_page_role(role: str):
    """A page dependency: the logged-in user must hold `role` or a higher one."""

    def dependency(user: PageUser) -> User:
        return ensure_role(user, role)

    return dependency


PageAdmin = Annotated[User, Depends(require_page_role("admin"))]
