"""Period archive threads: a parent message per channel, company and period.

``archive_threads`` holds each parent: its label and end, the id its message carries (so a parent
whose post was not recorded is found in the channel instead of posted twice), where it is, and
how many replies its totals show. ``deliveries.archive`` is the period a delivery is a reply of,
``deliveries.broadcast`` whether that reply is also shown in the channel.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("archive", sa.String(40), nullable=True))
        batch.add_column(sa.Column("broadcast", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "archive_threads",
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(20), primary_key=True),
        sa.Column("company", sa.String(100), primary_key=True),
        sa.Column("period", sa.String(40), primary_key=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("shown", sa.Integer(), nullable=False, server_default="-1"),
        sa.Column("closed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("archive_threads")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("broadcast")
        batch.drop_column("archive")
