"""Living messages: one Slack message per document and channel, edited as the document changes.

``living_messages`` keeps, per (source, company, entity, record key, channel), the message that
shows the document's current state and the newest delivery rendered into it (an edit never
goes back to an older state). ``deliveries.style`` is the routing rule's choice (living,
thread-only, new-message) and ``deliveries.thread_ts`` the living message a delivery replied
under, so a reply whose answer was lost is looked for in that thread.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("style", sa.String(20), nullable=True))
        batch.add_column(sa.Column("thread_ts", sa.String(32), nullable=True))
    op.create_table(
        "living_messages",
        sa.Column("source", sa.String(20), primary_key=True),
        sa.Column("company", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(60), primary_key=True),
        sa.Column("record_key", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("living_messages")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("thread_ts")
        batch.drop_column("style")
