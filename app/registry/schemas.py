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
    training_metrics: dict[str, Any]
    vs_production: dict[str, Any] | None = Field(
        None,
        description="paired bootstrap of MCC(this) - MCC(current production) on their common holdout items",
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
    created_at: datetime


class PromoteBody(BaseModel):
    note: str = Field("", max_length=2000, description="why (kept in the stage history)")
