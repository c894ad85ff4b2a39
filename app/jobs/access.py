"""Who may read training data, jobs and models: a logged-in user, or a service key with the right scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.deps import SessionDep, SettingsDep, get_current_user, require_api_key


def _has_api_key(request: Request) -> bool:
    return bool(request.headers.get("x-api-key")) or request.headers.get(
        "authorization", ""
    ).lower().startswith("bearer ")


def user_or_key(scope: str):
    """A dependency: a key with `scope` when one is sent, else the browser session; returns who it was."""
    check_key = require_api_key(scope)

    async def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> str:
        if _has_api_key(request):
            return f"key:{check_key(request, session).name}"
        user = await get_current_user(request, session, settings)
        return f"user:{user.username}"

    return dependency


Viewer = Annotated[str, Depends(user_or_key("read"))]
ModelReader = Annotated[str, Depends(user_or_key("models"))]
