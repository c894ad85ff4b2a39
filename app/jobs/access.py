"""Who may read training data, jobs and models: a logged-in user, or a service key with the right scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.deps import BrowserSession, SessionDep, carries_api_key, require_api_key, user_of_session


def user_or_key(scope: str):
    """A dependency: a key with `scope` when one is sent, else the browser session; returns who it was."""
    check_key = require_api_key(scope)

    def dependency(request: Request, browser: BrowserSession, session: SessionDep) -> str:
        if carries_api_key(request):
            return f"key:{check_key(request, session).name}"
        return f"user:{user_of_session(browser, session).username}"

    return dependency


Viewer = Annotated[str, Depends(user_or_key("read"))]
ModelReader = Annotated[str, Depends(user_or_key("models"))]
