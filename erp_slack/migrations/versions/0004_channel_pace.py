"""channel_pace: the next time each Slack channel may be posted to, shared by every drainer.

Two drainers on one audit database (a SYSPRO run and a GP run, or a backfill) that post to the
same channel reserve their slots here, one atomic update per post, so together they keep the
channel's pace instead of each keeping it alone at twice the rate.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_pace",
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column("next_at", sa.Float(), nullable=False),  # seconds since the epoch, UTC
    )


def downgrade() -> None:
    op.drop_table("channel_pace")
