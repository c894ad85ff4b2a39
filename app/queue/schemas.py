"""Queue responses: the item the label page shows, its lease, project progress, the ranking settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

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


class QueueAction(BaseModel):
    item_id: int
    status: str


class Progress(BaseModel):
    done_today: int
    done_total: int
    queue_size: int
    leased: int
    labeled: int
    in_review: int
    agreement_rate: float | None


class ProjectUpdated(ProjectRead):
    rerank: str  # queued | inline | not needed
