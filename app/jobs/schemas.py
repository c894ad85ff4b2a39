"""Request and response bodies of the job endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.core.db import DbId


class JobCreate(BaseModel):
    kind: str = Field(..., description="a job kind from GET /api/v1/jobs/kinds")
    dataset_version: DbId = Field(..., description="version number of a frozen dataset of this project")
    base_model: str | None = Field(
        None,
        description="what to start from, one of GET /api/v1/projects/{p}/base-models (default: the kind's "
        "built-in architecture); stored in config",
    )
    config: dict[str, Any] = Field(default_factory=dict, description="knobs of the kind's config dataclass")
    slice_keys: list[str] = Field(
        default_factory=list, description="extra item metadata keys to report per-slice holdout MCC for"
    )
    max_attempts: int = Field(3, ge=1, le=10, description="runs before a job whose worker keeps dying fails")


class JobKindRead(BaseModel):
    name: str
    title: str
    queue: str
    base_model_field: str | None
    config_fields: list[dict[str, Any]]
    available: bool = Field(
        True, description="false: the live workers cannot run this kind (availability_note says why)"
    )
    availability_note: str | None = Field(
        None, description="why no live worker can run it, or that no worker is running now"
    )


class BaseModelRead(BaseModel):
    name: str = Field(description="what a job's base-model field takes")
    source: str = Field(description="builtin, local (models directory), hub_cache or registry (warm start)")
    kinds: list[str] = Field(description="job kinds that can start from it")
    pretrained: bool = Field(description="false: random initialisation, trained here from scratch")
    method: str = Field(description="what classifier_lora's method='auto' picks: lora or full")
    description: str
    unavailable_kinds: dict[str, str] = Field(
        default_factory=dict,
        description="kinds that could start from it but no live worker can run now (removed from kinds), why",
    )


class JobProgress(BaseModel):
    step: int
    total: int
    fraction: float
    eta_s: float | None
    elapsed_s: float | None


class JobRead(BaseModel):
    id: int
    project: str
    kind: str
    dataset_version: int
    config: dict[str, Any]
    slice_keys: list[str]
    status: str
    attempts: int
    max_attempts: int
    progress: JobProgress
    attempt_first_step: int | None
    latest_metrics: dict[str, float]
    error: str | None
    artifact_dir: str | None
    celery_task_id: str | None
    worker_id: str | None
    queue: str
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_version: int | None


class JobDetail(JobRead):
    log_tail: str
    metrics: dict[str, list[list[float]]] = Field(description="name -> [[step, value], ...] in step order")
