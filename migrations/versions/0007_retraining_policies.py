"""retraining policies and loop runs

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
ACTIVE = sa.text("state IN ('triggered', 'training')")


def upgrade() -> None:
    op.create_table(
        "retraining_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("new_labels", sa.Integer(), nullable=True),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("on_drift", sa.Boolean(), nullable=False),
        sa.Column("jobs", JSON, nullable=False),
        sa.Column("min_holdout_items", sa.Integer(), nullable=False),
        sa.Column("require_improvement", sa.Boolean(), nullable=False),
        sa.Column("slice_keys", JSON, nullable=False),
        sa.Column("slice_tolerance", sa.Double(), nullable=False),
        sa.Column("auto_promote", sa.Boolean(), nullable=False),
        sa.Column("max_runs_per_day", sa.Integer(), nullable=False),
        sa.Column("last_scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_drift_check_id", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_retraining_policies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_retraining_policies_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retraining_policies")),
        sa.UniqueConstraint("project_id", name=op.f("uq_retraining_policies_project_id")),
    )
    op.create_table(
        "loop_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("trigger_detail", JSON, nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("job_ids", JSON, nullable=False),
        sa.Column("candidate_version_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.Column("timeline", JSON, nullable=False),
        sa.Column("advanced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_version_id"],
            ["model_versions.id"],
            name=op.f("fk_loop_runs_candidate_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_loop_runs_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_loop_runs_dataset_version_id_dataset_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_loop_runs_decided_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_loop_runs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loop_runs")),
    )
    op.create_index("ix_loop_runs_project_created", "loop_runs", ["project_id", "created_at"], unique=False)
    op.create_index("ix_loop_runs_state", "loop_runs", ["state"], unique=False)
    op.create_index(
        "uq_loop_runs_one_active",
        "loop_runs",
        ["project_id"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_loop_runs_one_active", table_name="loop_runs")
    op.drop_index("ix_loop_runs_state", table_name="loop_runs")
    op.drop_index("ix_loop_runs_project_created", table_name="loop_runs")
    op.drop_table("loop_runs")
    op.drop_table("retraining_policies")
