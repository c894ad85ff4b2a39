"""Request and response bodies of the dataset endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, model_validator

from ml.slices import validate_slice


class SliceSpec(BaseModel):
    """A slice of the stream on one item metadata key: a value, or a numeric range min <= value < max."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        ...,
        max_length=64,
        description="is_night, camera_id, or any key of the items' metadata",
        examples=["is_night"],
    )
    value: StrictBool | StrictInt | StrictFloat | str | None = Field(
        None, description="items whose metadata[key] equals this (booleans match 'true'/'false' too)"
    )
    min: StrictInt | StrictFloat | None = Field(None, description="numeric range: metadata[key] >= min")
    max: StrictInt | StrictFloat | None = Field(None, description="numeric range: metadata[key] < max")

    @model_validator(mode="after")
    def _valid(self) -> SliceSpec:
        validate_slice(self.model_dump())
        return self

    def canonical(self) -> dict:
        return validate_slice(self.model_dump())


class FreezeFilters(BaseModel):
    """Which consensus-labeled items enter a new version (the holdout always does)."""

    captured_from: datetime | None = Field(None, description="only items captured at or after this time")
    captured_to: datetime | None = Field(None, description="only items captured before this time")
    camera_ids: list[str] = Field(default_factory=list, description="only these cameras (empty = all)")
    label_sources: list[str] = Field(
        default_factory=list,
        description="only labels from these sources, e.g. review, majority (empty = all)",
    )
    include_unlabeled: bool = Field(
        False,
        description="also put the items nobody has labeled yet (stored images only) in train, without a label: "
        "the pool a teacher answers for distillation (vlm_distill, distill)",
    )
    slice: SliceSpec | None = Field(
        None,
        description="train and val only on this slice of the stream (a specialist's dataset); the holdout stays "
        "whole and the registry scores the specialist on its slice of it",
    )

    @model_validator(mode="after")
    def _time_range(self) -> FreezeFilters:
        if self.captured_from and self.captured_to and self.captured_from >= self.captured_to:
            raise ValueError("captured_to must be after captured_from")
        return self


class DatasetFreeze(FreezeFilters):
    val_fraction: float = Field(0.2, ge=0.0, le=0.5, description="share of each class that goes to val")
    holdout_fraction: float = Field(
        0.15, gt=0.0, le=0.5, description="share reserved as the fixed holdout at the project's first freeze"
    )


class HoldoutGrow(BaseModel):
    fraction: float = Field(
        0.15, gt=0.0, le=1.0, description="share of the labeled items never used by any version to add"
    )


class HoldoutRead(BaseModel):
    project: str
    size: int
    added: int = 0
    classes: dict[str, int]


class DatasetVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project: str
    version: int
    content_hash: str
    item_count: int
    val_fraction: float
    filters: dict
    stats: dict
    created_at: datetime
    created_by: int | None


class DatasetItemRead(BaseModel):
    item_id: int
    external_id: str
    label: int | None
    label_name: str | None
    boxes: list
    split: str


class DatasetVersionDetail(DatasetVersionRead):
    items: list[DatasetItemRead]
    export_formats: list[str]
