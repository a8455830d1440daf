"""The flow body every source shares: authenticate → extract per entity → enqueue → deliver.

Source flows (``flows/syspro.py``, ``flows/gp.py``) load their blocks and call ``run_source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, Sequence

from prefect import get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.concurrency.sync import concurrency

from blocks import AuditDatabase, SlackBot
from erp_slack.alerts import clear_alert, raise_alert
from erp_slack.errors import (
    ConfigError,
    DeliveryFailed,
    SourceAccessDenied,
    SourceAuthFailed,
    SourceError,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.model import Entity, parse_cursor
from erp_slack.pipeline import PollResult, Window
from erp_slack.report import readable_watermark, summary_markdown
from erp_slack.routing import Rule
from erp_slack.slack.send import DrainReport
from erp_slack.sources import all_entities
from erp_slack.sources.base import SourceClient
from erp_slack.store import Store
from tasks import deliver, extract_entity

__all__ = ["SourceBlock", "RunSummary", "run_source", "select_entities", "source_lock_name", "window_entities"]


class SourceBlock(Protocol):
    """What a source credentials block offers the flow."""

    @property
    def company_name(self) -> str: ...

    def entities(self, *, date_cursors: bool = False) -> tuple[Entity, ...]: ...

    def get_client(self, *, audit: Any) -> SourceClient: ...


@dataclass
class RunSummary:
    """What one run did; returned by the flow and shown as its artifact."""

    source: str
    company: str
    polls: list[PollResult] = field(default_factory=list)
    delivered_records: int = 0
    messages: int = 0
    rate_limited: int = 0
    failed: int = 0
    dead: int = 0
    pending_left: int = 0
    halted: str | None = None
    dry_run: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "company": self.company, "dry_run": self.dry_run, "started_at": self.started_at,
            "polls": [p.as_dict() for p in self.polls], "delivered_records": self.delivered_records,
            "messages": self.messages, "rate_limited": self.rate_limited, "failed": self.failed,
            "dead": self.dead, "pending_left": self.pending_left, "halted": self.halted,
        }


def select_entities(available: Sequence[Entity], wanted: Sequence[str] | None) -> list[Entity]:
    """The entities to poll: all by default, or the named ones (unknown names are an error)."""
    if not wanted:
        return list(available)
    names = {e.name for e in available}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValueError(f"unknown entities {unknown}; available: {sorted(names)}")
    return [e for e in available if e.name in wanted]


def source_lock_name(source: str, company: str) -> str:
    """The global concurrency limit that keeps runs of one source and company apart."""
    slug = "".join(c if c.isalnum() else "-" for c in company.lower()).strip("-")
    return f"erp-source-{source}-{slug}"


def window_entities(creds: SourceBlock, selected: list[Entity], window: Window) -> list[Entity]:
    """The entities a backfill reads, with its window checked before anything logs on.

    A SYSPRO e.net entity watches the TimeStamp rowversion, which has no relation to dates; a
    backfill given dates reads the same documents by their date column instead, so an operator
    can always say "October".
    """
    if not window.is_backfill:
        return selected
    bounds = [("since", window.since), ("until", window.until)]
    wants_dates = any(v is not None and not _is_rowversion(str(v)) for _, v in bounds)
    if wants_dates and any(e.cursor.kind == "rowversion" for e in selected):
        dated = {e.name: e for e in creds.entities(date_cursors=True)}
        selected = [dated.get(e.name, e) if e.cursor.kind == "rowversion" else e for e in selected]
    for entity in selected:
        for name, value in bounds:
            if value is None:
                continue
            try:
                parse_cursor(entity.cursor.kind, value)
            except ValueError as exc:
                raise ConfigError(name, f"{value!r} is not a {entity.cursor.kind} for {entity.name} ({exc})") from None
    return selected


def _is_rowversion(text: str) -> bool:
    """A bound a person wrote as a rowversion (a plain number or 0x… hex), not a date."""
    t = text.strip().lower()
    return t.lstrip("-").isdigit() or (t.startswith("0x") and len(t) > 2)


def _describe(details: Any) -> str:
    """One log line's text for a client's audit event (its message, else its facts)."""
    text = details.get("message") or details.get("reason")
    if text:
        return str(text)
    return ", ".join(f"{k}={v}" for k, v in details.items() if v not in (None, "")) or "(no details)"


def _flow_run_id() -> str | None:
    rid = runtime.flow_run.id
    return str(rid) if rid else None


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
) -> RunSummary:
    """One poll cycle of one source, start to finish."""
    logger = get_run_logger()
    run_id = _flow_run_id()
    store: Store = AuditDatabase.load(audit_block).get_store()
    slack = SlackBot.load(slack_block)
    gateway = slack.get_client()
    company = creds.company_name
    summary = RunSummary(source, company, dry_run=dry_run)
    window = Window(since, until)
    selected = window_entities(creds, select_entities(creds.entities(), entities), window)
    rules = list(routes)
    if window.is_backfill:
        logger.info("Backfill window since=%s until=%s (the live watermark is not moved)", since, until)

    def audit_hook(kind: str, details: Any) -> None:
        store.audit(kind, source=source, company=company, details=dict(details), flow_run_id=run_id)
        logger.info("%s: %s", kind, _describe(details))

    def alert(problem: str, advice: str) -> None:
        try:
            raise_alert(store, gateway, slack.ops_channel, source=source, company=company, problem=problem,
                        advice=advice, flow_run_id=run_id)
        except Exception:  # the audit store itself may be what failed; the run still fails loudly
            logger.exception("could not record the alert")

    failure: Exception | None = None
    refused: list[str] = []  # "entity: what failed" for each entity that could not be read
    try:
        # One run per source and company at a time across every worker (a scheduled run and a
        # backfill would evict each other's SYSPRO session: one session per operator). The limit
        # is created by `erp-slack up`; where it does not exist this is a no-op.
        with concurrency(source_lock_name(source, company), occupy=1, strict=False), \
                creds.get_client(audit=audit_hook) as client:
            for entity in selected:
                try:
                    result = extract_entity(client, entity, store, rules, window, dry_run, first_run, run_id)
                except (SourceUnavailable, SourceAccessDenied) as exc:
                    # One unreadable table must not stop the others (nor delivery).
                    store.audit("entity_failed", source=source, company=company, entity=entity.name,
                                message=str(exc), details={"advice": exc.advice}, flow_run_id=run_id)
                    logger.error("%s: %s (%s)", entity.name, exc, exc.advice)
                    refused.append(f"{entity.name}: {exc}")
                    failure = failure or exc
                    if isinstance(exc, SourceUnreachable):
                        break  # the server is not there: every other entity would wait out the same
                    continue
                summary.polls.append(result)
                if result.skipped:
                    logger.info("%s: skipped, %s", entity.name, result.skipped)
                    continue
                logger.info(
                    "%s: %d rows read, %d new, %d updated, %d held back, %d would post (dry run), %d quarantined; "
                    "read up to %s",
                    entity.name, result.rows_seen, result.new, result.updated, result.filtered, result.dry_run_rows,
                    result.bad, readable_watermark(result.watermark_after),
                )
    except Exception as exc:  # noqa: BLE001 - kept to raise after delivering what is queued
        failure = exc
    try:
        # What is already in the outbox goes out whatever happened to this poll.
        if not dry_run:
            report: DrainReport = deliver(store, gateway, slack.drain_settings(), all_entities(), run_id, slack.pacer())
            summary.delivered_records, summary.messages = report.records, report.messages
            summary.rate_limited = report.rate_limited
            summary.failed = sum(s.failed for s in report.lanes.values()) + report.unverifiable
            summary.dead = sum(s.dead for s in report.lanes.values())
            summary.halted = report.halted
    except Exception as exc:  # noqa: BLE001
        failure = failure or exc
    if isinstance(failure, SourceAuthFailed):
        # The client already audited the refusal itself; this row says what the run did about it.
        store.audit("cycle_skipped", source=source, company=company, message=str(failure), flow_run_id=run_id)
        alert(str(failure), failure.advice)
        raise failure
    if isinstance(failure, SourceError):
        # Every entity that failed is named in one alert; the others were read and delivered.
        alert("; ".join(refused) or str(failure), failure.advice)
        raise failure
    if failure is not None:
        alert(f"The run failed: {type(failure).__name__}: {failure}", "See this flow run's logs in the Prefect UI.")
        raise failure
    summary.pending_left = store.counts().get("pending", 0)
    create_markdown_artifact(
        summary_markdown(summary.as_dict(), store), key=f"{source}-run-summary", description="What this run posted"
    )
    undelivered = delivery_failure(summary, store)
    if undelivered is not None:
        for line in undelivered.lines:
            logger.warning("%s", line)
        alert(str(undelivered), undelivered.advice)
        store.dispose()
        raise undelivered
    clear_alert(store, gateway, slack.ops_channel, source=source, company=company, flow_run_id=run_id)
    store.dispose()
    return summary


class _Undelivered(DeliveryFailed):
    def __init__(self, message: str, *, advice: str, lines: list[str]) -> None:
        super().__init__(message, advice=advice)
        self.lines = lines


# Slack errors that mean "the bot cannot post in this channel": a person fixes the channel.
_CHANNEL_ERRORS = ("not_in_channel", "channel_not_found", "is_archived", "restricted_action")


def delivery_failure(summary: RunSummary, store: Store) -> DeliveryFailed | None:
    """What this run could not deliver, as one error naming each channel and what to do, or
    None when everything it tried went out."""
    if not (summary.failed or summary.dead or summary.halted):
        return None
    lines: list[str] = []
    advice: list[str] = []
    if summary.halted:
        lines.append(f"Delivery halted: {summary.halted}; records stay pending")
        advice.append("Check the Slack bot token in the Slack block (reinstall the app if it was revoked); "
                      "pending records go out on the next run.")
    for status in ("failed", "dead"):
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in store.deliveries(status=status):
            by_channel.setdefault(row["channel"], []).append(row)
        for channel, rows in sorted(by_channel.items()):
            error = rows[-1]["last_error"] or "unknown error"
            lines.append(f"{len(rows)} record(s) for {channel} {status}: {error}")
            if status == "failed" and error.startswith("unverifiable"):
                advice.append(f"Give the bot the history scope for {channel} (channels:history, groups:history), "
                              "check which of these records are in the channel, then `erp-slack requeue "
                              f"--channel {channel} --config FILE` (a requeued record may post twice).")
            elif status == "failed" and any(code in error for code in _CHANNEL_ERRORS):
                advice.append(f"Invite the bot to {channel} (/invite @bot) or fix the route, then run "
                              f"`erp-slack requeue --config FILE`.")
            elif status == "failed":
                advice.append(f"Fix what Slack refused for {channel}, then run `erp-slack requeue --config FILE`.")
            else:
                advice.append(f"Slack refused these messages for {channel}; see last_error in the audit table, "
                              f"then `erp-slack requeue --status dead --config FILE`.")
    return _Undelivered("; ".join(lines), advice=" ".join(dict.fromkeys(advice)), lines=lines)
