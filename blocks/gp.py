"""The Dynamics GP credentials block."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr
from prefect.blocks.core import Block

from erp_slack.config import GpConfig
from erp_slack.connect import gp_client, gp_entities
from erp_slack.model import Entity
from erp_slack.sources.base import AuditHook, SourceClient, no_audit


class DynamicsGpCredentials(Block):
    """Where Dynamics GP's web service is and the Windows account that reads it."""

    _block_type_name = "Dynamics GP Credentials"
    _block_type_slug = "erp-slack-dynamics-gp"
    _logo_url = None
    _description = "Dynamics GP Service Based Architecture (REST) connection for erp-slack-flows."

    base_url: str = Field(description="Service URL, e.g. https://gp.example.local:443/GPService.")
    tenant: str = Field(default="DefaultTenant", description="GP tenant name.")
    company: str = Field(description="GP company name as GP shows it, e.g. Fabrikam, Inc.")
    username: str = Field(description="Windows account, DOMAIN\\user or user@domain.")
    password: SecretStr = Field(description="Password of the Windows account.")
    verify: bool | str = Field(
        default=True, description="True to verify TLS with the system CAs, or the path of a CA bundle file."
    )
    timeout: float = Field(default=30.0, description="Seconds to wait for one reply.")
    lookback: timedelta | None = Field(
        default=None, description="Re-read at least this far behind the watermark on every poll (default: each "
        "entity's own). Widen it when documents are entered back-dated or late.",
    )
    include_unposted: bool = Field(default=False, description="Also notify unposted (work) payables documents.")

    @property
    def company_name(self) -> str:
        return self.company

    def to_config(self) -> GpConfig:
        """The core configuration this block holds."""
        return GpConfig(
            base_url=self.base_url, tenant=self.tenant, company=self.company, username=self.username,
            password=self.password, verify=self.verify, timeout=self.timeout,
            include_unposted=self.include_unposted, lookback=self.lookback,
        )

    def entities(self, *, date_cursors: bool = False) -> tuple[Entity, ...]:
        """The GP entities this block polls (their UTC timestamps take dates as they are)."""
        return gp_entities(self.to_config())

    def get_client(self, *, audit: AuditHook = no_audit) -> SourceClient:
        """A new GP client (one per run: NTLM authenticates the connection)."""
        return gp_client(self.to_config(), audit=audit)
