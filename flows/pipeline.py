"""What every source flow shares: load the blocks, run the core cycle with Prefect's tasks, lock,
logger and artifact.

Source flows (``flows/syspro.py``, ``flows/gp.py``) load their credentials block and call
``run_source``. What a run does is ``erp_slack.cycle.run_cycle``; this module only plugs
Prefect in.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

from prefect import get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.concurrency.sync import concurrency

from blocks import AuditDatabase, SlackBot
from erp_slack.config import parse_duration
from erp_slack.cycle import (
    RunSummary,
    SlackOut,
    Watch,
    run_companies,
    run_cycle,
    select_entities,
    window_entities,
)
from erp_slack.model import Entity
from erp_slack.pipeline import Window
from erp_slack.report import status_frame, summary_markdown
from erp_slack.routing import Rule
from erp_slack.sources.base import AuditHook, SourceClient
from tasks import deliver, extract_entity

__all__ = ["SourceBlock", "run_source", "source_lock_name"]


class SourceBlock(Protocol):
    """What a source credentials block offers the flow."""

    @property
    def company_name(self) -> str: ...

    company_names: Mapping[str, str]  # what Slack calls each company

    def entities(self) -> tuple[Entity, ...]: ...

    def get_client(self, *, audit: AuditHook) -> SourceClient: ...

    def company_list(self) -> list[str]: ...

    def for_company(self, company: str) -> "SourceBlock": ...


def _slug(company: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in company.lower()).strip("-")


def source_lock_name(source: str, company: str) -> str:
    """The global concurrency limit that keeps runs of one source and company apart."""
    return f"erp-source-{source}-{_slug(company)}"


def run_source(
    source: str,
    creds: SourceBlock,
    *,
    slack_block: str,
    audit_block: str,
    entities: Sequence[str] | None,
    routes: Sequence[Rule],
    dry_run: bool,
    since: str | int | None,
    until: str | int | None,
    first_run: str = "baseline",
    silence_after: Mapping[str, str] | None = None,
    late_after: str | None = None,
    company: str | None = None,
) -> list[RunSummary]:
    """One run of one source under Prefect: each of its companies in turn (or only ``company``)."""
    window = Window(since, until)
    store = AuditDatabase.load(audit_block).get_store()
    bot = SlackBot.load(slack_block)
    run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    slack = SlackOut(bot.get_client(), bot.drain_settings(), bot.ops_channel, bot.pacer())
    watch = Watch(bot.max_waiting, {k: parse_duration(v) for k, v in (silence_after or {}).items()},
                  parse_duration(late_after) if late_after else None)

    def publish(summary: RunSummary) -> None:
        key = "-".join(filter(None, [source, _slug(summary.company) if several else None]))
        create_markdown_artifact(summary_markdown(summary.as_dict(), store), key=f"{key}-run-summary",
                                 description=f"What this run posted for {summary.company}")
        create_table_artifact(status_frame(store).to_dict("records"), key=f"{source}-status",
                              description="Per entity: last poll, last change, watermark, what waits")

    def run_one(name: str) -> RunSummary:
        one = creds.for_company(name)
        selected = window_entities(select_entities(one.entities(), entities), window)
        return run_cycle(
            lambda audit: one.get_client(audit=audit), selected, store, slack,
            source=source, company=one.company_name, rules=list(routes), window=window, dry_run=dry_run,
            first_run=first_run, flow_run_id=run_id, poll=extract_entity, drain=deliver,
            # One run per source and company at a time across every worker (a scheduled run and
            # a backfill would evict each other's SYSPRO session: one session per operator). The
            # limit is created by `erp-slack up`; where it does not exist this is a no-op.
            lock=concurrency(source_lock_name(source, one.company_name), occupy=1, strict=False),
            log=get_run_logger(), publish=publish, watch=watch, company_name=one.company_names.get(one.company_name),
        )

    companies = [company] if company else creds.company_list()
    several = len(companies) > 1
    try:
        return run_companies(companies, run_one)
    finally:
        store.dispose()
