"""Which Hardcase annotation stands for which Label Studio annotation, so updates and deletions find it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class LabelStudioAnnotation(Base):
    """One Label Studio annotation (by its id in that Label Studio) and the Hardcase annotation now holding
    its answer; every earlier answer stays in the item's history (superseded or retracted)."""

    __tablename__ = "ls_annotations"
    __table_args__ = (UniqueConstraint("project_id", "ls_annotation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ls_annotation_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
