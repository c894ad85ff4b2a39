"""A project's retraining policy and its loop runs (the run row is the truth of where a run stands)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow

# A run advances TRIGGERED -> TRAINING -> one of the decisions; HELD waits for an admin.
TRIGGERED, TRAINING = "triggered", "training"
PROMOTED, HELD, REJECTED, FAILED = "promoted", "held", "rejected", "failed"
ACTIVE = (TRIGGERED, TRAINING)
STATES = (TRIGGERED, TRAINING, PROMOTED, HELD, REJECTED, FAILED)
TRIGGERS = ("labels", "schedule", "drift", "manual")


class RetrainingPolicy(Base):
    """What starts a loop run, what it trains, and what it may promote; one per project."""

    __tablename__ = "retraining_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), unique=True)
    paused: Mapped[bool] = mapped_column(default=False)
    new_labels: Mapped[int | None]  # start when this many consensus labels are newer than the last version
    schedule: Mapped[str | None] = mapped_column(String(100))  # cron: minute hour day month weekday (UTC)
    on_drift: Mapped[bool] = mapped_column(default=False)
    jobs: Mapped[list] = mapped_column(default=list)  # job submissions (kind, base_model, config, ...)
    min_holdout_items: Mapped[int] = mapped_column(default=30)
    require_improvement: Mapped[bool] = mapped_column(default=True)  # MCC difference CI above 0
    slice_keys: Mapped[list] = mapped_column(default=list)
    slice_tolerance: Mapped[float] = mapped_column(default=0.05)
    auto_promote: Mapped[bool] = mapped_column(default=False)
    max_runs_per_day: Mapped[int] = mapped_column(default=4)
    last_scheduled_at: Mapped[datetime | None]  # the schedule's last firing (started a run or not)
    last_drift_check_id: Mapped[int | None]  # the newest drift alarm already answered
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoopRun(Base):
    """One turn of the loop: trigger -> dataset version -> jobs -> evaluation -> decision."""

    __tablename__ = "loop_runs"
    __table_args__ = (
        Index("ix_loop_runs_project_created", "project_id", "created_at"),
        Index("ix_loop_runs_state", "state"),
        # two triggers at once: the second insert fails here, whatever process it comes from
        Index(
            "uq_loop_runs_one_active",
            "project_id",
            unique=True,
            postgresql_where=text("state IN ('triggered', 'training')"),
            sqlite_where=text("state IN ('triggered', 'training')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(20))
    trigger_detail: Mapped[dict] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(12), default=TRIGGERED)
    policy: Mapped[dict] = mapped_column(default=dict)  # the policy as it was when the run started
    dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL")
    )
    job_ids: Mapped[list] = mapped_column(default=list)
    candidate_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    figures: Mapped[dict] = mapped_column(default=dict)
    timeline: Mapped[list] = mapped_column(default=list)  # [{"at", "event", "detail"}]
    advanced_at: Mapped[datetime | None]  # last state change (the sweep re-sends runs quiet for long)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
