"""Queue responses: the item the label page shows, its lease, project progress, the ranking settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.core.db import DbId
from app.projects.schemas import ProjectRead


class PredictionShown(BaseModel):
    model: str
    model_version: str
    score: float | None
    probs: list[float] | None = None
    label: str | None
    boxes: list[list[Any]]


class HardnessShown(BaseModel):
    priority: float
    mean_score: float | None
    entropy: float | None
    margin: float | None
    disagreement: float | None
    threshold_distance: float | None
    vote_ratio: float | None
    box_disagreement: float
    reasons: list[str]
    status: str
    annotation_count: int


class QueueItem(BaseModel):
    id: int
    external_id: str
    image_url: str
    width: int | None
    height: int | None
    metadata: dict[str, Any]
    predictions: list[PredictionShown]
    hardness: HardnessShown


class LeasedItem(BaseModel):
    item: QueueItem
    lease_expires_at: datetime


class NextRequest(BaseModel):
    holding: list[DbId] = Field(
        default_factory=list, max_length=1000, description="items the caller's page has open (not re-served)"
    )


class LeaseIds(BaseModel):
    item_ids: list[DbId] = Field(min_length=1, max_length=1000)


class LeaseRenewal(BaseModel):
    renewed: list[int]
    lost: list[int]
    lease_expires_at: datetime


class LeasesReleased(BaseModel):
    released: list[int]


class QueueAction(BaseModel):
    item_id: int
    status: str


class Progress(BaseModel):
    done_today: int
    done_total: int
    queue_size: int
    leased: int
    leased_by_others: int
    labeled: int
    in_review: int
    agreement_rate: float | None
    daily_goal: int


class ProjectUpdated(ProjectRead):
    rerank: str  # queued | inline | not needed
