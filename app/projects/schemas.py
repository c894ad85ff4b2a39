"""Project request/response schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.projects.models import DEFAULT_QUESTION

ProjectKind = Literal["binary", "multiclass", "detection"]


class ProjectCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: ProjectKind = "binary"
    classes: list[str] = Field(default_factory=lambda: ["negative", "positive"], min_length=2)
    box_classes: list[str] = Field(default_factory=list)
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    overlap: int = Field(1, ge=1, le=10)
    strategy: Literal["uncertainty", "disagreement", "hybrid", "random"] = "hybrid"
    strategy_weights: dict[str, float] = Field(default_factory=dict)
    question: str = DEFAULT_QUESTION

    @model_validator(mode="after")
    def _detection_needs_box_classes(self) -> ProjectCreate:
        if self.kind == "detection" and not self.box_classes:
            raise ValueError("box_classes: a detection project needs at least one box class")
        return self


class ProjectRead(ProjectCreate):
    model_config = ConfigDict(from_attributes=True)
    name: str
    id: int
    created_at: datetime


class ProjectUpdate(BaseModel):
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    overlap: int | None = Field(None, ge=1, le=10)
    strategy: Literal["uncertainty", "disagreement", "hybrid", "random"] | None = None
    strategy_weights: dict[str, float] | None = None
    question: str | None = None
