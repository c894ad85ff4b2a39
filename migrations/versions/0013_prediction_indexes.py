"""predictions: one (project_id, model, received_at) index instead of (project_id, model) and (received_at)

Every query that filters predictions names the project (and mostly the model): the drift windows
(project, model, ordered by received_at), the dashboard's and the ranking's per-model reads. The composite
index serves them all; a lone received_at index served none, and each index is one more b-tree insert per
ingested prediction.

Revision ID: 0013
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_index("ix_predictions_received_at")
        batch_op.drop_index("ix_predictions_project_model")
        batch_op.create_index("ix_predictions_project_model_received", ["project_id", "model", "received_at"])


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_index("ix_predictions_project_model_received")
        batch_op.create_index("ix_predictions_project_model", ["project_id", "model"])
        batch_op.create_index("ix_predictions_received_at", ["received_at"])
