"""The audit database block: the core's audit store setting, saved in Prefect."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import ConfigDict

from erp_slack.config import AuditConfig
from erp_slack.store import Store


class AuditDatabase(Block, AuditConfig):
    """Where erp-slack-flows keeps its outbox, watermarks and audit trail.

    Any SQLAlchemy URL: a SQLite file for one machine, PostgreSQL when several workers share it.
    """

    model_config = ConfigDict(extra="allow", frozen=False)
    _block_type_name = "ERP Slack Audit Database"
    _block_type_slug = "erp-slack-audit-database"
    _logo_url = None
    _description = "The SQL store of erp-slack-flows: outbox, watermarks and audit trail."

    def get_store(self) -> Store:
        """Open the store (migrating the schema to the latest version)."""
        return Store(self.url.get_secret_value())
