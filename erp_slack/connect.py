"""Building source clients and their entity tables from configuration (one way, for all callers:
blocks, the connection check and the CLI)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Iterable

from erp_slack.config import GpConnection, SysproConnection
from erp_slack.model import Entity
from erp_slack.sources.base import AuditHook, SourceClient, no_audit
from erp_slack.sources.gp.client import GpClient
from erp_slack.sources.gp.entities import ENTITIES as GP_ENTITIES
from erp_slack.sources.gp.webservices import GpWebServicesClient
from erp_slack.sources.syspro.client import connect as syspro_connect
from erp_slack.sources.syspro.entities import entities_for

__all__ = ["syspro_client", "syspro_entities", "gp_client", "gp_entities", "with_lookback"]


def syspro_client(cfg: SysproConnection, *, audit: AuditHook = no_audit) -> SourceClient:
    """A SYSPRO client for ``cfg.transport``; use it as a context manager (it logs off)."""
    return syspro_connect(
        cfg.transport, base_url=cfg.base_url, operator=cfg.operator, company=cfg.company_id,
        operator_password=cfg.operator_password.get_secret_value() or None,
        company_password=cfg.company_password.get_secret_value() or None,
        odata_password=cfg.odata_password.get_secret_value() or None,
        verify=cfg.verify, timeout=cfg.timeout, audit=audit, page_size=cfg.page_size,
    )


def syspro_entities(cfg: SysproConnection) -> tuple[Entity, ...]:
    """SYSPRO's entities; their cursors depend on the transport (rowversion on e.net, dates on
    OData)."""
    return with_lookback(entities_for(cfg.transport), cfg.lookback)


def gp_client(cfg: GpConnection, *, audit: AuditHook = no_audit) -> SourceClient:
    """A Dynamics GP client for ``cfg.transport`` (create one per run: NTLM authenticates the
    connection)."""
    if cfg.transport == "webservices":
        return GpWebServicesClient(
            cfg.base_url, cfg.company, cfg.username, cfg.password.get_secret_value(),
            verify=cfg.verify, timeout=cfg.timeout, audit=audit, include_unposted=cfg.include_unposted,
        )
    return GpClient(
        cfg.base_url, cfg.tenant, cfg.company, cfg.username, cfg.password.get_secret_value(),
        verify=cfg.verify, timeout=cfg.timeout, audit=audit, include_unposted=cfg.include_unposted,
    )


def gp_entities(cfg: GpConnection) -> tuple[Entity, ...]:
    """Dynamics GP's entities."""
    return with_lookback(GP_ENTITIES, cfg.lookback)


def with_lookback(entities: Iterable[Entity], lookback: timedelta | None) -> tuple[Entity, ...]:
    """The entities with every date or time cursor re-reading at least ``lookback`` behind its
    watermark. Never less than an entity's own lookback: that one covers what its column's
    granularity needs (GP receipts change by the day), so a setting can only widen it. Date
    cursors take whole days."""
    if not lookback:
        return tuple(entities)
    out = []
    for e in entities:
        if e.cursor.kind != "rowversion":
            wanted = timedelta(days=math.ceil(lookback / timedelta(days=1))) if e.cursor.kind == "date" else lookback
            if wanted > e.cursor.lookback:
                e = replace(e, cursor=replace(e.cursor, lookback=wanted))
        out.append(e)
    return tuple(out)
