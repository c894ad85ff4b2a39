"""Request and response bodies of the retraining policy and loop run endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class PolicyJob(BaseModel):
    """One job a loop run submits on its fresh dataset version: a job submission without the version."""

    kind: str = Field(..., description="a job kind from GET /api/v1/jobs/kinds")
    base_model: str | None = Field(
        None, description="one of GET /api/v1/projects/{p}/base-models, e.g. registry:production (warm start)"
    )
    config: dict[str, Any] = Field(default_factory=dict)
    slice_keys: list[str] = Field(default_factory=list)
    max_attempts: int = Field(3, ge=1, le=10)


class PolicyWrite(BaseModel):
    paused: bool = Field(False, description="a paused policy starts no run, by any trigger but by hand")
    new_labels: int | None = Field(
        None, ge=1, le=10_000_000, description="start after this many new consensus labels (None: off)"
    )
    schedule: str | None = Field(
        None, max_length=100, description="cron, UTC: minute hour day-of-month month day-of-week (None: off)"
    )
    on_drift: bool = Field(False, description="start when a drift check of the project alarms")
    jobs: list[PolicyJob] = Field(..., min_length=1, max_length=8)
    min_holdout_items: int = Field(30, ge=1, le=10_000_000)
    require_improvement: bool = Field(
        True, description="promote only when the 95% CI of the MCC difference to production lies above 0"
    )
    slice_keys: list[str] = Field(
        default_factory=lambda: ["is_night", "camera_id"], max_length=20, description="slices to guard"
    )
    slice_tolerance: float = Field(0.05, ge=0.0, le=2.0, description="largest MCC drop allowed on any slice")
    auto_promote: bool = Field(False, description="promote on a pass (else hold for an admin's approval)")
    max_runs_per_day: int = Field(4, ge=1, le=1000)


class PolicyRead(PolicyWrite):
    project: str
    last_scheduled_at: datetime | None
    updated_at: datetime
    new_labels_pending: int = Field(description="consensus labels newer than the last dataset version")
    runs_today: int
    auto_promotion_disabled_globally: bool


class RunStart(BaseModel):
    note: str = Field("", max_length=2000)


class RunDecision(BaseModel):
    note: str = Field("", max_length=2000)


class LoopRunRead(BaseModel):
    id: int
    project: str
    trigger: str
    trigger_detail: dict[str, Any]
    state: str
    dataset_version: int | None
    job_ids: list[int]
    candidate_version: int | None
    reason: str
    figures: dict[str, Any]
    timeline: list[dict[str, Any]]
    created_at: datetime
    decided_at: datetime | None
