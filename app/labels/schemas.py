"""Annotation, review, flag and agreement request/response schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.db import DbId
from app.queue.schemas import QueueItem


class AnnotationIn(BaseModel):
    label: int | None = Field(None, description="binary: 1 positive / 0 negative; multiclass: class index")
    boxes: list[list[Any]] = Field(
        default_factory=list, description="[[x1, y1, x2, y2, class_index]] normalised"
    )
    duration_ms: int | None = Field(None, ge=0, le=24 * 3600 * 1000)
    supersedes: DbId | None = Field(None, description="id of your own annotation this one corrects")


class AnnotationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    item_id: int
    annotator_id: int
    label: int
    boxes: list[list[Any]]
    duration_ms: int | None
    supersedes_id: int | None
    state: str
    created_at: datetime


class AnnotationCreated(BaseModel):
    annotation: AnnotationRead
    item_status: str


class UndoResult(BaseModel):
    retracted: int
    item: QueueItem
    lease_expires_at: datetime


class ReviewIn(BaseModel):
    label: int | None = None
    boxes: list[list[Any]] = Field(default_factory=list)
    note: str = Field("", max_length=5000)


class ReviewRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    item_id: int
    reviewer_id: int
    label: int
    boxes: list[list[Any]]
    note: str
    created_at: datetime


class ReviewCreated(BaseModel):
    review: ReviewRead
    item_status: str


class FlagIn(BaseModel):
    reason: str = Field("", max_length=2000)


class FlagRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    item_id: int
    user_id: int
    reason: str
    created_at: datetime
    resolved_by_review_id: int | None


class ConsensusRead(BaseModel):
    label: int | None
    source: str
    votes: dict[int, int]


class ItemHistory(BaseModel):
    annotations: list[AnnotationRead]
    reviews: list[ReviewRead]
    flags: list[FlagRead]


class ReviewTask(BaseModel):
    item: QueueItem
    consensus: ConsensusRead
    history: ItemHistory


class PairKappa(BaseModel):
    annotator_a: str
    annotator_b: str
    items: int
    kappa: float | None


class AnnotatorStats(BaseModel):
    annotator: str
    labels: int
    labels_per_hour: float | None
    median_seconds_per_item: float | None
    agreement_with_consensus: float | None


class AgreementReport(BaseModel):
    items_labeled: int
    items_decided: int
    cohen_kappa_mean: float | None
    pairs: list[PairKappa]
    fleiss_kappa: float | None
    fleiss_items: int
    agreement_with_consensus: float | None
    annotators: list[AnnotatorStats]


class ReviewAnswer(BaseModel):
    annotation_id: int
    annotator: str
    label: int
    boxes: list[list[Any]]
    duration_ms: int | None
    created_at: datetime


class ReviewFlag(BaseModel):
    user: str
    reason: str
    created_at: datetime


class ReviewEntry(BaseModel):
    item: QueueItem
    reasons: list[str] = Field(description="flagged, skipped out, conflict")
    consensus: ConsensusRead
    answers: list[ReviewAnswer]
    flags: list[ReviewFlag]
