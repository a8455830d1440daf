"""deliveries.mentions and deliveries.urgent: what a delivery's routing rule said about it.

Who it notifies (users, user groups, @here) and whether it goes out even in the channel's quiet
hours. Kept with the row, decided when it is routed, so every drainer treats it the same and a
message can carry no other mentions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("mentions", sa.Text(), nullable=True))
        batch.add_column(sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("urgent")
        batch.drop_column("mentions")
