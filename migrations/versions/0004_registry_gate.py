"""registry gate: forced promotions keep their reason and the gate's findings in the stage history

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_stage_changes") as batch_op:
        batch_op.add_column(sa.Column("forced", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("force_reason", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column(
                "gate",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("model_stage_changes") as batch_op:
        batch_op.drop_column("gate")
        batch_op.drop_column("force_reason")
        batch_op.drop_column("forced")
