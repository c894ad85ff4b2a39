"""Frozen dataset versions, their items, and each project's fixed holdout set."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class DatasetVersion(Base):
    """An immutable snapshot: which items, which labels, which split; never updated after the freeze."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    filters: Mapped[dict] = mapped_column(default=dict)
    stats: Mapped[dict] = mapped_column(default=dict)
    val_fraction: Mapped[float] = mapped_column(default=0.2)
    item_count: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetItem(Base):
    __tablename__ = "dataset_items"
    __table_args__ = (
        UniqueConstraint("dataset_version_id", "item_id"),
        Index("ix_dataset_items_version_split", "dataset_version_id", "split"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    label: Mapped[int | None]  # class index; None only for detection items labeled by boxes alone
    boxes: Mapped[list] = mapped_column(default=list)  # [x1, y1, x2, y2, class_index], normalised
    split: Mapped[str] = mapped_column(String(10))  # train | val | holdout


class HoldoutItem(Base):
    """The project's fixed evaluation set: chosen once, grown only by explicit action, never trained on."""

    __tablename__ = "holdout_items"
    __table_args__ = (UniqueConstraint("project_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
