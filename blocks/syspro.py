"""The SYSPRO credentials block: the core's SYSPRO connection settings, saved in Prefect."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import ConfigDict

from erp_slack.config import SysproConnection
from erp_slack.connect import syspro_client, syspro_entities
from erp_slack.model import Entity
from erp_slack.sources.base import AuditHook, SourceClient, no_audit


class SysproCredentials(Block, SysproConnection):
    """Where SYSPRO is and how erp-slack-flows logs on (e.net REST or OData)."""

    model_config = ConfigDict(extra="allow", frozen=False)
    _block_type_name = "SYSPRO Credentials"
    _block_type_slug = "erp-slack-syspro"
    _logo_url = None
    _description = "SYSPRO e.net Solutions REST or OData connection for erp-slack-flows."

    def entities(self) -> tuple[Entity, ...]:
        """The SYSPRO entities this block polls (their cursors depend on the transport)."""
        return syspro_entities(self)

    def get_client(self, *, audit: AuditHook = no_audit) -> SourceClient:
        """A SYSPRO client; use it as a context manager so the session is logged off."""
        return syspro_client(self, audit=audit)
