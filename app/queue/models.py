"""Queue state: one hardness row per item (priority + lease), per-user skips and serving cursors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow

STATUSES = ("pending", "leased", "done", "skipped", "review")


class Hardness(Base):
    """How hard an item is (from ml.scoring) and where it stands in the queue."""

    __tablename__ = "hardness"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    priority: Mapped[float] = mapped_column(default=0.0)
    mean_score: Mapped[float | None]
    entropy: Mapped[float | None]
    margin: Mapped[float | None]
    disagreement: Mapped[float | None]
    threshold_distance: Mapped[float | None]
    vote_ratio: Mapped[float | None]
    score_std: Mapped[float | None]
    box_disagreement: Mapped[float] = mapped_column(default=0.0)
    n_models: Mapped[int] = mapped_column(default=0)
    likely_positive: Mapped[bool] = mapped_column(default=False)
    reasons: Mapped[list | None]
    status: Mapped[str] = mapped_column(String(10), default="pending")
    lease_owner: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lease_expires_at: Mapped[datetime | None]
    annotation_count: Mapped[int] = mapped_column(default=0)
    skip_count: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# "Next hardest pending item of this project" is an index range scan in priority order: O(log n).
Index("ix_hardness_next", Hardness.project_id, Hardness.status, Hardness.priority.desc())
# The positive quota asks for the hardest pending likely positive: same, within the rare positives. The index
# holds only them (migration 0014), so writing any other row updates one secondary index less. (The WHERE is
# spelled as each dialect renders the query's `likely_positive IS true`, so SQLite's planner matches it.)
Index(
    "ix_hardness_next_positive",
    Hardness.project_id,
    Hardness.status,
    Hardness.priority.desc(),
    postgresql_where=Hardness.likely_positive,
    sqlite_where=Hardness.likely_positive.is_(True),
)


class QueueSkip(Base):
    """A user skipped an item: it goes back to the pool for others, not for this user for a while."""

    __tablename__ = "queue_skips"
    __table_args__ = (Index("ix_queue_skips_user_item", "user_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    skipped_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueCursor(Base):
    """Per user and project: what was served last and how many likely positives, for batch diversity."""

    __tablename__ = "queue_cursors"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    last_item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"))
    served_total: Mapped[int] = mapped_column(default=0)
    served_positive: Mapped[int] = mapped_column(default=0)
