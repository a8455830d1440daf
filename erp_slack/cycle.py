"""One run of one source, start to finish, with no Prefect in it.

A run selects its entities, checks a backfill window before anything logs on, polls each
entity into the outbox under the failure policy, drains the outbox to Slack, decides the ops
alert and summarises. The Prefect flow (``flows/pipeline.py``) passes its tasks as the poll and
drain steps and its run logger; tests and benchmarks pass plain functions, so all of them run
this same policy:

* one entity that cannot be read (refused, failing) never stops the others, nor delivery;
* an unreachable server stops the polling at once (every other entity would wait out the same
  timeouts) and a refused log-on stops the run; what is already queued is still delivered;
* every failure is audited, named in one ops alert per streak, and makes the run fail;
* a record that could not be delivered makes the run fail too, with what to do per channel.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from erp_slack.alerts import clear_alert, raise_alert, runs_resumed
from erp_slack.errors import (
    CompaniesFailed,
    ConfigError,
    DeliveryFailed,
    SourceAccessDenied,
    SourceAuthFailed,
    SourceError,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.model import Entity, is_rowversion_text, parse_cursor, readable_watermark
from erp_slack.pipeline import PollResult, Window, poll_entity
from erp_slack.routing import DEFAULT_ROUTES, Rule
from erp_slack.schema import DeliveryStatus
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainReport, DrainSettings
from erp_slack.sources import all_entities
from erp_slack.sources.base import AuditHook, SourceClient
from erp_slack.store import Store

__all__ = [
    "RunSummary", "SlackOut", "Watch", "PollStep", "DrainStep", "run_cycle", "poll_step", "drain_step",
    "select_entities", "window_entities", "make_audit_hook", "delivery_failure", "Undelivered",
]

_log = logging.getLogger("erp_slack.cycle")

# The steps a run is made of, as callables so the flow can pass its Prefect tasks (retries,
# timeouts, the UI's task runs) and tests plain functions. Same arguments, same order.
PollStep = Callable[[SourceClient, Entity, Store, Sequence[Rule], Window, bool, str, "str | None"], PollResult]
DrainStep = Callable[
    [Store, SlackGateway, DrainSettings, Mapping[tuple[str, str], Entity], "str | None",
     "Callable[[str], None] | None"],
    DrainReport,
]


def poll_step(
    client: SourceClient, entity: Entity, store: Store, rules: Sequence[Rule], window: Window, dry_run: bool,
    first_run: str, flow_run_id: str | None,
) -> PollResult:
    """Poll one entity into the outbox (the watermark moves only on success)."""
    return poll_entity(client, entity, store, rules, window=window, dry_run=dry_run, first_run=first_run,
                       flow_run_id=flow_run_id)


def drain_step(
    store: Store, gateway: SlackGateway, settings: DrainSettings, entities: Mapping[tuple[str, str], Entity],
    flow_run_id: str | None, pacer: Callable[[str], None] | None = None,
) -> DrainReport:
    """Drain the outbox to Slack at Slack's pace; running it again is safe (claims, reconciliation)."""
    return Drainer(store, gateway, entities, settings=settings, flow_run_id=flow_run_id, pacer=pacer).drain()


@dataclass(frozen=True)
class Watch:
    """What a live run checks beside its own success, each with an ops alert of its own that is
    raised once and cleared when things are normal again.

    Attributes:
        max_waiting: Longest a record may wait for Slack (pending or sending) before ops hear
            of it; None never.
        silence_after: Entity name -> the longest it normally goes without a new or changed
            document; an entity quiet for longer (no AP invoice all day) is reported. An entity
            that never had a change is not.
        late_after: The longest between two completed runs. The Prefect server tells ops when
            it passes (an automation ``erp-slack up`` creates: no run of ours is there to);
            the first run after such a gap says runs are completing again.
    """

    max_waiting: timedelta | None = None
    silence_after: Mapping[str, timedelta] = field(default_factory=dict)
    late_after: timedelta | None = None


