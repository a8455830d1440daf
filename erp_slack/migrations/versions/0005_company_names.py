"""company_names: what Slack calls each company, kept by the runs that poll it.

A drainer renders rows of every source and company on the database, so the display name a
company's section gives must be where every drainer can read it, not only in that source's
settings.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "company_names",
        sa.Column("source", sa.String(20), primary_key=True),
        sa.Column("company", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("company_names")
