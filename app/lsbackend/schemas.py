"""What Label Studio (1.23) sends to an ML backend and what it reads back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_TASKS = 10_000  # Label Studio's "Retrieve predictions" sends every selected task in one request


class SetupIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    project: str | None = Field(None, description="Label Studio's '<project id>.<created timestamp>'")
    schema_: str | None = Field(None, alias="schema", description="the labeling config XML")
    hostname: str | None = None
    access_token: str | None = None
    model_version: str | None = None
    extra_params: Any = None


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    tasks: list[dict[str, Any]] = Field(max_length=MAX_TASKS)
    model_version: str | None = None
    project: str | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


class WebhookIn(BaseModel):
    """Every Label Studio webhook: `action` plus the action's objects (annotation, task, project, ...)."""

    model_config = ConfigDict(extra="allow")

    action: str = Field(min_length=1, max_length=100)


class HealthRead(BaseModel):
    status: str
    model_class: str
    model_version: str


class SetupRead(BaseModel):
    model_version: str


class VersionsRead(BaseModel):
    versions: list[str]


class PredictRead(BaseModel):
    results: list[dict[str, Any]]
    model_version: str


class WebhookRead(BaseModel):
    status: str = Field(
        description="queued (a worker handles it), handled (the broker was down: done in the request) or "
        "ignored (not an event Hardcase takes)"
    )
    action: str
    outcome: str | None = Field(None, description="what became of it, when it was handled in the request")


class LabelStudioImport(BaseModel):
    tasks: list[dict[str, Any]] = Field(description="a Label Studio JSON export (Export -> JSON)")
    label_config: str | None = Field(
        None, description="the project's labeling config (default: image/label/box)"
    )


class ImportRead(BaseModel):
    tasks: int
    items_created: int
    predictions_created: int
    images_stored: int
    annotations: dict[str, int] = Field(description="outcome -> count: created, superseded, unchanged, ...")
    errors: list[str]
