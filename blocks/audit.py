"""The audit database block."""

from __future__ import annotations

from pydantic import Field, SecretStr
from prefect.blocks.core import Block

from erp_slack.store import Store


class AuditDatabase(Block):
    """Where erp-slack-flows keeps its outbox, watermarks and audit trail.

    Any SQLAlchemy URL: a SQLite file for one machine, PostgreSQL when several workers share it.
    """

    _block_type_name = "ERP Slack Audit Database"
    _block_type_slug = "erp-slack-audit-database"
    _logo_url = None
    _description = "The SQL store of erp-slack-flows: outbox, watermarks and audit trail."

    url: SecretStr = Field(
        default=SecretStr("sqlite:///erp-slack.db"),
        description="SQLAlchemy URL of the audit database (it may hold a password, so it is kept secret).",
    )

    def get_store(self) -> Store:
        """Open the store (migrating the schema to the latest version)."""
        return Store(self.url.get_secret_value())
