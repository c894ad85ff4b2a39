"""One stored drift check: which windows were compared, how, and whether it raised an alarm."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow

DRIFT_KINDS = ("score", "embedding")


class DriftCheck(Base):
    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_latest", "project_id", "model", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # score | embedding
    method: Mapped[str] = mapped_column(String(20))  # ks | mmd
    reference_start: Mapped[datetime]
    reference_end: Mapped[datetime]
    recent_start: Mapped[datetime]
    recent_end: Mapped[datetime]
    n_reference: Mapped[int]
    n_recent: Mapped[int]
    p_value: Mapped[float]
    threshold: Mapped[float]  # the p-value below which this check alarms
    distance: Mapped[float | None]
    is_drift: Mapped[bool] = mapped_column(default=False)
    boosted_items: Mapped[int] = mapped_column(default=0)
    details: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
