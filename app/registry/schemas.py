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
    slice: dict[str, Any] | None = Field(
        None,
        description="the slice this specialist was trained for (its dataset version's slice); None: a generalist",
    )
    slice_vs_production: dict[str, Any] | None = Field(
        None,
        description="a specialist against the production generalist on the slice's holdout items (paired bootstrap)",
    )
    serves_slice: bool = Field(False, description="the routing table sends its slice to this specialist")


class SliceRouteRead(BaseModel):
    slice: dict[str, Any] = Field(description="the predicate on item metadata: key with value, or min/max")
    label: str
    name: str
    version: int
    kind: str
    threshold: float
    artifact_url: str
    artifact_sha256: str
    artifact_bytes: int
    files: dict[str, str]
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
    routes: list[SliceRouteRead] = Field(
        default_factory=list,
        description="slice specialists, in order (the first route whose slice an item's metadata falls in serves "
        "it); this model, the generalist, serves every other item",
    )


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
