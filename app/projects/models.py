"""A project is one labeling task: what is asked, which classes, which production threshold."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow

DEFAULT_QUESTION = "Is there roadwork in this image? Answer yes or no."


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="binary")  # binary | multiclass | detection
    classes: Mapped[list] = mapped_column(default=lambda: ["negative", "positive"])
    box_classes: Mapped[list] = mapped_column(default=list)
    threshold: Mapped[float] = mapped_column(default=0.5)
    overlap: Mapped[int] = mapped_column(default=1)
    strategy: Mapped[str] = mapped_column(String(30), default="hybrid")
    strategy_weights: Mapped[dict] = mapped_column(default=dict)
    question: Mapped[str] = mapped_column(String(500), default=DEFAULT_QUESTION)
    instructions: Mapped[str] = mapped_column(Text, default="", server_default="")  # markdown
    daily_goal: Mapped[int] = mapped_column(default=0, server_default="0")  # items per annotator; 0 = none
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
