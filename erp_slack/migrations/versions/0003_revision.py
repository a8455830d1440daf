"""deliveries.revision: a document may return to a state it was in before.

A hold put on, taken off and put on again is three events, but the third has the same version
hash as the first. The outbox stays unique per version *and* revision: a version is a duplicate
only when it equals the record's latest version, and otherwise is queued again with the next
revision number for that version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OLD = ("source", "company", "entity", "record_key", "version", "dry_run")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint("uq_delivery_version", type_="unique")
        batch.create_unique_constraint("uq_delivery_version", [*_OLD, "revision"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_delivery_version", type_="unique")
        batch.create_unique_constraint("uq_delivery_version", list(_OLD))
        batch.drop_column("revision")
