"""The ERP's own currency setup: the ISO code of each currency id, per source and company.

Dynamics GP names currencies by the site's ids (``Z-US$``); its currency setup holds the ISO
4217 code. A run reads it and keeps it here, so every drainer renders ``USD``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "currency_codes",
        sa.Column("source", sa.String(20), primary_key=True),
        sa.Column("company", sa.String(100), primary_key=True),
        sa.Column("currency", sa.String(40), primary_key=True),
        sa.Column("code", sa.String(3), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("currency_codes")
