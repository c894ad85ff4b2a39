"""The ingestion contract: what the cascade sends, item by item."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import to_json

from app.core.config import Settings

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_MAX_METADATA_BYTES: int = Settings.model_fields["max_metadata_bytes"].default


class PredictionIn(BaseModel):
    """One model's output. Either the full form (`score` or `probs`) or the cascade's compact form
    (`confidence` in the stated decision `roadwork_detected`, plus `vote_ratio`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=100)
    model_version: str = Field("", max_length=100)
    score: Probability | None = None
    probs: list[Probability] | None = None
    label: str | None = Field(None, max_length=255)
    boxes: list[list[Any]] = Field(default_factory=list)
    embedding: list[float] | None = Field(None, max_length=4096)
    confidence: Probability | None = None
    vote_ratio: Probability | None = None
    roadwork_detected: bool | None = None

    @field_validator("boxes")
    @classmethod
    def _boxes_are_normalised(cls, boxes: list[list[Any]]) -> list[list[Any]]:
        return check_boxes(boxes)

    @field_validator("embedding")
    @classmethod
    def _finite(cls, values: list[float] | None) -> list[float] | None:
        return check_embedding(values)

    @model_validator(mode="after")
    def _compact_to_score(self) -> PredictionIn:
        return settle_score(self)

    @property
    def extra(self) -> dict[str, Any]:
        return prediction_extra(self)


# The checks below are shared with the msgspec decoder (app/ingest/decode.py): one definition of what is valid.


def check_boxes(boxes: list[list[Any]]) -> list[list[Any]]:
    for i, box in enumerate(boxes):
        if len(box) != 6:
            raise ValueError(f"box {i}: expected [x1, y1, x2, y2, class, score]")
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        if not (0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1):
            raise ValueError(f"box {i}: coordinates must be normalised with x1<=x2, y1<=y2")
        if not 0 <= float(box[5]) <= 1:
            raise ValueError(f"box {i}: score must be in [0, 1]")
    return boxes


def check_embedding(values: list[float] | None) -> list[float] | None:
    if values is not None and not all(math.isfinite(v) for v in values):
        raise ValueError("embedding must hold finite numbers")
    return values


def settle_score(p: Any) -> Any:
    """The compact form turned into `score` and `label`; a prediction must say something."""
    if p.score is None and p.confidence is not None and p.roadwork_detected is not None:
        p.score = p.confidence if p.roadwork_detected else 1.0 - p.confidence
        p.label = p.label or ("roadwork" if p.roadwork_detected else "no_roadwork")
    if p.score is None and p.probs is None and p.label is None:
        raise ValueError("give score, probs, label or the compact {confidence, roadwork_detected}")
    if p.probs is not None and abs(sum(p.probs) - 1.0) > 1e-3:
        raise ValueError("probs must sum to 1")
    return p


def prediction_extra(p: Any) -> dict[str, Any]:
    keys = ("confidence", "vote_ratio", "roadwork_detected")
    return {k: getattr(p, k) for k in keys if getattr(p, k) is not None}


def image_ref_problem(base64: str | None, url: str | None, file: str | None) -> str | None:
    if (base64 is not None) + (url is not None) + (file is not None) != 1:
        return "give exactly one of base64, url, file"
    return None


def metadata_size_problem(extra: dict[str, Any] | None, tags: list[str], limit: int) -> str | None:
    size = len(to_json(extra or {})) + len(to_json(tags))
    if size > limit:
        return f"metadata is {size} bytes as JSON; the limit is {limit}"
    return None


class ImageRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base64: str | None = None
    url: str | None = Field(
        None,
        max_length=1024,
        description="a reference (s3://, gs://, https://, http://); workers fetch it from allowlisted sources",
    )
    file: str | None = Field(None, description="name of a multipart part holding the bytes")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        problem = image_ref_problem(self.base64, self.url, self.file)
        if problem:
            raise ValueError(problem)
        return self


class ItemMetadata(BaseModel):
    """Known fields plus any others the cascade sends; the free part is bounded by `max_metadata_bytes`
    (a setting, passed as validation context)."""

    model_config = ConfigDict(extra="allow")

    captured_at: datetime | None = None
    camera_id: str | None = Field(None, max_length=255)
    is_night: bool | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounded_size(self, info: ValidationInfo) -> ItemMetadata:
        limit = (info.context or {}).get("max_metadata_bytes", DEFAULT_MAX_METADATA_BYTES)
        problem = metadata_size_problem(self.__pydantic_extra__, self.tags, limit)
        if problem:
            raise ValueError(problem)
        return self


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=255)
    image: ImageRef | None = None
    metadata: ItemMetadata = Field(default_factory=ItemMetadata)
    predictions: list[PredictionIn] = Field(default_factory=list, max_length=50)


class ItemError(BaseModel):
    index: int
    external_id: str | None
    field: str
    message: str


class IngestSummary(BaseModel):
    received: int
    accepted: int
    items_created: int
    predictions_created: int
    images_stored: int
    errors: list[ItemError]


class PredictionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model: str
    model_version: str
    score: float | None
    probs: list[float] | None
    label: str | None
    boxes: list[list[Any]]
    extra: dict[str, Any]
    received_at: datetime


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str
    image_uri: str | None
    sha256: str | None
    image_error: str | None = None
    width: int | None
    height: int | None
    captured_at: datetime | None
    camera_id: str | None
    is_night: bool | None
    lat: float | None
    lon: float | None
    meta: dict[str, Any]
    predictions: list[PredictionRead] = Field(default_factory=list)


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
    limit: int
    offset: int


class ReferenceReason(BaseModel):
    reason: str
    items: int
    examples: list[str]


class ReferenceStatus(BaseModel):
    """Where the project's referenced (s3://, gs://, http(s)://) images stand."""

    references: int
    stored: int = Field(description="fetched into the blob store: trainable and exportable")
    failed: int = Field(
        description="the last fetch failed (retried at the next freeze), or settings forbid it"
    )
    pending: int = Field(description="not fetched yet")
    failures: list[ReferenceReason] = Field(description="failed items grouped by reason, most first")
