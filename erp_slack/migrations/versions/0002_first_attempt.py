"""deliveries.first_attempt_at: when a row was first sent towards Slack.

Reconciliation searches channel history from here (a claim time moves; this never does), and the
send policy measures a record's age from its first attempt, not from when it was queued.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("first_attempt_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("first_attempt_at")