@dataclass(frozen=True)
class SlackOut:
    """Where a run delivers and alerts: the bot, its pacing and the ops channel."""

    gateway: SlackGateway
    settings: DrainSettings = DrainSettings()
    ops_channel: str | None = None
    pacer: Callable[[str], None] | None = None


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
    in_flight: int = 0  # rows still ``sending`` under a claim when the run ended (another run's, say)
    in_flight_age: timedelta | None = None  # how long the oldest of those claims has lasted
    halted: str | None = None
    dry_run: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    drain: DrainReport | None = None  # the drainer's own report, for tests and benchmarks

    @property
    def new(self) -> int:
        return sum(p.new for p in self.polls)

    @property
    def updated(self) -> int:
        return sum(p.updated for p in self.polls)

    @property
    def bad(self) -> int:
        return sum(p.bad for p in self.polls)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "company": self.company, "dry_run": self.dry_run, "started_at": self.started_at,
            "polls": [p.as_dict() for p in self.polls], "delivered_records": self.delivered_records,
            "messages": self.messages, "rate_limited": self.rate_limited, "failed": self.failed,
            "dead": self.dead, "pending_left": self.pending_left, "in_flight": self.in_flight,
            "in_flight_age": self.in_flight_age, "halted": self.halted,
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


def window_entities(selected: Sequence[Entity], window: Window) -> list[Entity]:
    """The entities a backfill reads, with its window checked before anything logs on.

    A window given as dates reads an entity declared with a date twin (``Entity.by_date``) by
    that date column, so an operator can always say "October" whatever the live cursor is.
    """
    if not window.is_backfill:
        return list(selected)
    bounds = [("since", window.since), ("until", window.until)]
    by_date = any(v is not None and not is_rowversion_text(str(v)) for _, v in bounds)
    chosen = [e.by_date if by_date and e.by_date is not None else e for e in selected]
    for entity in chosen:
        for name, value in bounds:
            if value is None:
                continue
            try:
                parse_cursor(entity.cursor.kind, value)
            except ValueError as exc:
                raise ConfigError(name, f"{value!r} is not a {entity.cursor.kind} for {entity.name} ({exc})") from None
    return chosen


def make_audit_hook(
    store: Store, *, source: str, company: str, flow_run_id: str | None = None, log: logging.Logger | None = None,
) -> AuditHook:
    """The hook a source client reports through: one audit row per event, and a log line when
    ``log`` is given."""

    def audit(kind: str, details: Mapping[str, Any]) -> None:
        store.audit(kind, source=source, company=company, entity=details.get("entity"), details=dict(details),
                    flow_run_id=flow_run_id)
        if log is not None:
            log.info("%s: %s", kind, _describe(details))

    return audit


def _describe(details: Mapping[str, Any]) -> str:
    """One log line's text for a client's audit event (its message, else its facts)."""
    text = details.get("message") or details.get("reason")
    if text:
        return str(text)
    return ", ".join(f"{k}={v}" for k, v in details.items() if v not in (None, "")) or "(no details)"


def _learn_currencies(client: Any, store: Store, source: str, company: str, log: Any) -> None:
    """Keep the ISO code of each currency the ERP's setup names, for a client that can read it
    (GP); a setup that cannot be read leaves what is known, and the configuration's codes apply."""
    read = getattr(client, "currency_codes", None)
    if read is None:
        return
    try:
        codes = read()
    except (SourceAuthFailed, SourceUnavailable):
        raise  # the logon or the server itself: the run fails as it would on its first entity
    except SourceError as exc:
        log.info("currency setup not read (%s); the configuration's currency_codes apply", exc)
        return
    if codes:
        store.learn_currencies(source, company, codes)


