"""Model versions, their holdout scores (so every comparison uses the same items) and stage changes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow

CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"
STAGES = (CANDIDATE, PRODUCTION, ARCHIVED)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "version"),
        Index("ix_model_versions_project_stage", "project_id", "stage"),
        # at most one production model per project, whatever races the promote endpoint sees
        Index(
            "uq_model_versions_one_production",
            "project_id",
            unique=True,
            postgresql_where=text("stage = 'production'"),
            sqlite_where=text("stage = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int]
    kind: Mapped[str] = mapped_column(String(50))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), unique=True)
    dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL")
    )
    threshold: Mapped[float]
    metrics: Mapped[dict] = mapped_column(default=dict)  # holdout metrics computed by the registry
    training_metrics: Mapped[dict] = mapped_column(default=dict)  # as reported by the trainer
    stage: Mapped[str] = mapped_column(String(12), default=CANDIDATE)
    artifact_dir: Mapped[str] = mapped_column(String(1024))
    artifact_archive: Mapped[str] = mapped_column(String(1024))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact_bytes: Mapped[int] = mapped_column(default=0)
    files: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    promoted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class HoldoutScore(Base):
    __tablename__ = "holdout_scores"

    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float]  # P(positive); for a multiclass model the top-1 probability
    probs: Mapped[list | None] = mapped_column(default=None)  # multiclass: the class probabilities


class StageChange(Base):
    """Who moved which model to which stage, when: the audit trail behind promote and rollback."""

    __tablename__ = "model_stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    from_stage: Mapped[str] = mapped_column(String(12))
    to_stage: Mapped[str] = mapped_column(String(12))
    action: Mapped[str] = mapped_column(String(20))  # promote | rollback | archive
    replaced_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    # a promotion the gate refused that an admin forced, with why, and what the gate found at that moment
    forced: Mapped[bool] = mapped_column(default=False, server_default=false())
    force_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    gate: Mapped[dict | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SliceRoute(Base):
    """A specialist promoted for one slice of the stream: the cascade sends that slice's items to it, and
    everything else to the production generalist."""

    __tablename__ = "slice_routes"
    __table_args__ = (UniqueConstraint("project_id", "slice_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    slice_key: Mapped[str] = mapped_column(String(400))  # canonical JSON of the spec: one route per slice
    spec: Mapped[dict] = mapped_column(default=dict)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    promoted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    promoted_at: Mapped[datetime] = mapped_column(default=utcnow)
