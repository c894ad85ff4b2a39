"""class probabilities of multiclass models' holdout scores; worker capabilities

Revision ID: 0011
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.add_column("holdout_scores", sa.Column("probs", JSON, nullable=True))
    op.create_table(
        "worker_capabilities",
        sa.Column("worker_id", sa.String(length=255), nullable=False),
        sa.Column("queues", JSON, nullable=False),
        sa.Column("kinds", JSON, nullable=False),
        sa.Column("gpu", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_capabilities")),
    )
    op.create_index(op.f("ix_worker_capabilities_seen_at"), "worker_capabilities", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_capabilities_seen_at"), table_name="worker_capabilities")
    op.drop_table("worker_capabilities")
    op.drop_column("holdout_scores", "probs")
