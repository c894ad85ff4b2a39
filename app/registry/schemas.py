"""Response bodies of the registry endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelVersionRead(BaseModel):
    name: str
    version: int
    kind: str
    stage: str
    job_id: int | None
    dataset_version: int | None
    threshold: float
    metrics: dict[str, Any] = Field(description="holdout metrics computed by the registry")
    mcc_ci: dict[str, Any] | None = Field(
        None, description="bootstrap over holdout items of this model's MCC: mean, ci_low, ci_high (95%), n"
    )
    training_metrics: dict[str, Any]
    vs_production: dict[str, Any] | None = Field(
        None,
        description="paired bootstrap of MCC(this) - MCC(current production) on their common holdout items",
    )
    gate: list[str] = Field(
        default_factory=list,
        description="why promoting this version now would be refused (empty: the gate passes)",
    )
    artifact_url: str
    artifact_sha256: str
    artifact_bytes: int
    files: dict[str, str]
    created_at: datetime
    promoted_at: datetime | None


class ProductionModel(BaseModel):
    project: str
    name: str
    version: int
    kind: str
    threshold: float
    metrics: dict[str, Any]
    artifact_url: str
    artifact_sha256: str
    artifact_bytes: int
    files: dict[str, str]
    promoted_at: datetime | None


class StageChangeRead(BaseModel):
    version: int
    action: str
    from_stage: str
    to_stage: str
    replaced_version: int | None
    user_id: int | None
    note: str
    forced: bool = Field(False, description="the gate refused this promotion and an admin forced it")
    force_reason: str = ""
    gate: dict[str, Any] | None = Field(None, description="what the gate found when it was forced")
    created_at: datetime


class PromoteBody(BaseModel):
    note: str = Field("", max_length=2000, description="why (kept in the stage history)")


class PromoteRequest(PromoteBody):
    force: bool = Field(
        False, description="promote although the gate refuses (holdout too small, or worse than production)"
    )
    reason: str = Field("", max_length=2000, description="why the gate is overridden (required with force)")