def run_cycle(
    open_client: Callable[[AuditHook], SourceClient],
    entities: Sequence[Entity],
    store: Store,
    slack: SlackOut | None,
    *,
    source: str,
    company: str,
    rules: Sequence[Rule] = DEFAULT_ROUTES,
    window: Window = Window(),
    dry_run: bool = False,
    first_run: str = "baseline",
    flow_run_id: str | None = None,
    poll: PollStep = poll_step,
    drain: DrainStep = drain_step,
    lock: AbstractContextManager[Any] | None = None,
    log: logging.Logger | logging.LoggerAdapter[Any] = _log,
    publish: Callable[[RunSummary], None] | None = None,
    watch: Watch | None = None,
    company_name: str | None = None,
) -> RunSummary:
    """One run of one source: poll ``entities`` through the client ``open_client(audit)`` makes,
    deliver to ``slack`` (nothing is delivered without it, nor in a dry run), alert, summarise.

    ``entities`` are the ones chosen for this run (see ``select_entities`` and
    ``window_entities``). ``lock`` is held while polling (the flow passes its per-source limit).
    ``publish`` gets the summary before a delivery failure is raised (the flow's artifact).
    ``watch`` says what a live run also checks (records waiting too long, entities gone quiet).
    ``company_name`` is what Slack calls the company (recorded for every drainer to render).
    Raises the run's failure after delivering what is queued: the source's error, or
    ``DeliveryFailed`` naming every channel that refused records.
    """
    summary = RunSummary(source, company, dry_run=dry_run)
    store.name_company(source, company, company_name)
    live = not dry_run and not window.is_backfill
    started, previous_poll = datetime.now(timezone.utc), None
    audit = make_audit_hook(store, source=source, company=company, flow_run_id=flow_run_id, log=log)
    if window.is_backfill:
        log.info("Backfill window since=%s until=%s (the live watermark is not moved)", window.since, window.until)

    def alert(problem: str, advice: str) -> None:
        try:
            raise_alert(store, slack.gateway if slack else None, slack.ops_channel if slack else None,
                        source=source, company=company, problem=problem, advice=advice, flow_run_id=flow_run_id)
        except Exception:  # the audit store itself may be what failed; the run still fails loudly
            log.exception("could not record the alert")

    failure: Exception | None = None
    refused: list[str] = []  # "entity: what failed" for each entity that could not be read
    try:
        with lock or nullcontext(), open_client(audit) as client:
            if live and watch and watch.late_after:
                # Read under the lock: two runs let out at once (a worker back after a gap) must
                # not both find the same gap; the second sees the first one's poll. The gap runs
                # to when this run started, before it waited for the lock: time spent waiting
                # behind another run is not time without runs (it made a second "runs are back").
                previous_poll = store.last_poll_at(source, company)
            if live:
                _learn_currencies(client, store, source, company, log)
            for entity in entities:
                try:
                    result = poll(client, entity, store, rules, window, dry_run, first_run, flow_run_id)
                except (SourceUnavailable, SourceAccessDenied) as exc:
                    store.audit("entity_failed", source=source, company=company, entity=entity.name,
                                message=str(exc), details={"advice": exc.advice}, flow_run_id=flow_run_id)
                    log.error("%s: %s (%s)", entity.name, exc, exc.advice)
                    refused.append(f"{entity.name}: {exc}")
                    failure = failure or exc
                    if isinstance(exc, SourceUnreachable):
                        break
                    continue
                summary.polls.append(result)
                _log_poll(log, result)
    except Exception as exc:  # noqa: BLE001 - kept to raise after delivering what is queued
        failure = exc
    try:
        # What is already in the outbox goes out whatever happened to this poll.
        if slack is not None and not dry_run:
            report = drain(store, slack.gateway, slack.settings, all_entities(), flow_run_id, slack.pacer)
            summary.drain = report
            summary.delivered_records, summary.messages = report.records, report.messages
            summary.rate_limited = report.rate_limited
            summary.failed = sum(s.failed for s in report.lanes.values()) + report.unverifiable
            summary.dead = sum(s.dead for s in report.lanes.values())
            summary.halted = report.halted
    except Exception as exc:  # noqa: BLE001
        failure = failure or exc
    if watch is not None and live:
        try:
            _check_watch(watch, store, slack, source=source, company=company, entities=entities,
                         flow_run_id=flow_run_id, log=log,
                         gap=None if previous_poll is None or failure else started - previous_poll)
        except Exception:  # noqa: BLE001 - a check that cannot run must not hide the run's own outcome
            log.exception("could not check for waiting records and quiet entities")
    if isinstance(failure, SourceAuthFailed):
        # The client already audited the refusal itself; this row says what the run did about it.
        store.audit("cycle_skipped", source=source, company=company, message=str(failure), flow_run_id=flow_run_id)
        alert(str(failure), failure.advice)
        raise failure
    if isinstance(failure, SourceError):
        # Every entity that failed is named in one alert; the others were read and delivered.
        alert("; ".join(refused) or str(failure), failure.advice)
        raise failure
    if failure is not None:
        alert(f"The run failed: {type(failure).__name__}: {failure}", "See this flow run's logs in the Prefect UI.")
        raise failure
    summary.pending_left = store.counts().get(DeliveryStatus.PENDING, 0)
    summary.in_flight, summary.in_flight_age = store.claimed()
    if summary.in_flight:
        log.warning("%d record(s) still sending under a claim, the oldest for %s (another run's batch, or one "
                    "to be checked against Slack once its lease of %s is over)", summary.in_flight,
                    _duration(summary.in_flight_age), _duration(slack.settings.lease if slack else None))
    if publish is not None:
        publish(summary)
    undelivered = delivery_failure(summary, store)
    if undelivered is not None:
        for line in undelivered.lines:
            log.warning("%s", line)
        alert(str(undelivered), undelivered.advice)
        raise undelivered
    clear_alert(store, slack.gateway if slack else None, slack.ops_channel if slack else None,
                source=source, company=company, flow_run_id=flow_run_id)
    return summary


