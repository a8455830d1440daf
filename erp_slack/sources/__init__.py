"""Source clients and entity tables, one sub-package per ERP."""

from __future__ import annotations

from erp_slack.model import Entity

__all__ = ["all_entities"]


def all_entities() -> dict[tuple[str, str], Entity]:
    """Every entity of every source by (source, name), for rendering stored deliveries.

    SYSPRO's two transports share names, templates and fields (only cursors differ), so either
    table renders the same.
    """
    from erp_slack.sources.gp.entities import ENTITIES as GP
    from erp_slack.sources.syspro.entities import ENTITIES as SYSPRO

    return {(e.source, e.name): e for e in (*SYSPRO, *GP)}
