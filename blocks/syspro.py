"""The SYSPRO credentials block."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr
from prefect.blocks.core import Block

from erp_slack.config import SysproConfig
from erp_slack.connect import syspro_client, syspro_entities
from erp_slack.model import Entity
from erp_slack.sources.base import AuditHook, SourceClient, no_audit


class SysproCredentials(Block):
    """Where SYSPRO is and how erp-slack-flows logs on (e.net REST or OData)."""

    _block_type_name = "SYSPRO Credentials"
    _block_type_slug = "erp-slack-syspro"
    _logo_url = None
    _description = "SYSPRO e.net Solutions REST or OData connection for erp-slack-flows."

    transport: Literal["enet", "odata"] = Field(
        default="enet", description="Which SYSPRO API to use: e.net Solutions REST or OData (SYSPRO 8 2021 R2+)."
    )
    base_url: str = Field(description="Server URL, e.g. https://syspro.example.local:20190.")
    operator: str = Field(description="SYSPRO operator code used to log on.")
    operator_password: SecretStr = Field(default=SecretStr(""), description="Operator password (e.net).")
    company_id: str = Field(description="SYSPRO company ID, e.g. EDU1.")
    company_password: SecretStr = Field(default=SecretStr(""), description="Company password, if the company has one.")
    odata_password: SecretStr = Field(default=SecretStr(""), description="The operator's OData password (OData).")
    verify: bool | str = Field(
        default=True, description="True to verify TLS with the system CAs, or the path of a CA bundle file."
    )
    timeout: float = Field(default=30.0, description="Seconds to wait for one reply.")
    lookback: timedelta | None = Field(
        default=None, description="Re-read at least this far behind the watermark on every poll (default: each "
        "entity's own). Widen it when documents are entered back-dated or late.",
    )
    page_size: int = Field(default=500, description="Rows per request (OData caps replies at 5,000).")

    @property
    def company_name(self) -> str:
        return self.company_id

    def to_config(self) -> SysproConfig:
        """The core configuration this block holds."""
        return SysproConfig(
            transport=self.transport, base_url=self.base_url, operator=self.operator,
            operator_password=self.operator_password, company_id=self.company_id,
            company_password=self.company_password, odata_password=self.odata_password, verify=self.verify,
            timeout=self.timeout, page_size=self.page_size, lookback=self.lookback,
        )

    def entities(self, *, date_cursors: bool = False) -> tuple[Entity, ...]:
        """The SYSPRO entities this block polls (cursors depend on the transport; a backfill by
        dates reads them by their date column)."""
        return syspro_entities(self.to_config(), date_cursors=date_cursors)

    def get_client(self, *, audit: AuditHook = no_audit) -> SourceClient:
        """A SYSPRO client; use it as a context manager so the session is logged off."""
        return syspro_client(self.to_config(), audit=audit)