def _check_watch(
    watch: Watch, store: Store, slack: SlackOut | None, *, source: str, company: str, entities: Sequence[Entity],
    flow_run_id: str | None, log: logging.Logger | logging.LoggerAdapter[Any], gap: timedelta | None = None,
) -> None:
    gateway, channel = (slack.gateway, slack.ops_channel) if slack else (None, None)
    common = dict(source=source, company=company, flow_run_id=flow_run_id)
    if watch.late_after is not None and gap is not None and gap > watch.late_after:
        log.warning("The run before this one completed %s ago (more than %s)", _duration(gap),
                    _duration(watch.late_after))
        runs_resumed(store, gateway, channel, gap=_duration(gap), late_after=_duration(watch.late_after), **common)
    if watch.max_waiting is not None:
        waiting, oldest = store.waiting(source, company)
        if oldest is not None and oldest > watch.max_waiting:
            problem = (f"{waiting} record(s) have not reached Slack; the oldest has waited {_duration(oldest)} "
                       f"(more than {_duration(watch.max_waiting)})")
            log.warning("%s", problem)
            raise_alert(store, gateway, channel, problem=problem, topic="waiting", **common,
                        advice="Run `erp-slack status` to see where they wait; check the Slack token, that the bot "
                               "is in the routed channels, and that a Prefect worker is running.")
        else:
            clear_alert(store, gateway, channel, topic="waiting", news="Every record waiting for Slack has gone out.",
                        **common)
    titles = {e.name: e.title for e in entities}
    for name, limit in watch.silence_after.items():
        if name not in titles:
            continue  # not polled by this run
        last = store.last_change(source, company, name)
        if last is None:
            continue  # it never had a change here: there is no normal to miss
        quiet = datetime.now(timezone.utc) - last
        if quiet > limit:
            problem = (f"No new or changed {titles[name].lower()} for {_duration(quiet)} "
                       f"(normally within {_duration(limit)})")
            log.warning("%s", problem)
            raise_alert(store, gateway, channel, problem=problem, topic=name, **common,
                        advice="Check that documents are being entered in the ERP, and run `erp-slack check` to see "
                               "that this entity can still be read.")
        else:
            clear_alert(store, gateway, channel, topic=name, news=f"{titles[name]}: changes are coming in again.",
                        **common)


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "?"
    seconds = int(value.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} h"
    if seconds >= 60:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    return f"{seconds} s"


