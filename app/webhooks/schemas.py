"""Request and response bodies of the webhook endpoints and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.webhooks.models import EVENTS


def checked_url(url: str) -> str:
    """http(s) with a host, no spaces; the API never fetches it (only the worker posts to it)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not host or any(c.isspace() for c in url):
        raise ValueError("the URL needs a host and may not contain spaces")
    return url


def checked_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; known: {', '.join(EVENTS)}")
    if not events:
        raise ValueError("subscribe to at least one event")
    return [e for e in EVENTS if e in events]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http:// or https:// address the worker POSTs events to")
    events: list[str] = Field(default_factory=lambda: list(EVENTS), description=f"any of {', '.join(EVENTS)}")
    description: str = Field("", max_length=200)

    _url = field_validator("url")(checked_url)
    _events = field_validator("events")(checked_events)


class WebhookUpdate(BaseModel):
    """Omitted fields keep their value; an explicit null is a 422 naming the field, as on every PATCH."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(None, max_length=2048)  # type: ignore[assignment]
    events: list[str] = None  # type: ignore[assignment]
    description: str = Field(None, max_length=200)  # type: ignore[assignment]
    is_active: bool = None  # type: ignore[assignment]

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else checked_url(url)

    @field_validator("events")
    @classmethod
    def _events(cls, events: list[str] | None) -> list[str] | None:
        return None if events is None else checked_events(events)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    description: str
    is_active: bool
    secret_hint: str = Field(description="the first characters of the signing secret")
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="the signing secret: shown once, keep it with the receiver")


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: datetime


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: int
    event: str
    event_id: str
    status: str = Field(description="pending | succeeded | failed")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[AttemptRead] = Field(default_factory=list, description="every HTTP try, oldest first")
