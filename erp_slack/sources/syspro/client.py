"""Choosing a SYSPRO transport: ``connect(transport, ...)`` builds the e.net or the OData client.
"""

from __future__ import annotations

import time
from typing import Callable

import httpx

from erp_slack.errors import (
    ConfigError,
)
from erp_slack.sources.base import AuditHook, no_audit
from erp_slack.sources.http import RetryPolicy, Verify
from erp_slack.sources.syspro.base import DEFAULT_PAGE_SIZE
from erp_slack.sources.syspro.enet import SysproEnetClient
from erp_slack.sources.syspro.odata import SysproODataClient

__all__ = ["connect"]


def connect(
    transport: str,
    *,
    base_url: str,
    operator: str,
    company: str,
    operator_password: str | None = None,
    company_password: str | None = None,
    odata_password: str | None = None,
    verify: Verify = True,
    timeout: float = 30.0,
    audit: AuditHook = no_audit,
    page_size: int | None = None,
    http_transport: httpx.BaseTransport | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SysproEnetClient | SysproODataClient:
    """Build the client for ``transport`` (``"enet"`` or ``"odata"``) from settings.

    e.net needs ``operator_password`` (and ``company_password`` if the company has one); OData
    needs ``odata_password``. ``client.entities`` is the matching entity tuple.

    Raises:
        ConfigError: unknown transport or a missing password (the path names the setting).
    """
    if transport == "enet":
        if operator_password is None:
            raise ConfigError("syspro.operator_password", "the e.net transport needs the operator password")
        return SysproEnetClient(
            base_url, operator, operator_password, company, company_password, verify=verify,
            timeout=timeout, audit=audit, page_size=page_size or DEFAULT_PAGE_SIZE, transport=http_transport,
            retry=retry, sleep=sleep,
        )
    if transport == "odata":
        if odata_password is None:
            raise ConfigError("syspro.odata_password", "the OData transport needs the operator's OData password")
        return SysproODataClient(
            base_url, operator, odata_password, company, verify=verify, timeout=timeout, audit=audit,
            page_size=page_size or DEFAULT_PAGE_SIZE, transport=http_transport, retry=retry, sleep=sleep,
        )
    raise ConfigError("syspro.transport", f"unknown transport {transport!r}; use 'enet' or 'odata'")
