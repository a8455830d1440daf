"""The Dynamics GP credentials block: the core's GP connection settings, saved in Prefect."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import ConfigDict

from erp_slack.config import GpConnection
from erp_slack.connect import gp_client, gp_entities
from erp_slack.model import Entity
from erp_slack.sources.base import AuditHook, SourceClient, no_audit


class DynamicsGpCredentials(Block, GpConnection):
    """Where Dynamics GP's web service is and the Windows account that reads it."""

    model_config = ConfigDict(extra="allow", frozen=False)
    _block_type_name = "Dynamics GP Credentials"
    _block_type_slug = "erp-slack-dynamics-gp"
    _logo_url = None
    _description = "Dynamics GP connection for erp-slack-flows: Service Based Architecture (REST) or Web Services (SOAP)."

    def entities(self) -> tuple[Entity, ...]:
        """The GP entities this block polls."""
        return gp_entities(self)

    def get_client(self, *, audit: AuditHook = no_audit) -> SourceClient:
        """A new GP client (one per run: NTLM authenticates the connection)."""
        return gp_client(self, audit=audit)
