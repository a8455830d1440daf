"""Initial audit store: watermarks, deliveries (outbox + audit trail), audit_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "watermarks",
        sa.Column("source", sa.String(20), primary_key=True),
        sa.Column("company", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(60), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("company", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(60), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("cursor", sa.String(64)),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("changes", sa.Text),
        sa.Column("payload", sa.Text),
        sa.Column("batch_uid", sa.String(32)),
        sa.Column("batch_size", sa.Integer),
        sa.Column("slack_channel_id", sa.String(32)),
        sa.Column("slack_ts", sa.String(32)),
        sa.Column("permalink", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", TZ),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
        sa.Column("flow_run_id", sa.String(64)),
        sa.UniqueConstraint(
            "source", "company", "entity", "record_key", "version", "dry_run", name="uq_delivery_version"
        ),
    )
    op.create_index("ix_deliveries_lane", "deliveries", ["status", "channel", "id"])
    op.create_index("ix_deliveries_record", "deliveries", ["source", "company", "entity", "record_key"])
    op.create_index("ix_deliveries_batch", "deliveries", ["batch_uid"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("source", sa.String(20)),
        sa.Column("company", sa.String(100)),
        sa.Column("entity", sa.String(60)),
        sa.Column("record_key", sa.String(200)),
        sa.Column("channel", sa.String(100)),
        sa.Column("delivery_id", sa.Integer),
        sa.Column("message", sa.Text),
        sa.Column("details", sa.Text),
        sa.Column("flow_run_id", sa.String(64)),
    )
    op.create_index("ix_audit_kind_at", "audit_events", ["kind", "at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("deliveries")
    op.drop_table("watermarks")