def _log_poll(log: logging.Logger | logging.LoggerAdapter[Any], result: PollResult) -> None:
    if result.skipped:
        log.info("%s: skipped, %s", result.entity, result.skipped)
        return
    log.info(
        "%s: %d rows read, %d new, %d updated, %d held back, %d would post (dry run), %d quarantined; read up to %s",
        result.entity, result.rows_seen, result.new, result.updated, result.filtered, result.dry_run_rows,
        result.bad, readable_watermark(result.watermark_after),
    )


def run_companies(companies: Sequence[str], run_one: Callable[[str], RunSummary]) -> list[RunSummary]:
    """Run each company of a source in turn, whatever happens to the others; then raise what
    failed: the one failure itself, or ``CompaniesFailed`` naming each company and its error."""
    summaries: list[RunSummary] = []
    failures: dict[str, Exception] = {}
    for company in companies:
        try:
            summaries.append(run_one(company))
        except Exception as exc:  # noqa: BLE001 - raised below, after every company has run
            failures[company] = exc
    if len(failures) == 1 and len(companies) == 1:
        raise next(iter(failures.values()))
    if failures:
        raise CompaniesFailed(failures) from next(iter(failures.values()))
    return summaries


def summaries_dict(summaries: Sequence[RunSummary]) -> dict[str, Any]:
    """What a flow returns: one company's summary as it is, several side by side with totals."""
    if len(summaries) == 1:
        return summaries[0].as_dict()
    parts = [s.as_dict() for s in summaries]
    return {
        "companies": {s.company: d for s, d in zip(summaries, parts)},
        "polls": [p for d in parts for p in d["polls"]],
        "delivered_records": sum(d["delivered_records"] for d in parts),
        "messages": sum(d["messages"] for d in parts),
    }


class Undelivered(DeliveryFailed):
    """Records this run could not deliver; ``lines`` says which, one line per channel and state,
    and ``summary`` is what the run did otherwise."""

    def __init__(self, message: str, *, advice: str, lines: list[str], summary: RunSummary) -> None:
        super().__init__(message, advice=advice)
        self.lines = lines
        self.summary = summary


# Slack errors that mean "the bot cannot post in this channel": a person fixes the channel.
_CHANNEL_ERRORS = ("not_in_channel", "channel_not_found", "is_archived", "restricted_action")


def delivery_failure(summary: RunSummary, store: Store) -> Undelivered | None:
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
    for status in (DeliveryStatus.FAILED, DeliveryStatus.DEAD):
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in store.deliveries(status=status):
            by_channel.setdefault(row["channel"], []).append(row)
        for channel, rows in sorted(by_channel.items()):
            error = rows[-1]["last_error"] or "unknown error"
            lines.append(f"{len(rows)} record(s) for {channel} {status}: {error}")
            if status == DeliveryStatus.FAILED and error.startswith("unverifiable"):
                advice.append(f"Give the bot the history scope for {channel} (channels:history, groups:history), "
                              "check which of these records are in the channel, then `erp-slack requeue "
                              f"--channel {channel} --config FILE` (a requeued record may post twice).")
            elif status == DeliveryStatus.FAILED and any(code in error for code in _CHANNEL_ERRORS):
                advice.append(f"Invite the bot to {channel} (/invite @bot) or fix the route, then run "
                              f"`erp-slack requeue --config FILE`.")
            elif status == DeliveryStatus.FAILED:
                advice.append(f"Fix what Slack refused for {channel}, then run `erp-slack requeue --config FILE`.")
            else:
                advice.append(f"Slack refused these messages for {channel}; see last_error in the audit table, "
                              f"then `erp-slack requeue --status dead --config FILE`.")
    return Undelivered("; ".join(lines), advice=" ".join(dict.fromkeys(advice)), lines=lines, summary=summary)
