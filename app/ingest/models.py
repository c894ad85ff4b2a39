"""Items (one image each) and the cascade's predictions on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_items_project_camera", "project_id", "camera_id"),
        Index("ix_items_project_captured", "project_id", "captured_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    image_uri: Mapped[str | None] = mapped_column(String(1024))  # blob:<sha256> or a reference (URL)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None]
    height: Mapped[int | None]
    phash: Mapped[int | None] = mapped_column(BigInteger)  # 64-bit dHash stored as signed int64
    # Why a referenced (s3://, gs://, http(s)://) image could not be fetched; None once fetched or untried.
    image_error: Mapped[str | None] = mapped_column(String(500))
    captured_at: Mapped[datetime | None]
    camera_id: Mapped[str | None] = mapped_column(String(255))
    is_night: Mapped[bool | None]
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    meta: Mapped[dict] = mapped_column(default=dict)  # tags and any other metadata
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("item_id", "model", "model_version"),
        # what every filtered read names (drift windows: project, model, newest first); migration 0013
        Index("ix_predictions_project_model_received", "project_id", "model", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100), default="")
    score: Mapped[float | None]  # P(positive)
    probs: Mapped[list | None]
    label: Mapped[str | None] = mapped_column(String(255))
    boxes: Mapped[list] = mapped_column(default=list)
    embedding: Mapped[list | None]
    extra: Mapped[dict] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


# What one model said of an item, as exports and the label page read it (with whatever keys they need).
PREDICTION_ANSWER = (
    Prediction.model,
    Prediction.model_version,
    Prediction.score,
    Prediction.probs,
    Prediction.label,
    Prediction.boxes,
)
