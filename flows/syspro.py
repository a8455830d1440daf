"""The SYSPRO → Slack flow: one poll cycle of one SYSPRO company."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from blocks import SysproCredentials
from erp_slack.cycle import summaries_dict
from erp_slack.routing import DEFAULT_ROUTES, Rule
from flows.pipeline import run_source


@flow(name="syspro-to-slack", log_prints=True, timeout_seconds=3600)
def syspro_to_slack(
    entities: list[str] | None = None,
    routes: list[Rule] | None = None,
    dry_run: bool = False,
    since: str | int | None = None,
    until: str | int | None = None,
    first_run: Literal["baseline", "post"] = "baseline",
    silence_after: dict[str, str] | None = None,
    late_after: str | None = None,
    company: str | None = None,
    syspro_block: str = "syspro",
    slack_block: str = "slack",
    audit_block: str = "audit",
) -> dict[str, Any]:
    """Post new and changed SYSPRO documents to Slack.

    Args:
        entities: Entities to poll (``ap_invoice``, ``purchase_order``, ``goods_receipt``,
            ``ap_journal``, ``gl_journal``, ``sales_order``); empty means all.
        routes: Routing rules, tried top to bottom; empty means the built-in defaults.
        dry_run: Record what would be posted (status ``dry-run``) and post nothing.
        since: Backfill: re-read from this cursor value (a date, timestamp or rowversion).
        until: Backfill: stop before this cursor value. A backfill never moves the live watermark.
        first_run: What the very first run does with documents already in the ERP: ``baseline``
            records them without posting (later changes still post), ``post`` posts them all.
        silence_after: Entity -> how long it normally goes without a new or changed document
            (``"1d"``, ``"6h"``); longer, and the ops channel is told.
        late_after: The longest expected between two completed runs (``"15m"``); the first run
            after a longer gap tells the ops channel that runs complete again.
        company: Only this company (a backfill of one); empty means every configured company.
        syspro_block: Name of the SYSPRO Credentials block.
        slack_block: Name of the ERP Slack Bot block.
        audit_block: Name of the ERP Slack Audit Database block.
    """
    creds = SysproCredentials.load(syspro_block)
    summaries = run_source(
        "syspro", creds, slack_block=slack_block, audit_block=audit_block, entities=entities,
        routes=routes or list(DEFAULT_ROUTES), dry_run=dry_run, since=since, until=until,
        first_run=first_run, silence_after=silence_after, late_after=late_after, company=company,
    )
    return summaries_dict(summaries)
