"""The connection check as a flow, so it can be run from the Prefect UI (posts nothing)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from blocks import AuditDatabase, DynamicsGpCredentials, SlackBot, SysproCredentials
from erp_slack.check import format_table, run_checks
from erp_slack.config import AppConfig, AuditConfig, GpConfig, SlackConfig, SysproConfig
from erp_slack.routing import DEFAULT_ROUTES, Rule


@flow(name="connection-check", log_prints=True, timeout_seconds=600)
def connection_check(
    routes: list[Rule] | None = None,
    syspro_block: str | None = "syspro",
    gp_block: str | None = "dynamics-gp",
    slack_block: str = "slack",
    audit_block: str = "audit",
) -> list[dict[str, Any]]:
    """Log on to each configured source and off again, read one row per entity, and check Slack.

    Args:
        routes: The routing rules whose channels to check; empty means the built-in defaults.
        syspro_block: SYSPRO Credentials block name; empty to skip SYSPRO.
        gp_block: Dynamics GP Credentials block name; empty to skip GP.
        slack_block: ERP Slack Bot block name.
        audit_block: ERP Slack Audit Database block name.
    """
    logger = get_run_logger()
    slack = SlackBot.load(slack_block)
    config = AppConfig(
        syspro=_maybe(SysproCredentials, syspro_block),
        dynamics_gp=_maybe(DynamicsGpCredentials, gp_block),
        slack=SlackConfig.of(slack),
        audit=AuditConfig.of(AuditDatabase.load(audit_block)),
    )
    results = run_checks(config, routes or list(DEFAULT_ROUTES))
    logger.info("\n%s", format_table(results))
    rows = [r.__dict__ for r in results]
    create_table_artifact(rows, key="connection-check", description="Connection check")
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} check(s) failed: " + "; ".join(f"{r.system} {r.check}" for r in failed))
    return rows


def _maybe(block_type: Any, name: str | None) -> Any:
    if not name:
        return None
    try:
        block = block_type.load(name)
    except ValueError as exc:
        if "Unable to find block document" in str(exc):
            return None  # that source is not configured here
        raise
    # A badly filled block fails here, naming the field.
    return (SysproConfig if isinstance(block, SysproCredentials) else GpConfig).of(block)
