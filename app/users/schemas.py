"""Login, session and user-management request/response schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.auth.users import MIN_PASSWORD_LENGTH

Role = Literal["annotator", "reviewer", "admin"]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role


class ProjectBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str


class SessionRead(BaseModel):
    user: UserRead
    csrf_token: str
    projects: list[ProjectBrief] = Field(default_factory=list)


class UserAdminRead(UserRead):
    is_active: bool
    created_at: datetime
    project_ids: list[int] = Field(default_factory=list)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1000)
    role: Role = "annotator"
    projects: list[str] = Field(default_factory=list, description="names of projects to assign")


class UserUpdate(BaseModel):
    """Omitted fields keep their value; an explicit null is a 422 naming the field, as on every PATCH."""

    role: Role = None  # type: ignore[assignment]
    is_active: bool = None  # type: ignore[assignment]
    password: str = Field(None, min_length=MIN_PASSWORD_LENGTH, max_length=1000)  # type: ignore[assignment]
