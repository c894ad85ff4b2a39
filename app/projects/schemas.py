"""Project request/response schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

ProjectKind = Literal["binary", "multiclass", "detection"]
MAX_INSTRUCTIONS = 20_000


def default_question(kind: str, classes: list[str], box_classes: list[str]) -> str:
    """The question a project asks when its creator gave none: from its own classes, never another project's."""
    readable = [name.replace("_", " ") for name in classes]
    if kind == "multiclass":
        return f"Which of these fits the image: {', '.join(readable)}?"
    question = f"Does this image show {readable[1]}? Answer yes or no."
    if box_classes:
        question += f" Box every {', '.join(b.replace('_', ' ') for b in box_classes)}."
    return question


class ProjectCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: ProjectKind = "binary"
    classes: list[str] = Field(default_factory=lambda: ["negative", "positive"], min_length=2)
    box_classes: list[str] = Field(default_factory=list)
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    overlap: int = Field(1, ge=1, le=10)
    strategy: Literal["uncertainty", "disagreement", "hybrid", "random"] = "hybrid"
    strategy_weights: dict[str, float] = Field(default_factory=dict)
    question: str = Field(
        "", max_length=500, description="asked on the label page; empty: derived from the classes"
    )
    instructions: str = Field("", max_length=MAX_INSTRUCTIONS, description="markdown shown on the label page")
    daily_goal: int = Field(0, ge=0, le=100_000, description="items per annotator and day; 0 = no goal")

    @model_validator(mode="after")
    def _detection_needs_box_classes(self) -> ProjectCreate:
        if self.kind == "detection" and not self.box_classes:
            raise ValueError("box_classes: a detection project needs at least one box class")
        if self.kind == "multiclass" and self.box_classes:
            raise ValueError("box_classes: a multiclass project takes no boxes")
        if self.kind != "multiclass" and len(self.classes) != 2:
            raise ValueError(f"classes: a {self.kind} project has exactly two classes (negative, positive)")
        if not self.question.strip():
            self.question = default_question(self.kind, self.classes, self.box_classes)
        return self

    @field_validator("classes", "box_classes")
    @classmethod
    def _names_are_distinct(cls, names: list[str]) -> list[str]:
        names = [name.strip() for name in names]
        if any(not name for name in names):
            raise ValueError("class names cannot be empty")
        if len(set(names)) != len(names):
            raise ValueError("class names must be distinct")
        return names


class ProjectRead(ProjectCreate):
    model_config = ConfigDict(from_attributes=True)
    name: str
    id: int
    created_at: datetime

    @field_validator("strategy_weights", "box_classes", mode="before")
    @classmethod
    def _stored_null_is_empty(cls, value: object, info: ValidationInfo) -> object:
        # Rows written before PATCH rejected null hold JSON null; reading them must not fail.
        if value is None:
            return {} if info.field_name == "strategy_weights" else []
        return value


# A PATCH names only what changes. Every field is optional but none is nullable: an explicit null is a 422
# naming the field (these columns are NOT NULL), an omitted field keeps its value (model_dump(exclude_unset)).
class ProjectUpdate(BaseModel):
    threshold: float = Field(None, ge=0.0, le=1.0)  # type: ignore[assignment]
    overlap: int = Field(None, ge=1, le=10)  # type: ignore[assignment]
    strategy: Literal["uncertainty", "disagreement", "hybrid", "random"] = None  # type: ignore[assignment]
    strategy_weights: dict[str, float] = None  # type: ignore[assignment]
    question: str = Field(None, max_length=500)  # type: ignore[assignment]
    instructions: str = Field(None, max_length=MAX_INSTRUCTIONS)  # type: ignore[assignment]
    daily_goal: int = Field(None, ge=0, le=100_000)  # type: ignore[assignment]
