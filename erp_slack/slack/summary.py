"""Scheduled summaries: one message at a time of day listing the documents in a given state.

"Invoices awaiting approval" at 09:00 lists every invoice whose last known state matches the
summary's filter, with the count, totals per currency and each document's due date, linked to its
living message where it has one. The state is what the product last read from the ERP: the newest
version of each document in the outbox, whether it was posted, filtered by a route or is still
waiting, so a document that has moved on (approved, paid, closed) drops out of the next summary,
and a summary also covers documents no route posts one by one.

A summary is posted once per slot (a time of day on one day): the slot's post is claimed in the
store and its message carries an id, so a post whose answer was lost is found in the channel,
never made twice. Only the latest slot is posted: after a long outage one summary goes out, not
one per missed slot.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from erp_slack.alerts import clear_alert, raise_alert
from erp_slack.errors import SlackError, SlackRejected
from erp_slack.model import Entity, Record
from erp_slack.routing import Rule
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.render import coded, due_first, render_summary
from erp_slack.store import Delivery, Store, SummaryPost, utcnow

__all__ = ["Summary", "SummaryOutcome", "matching_documents", "post_summaries", "channel_wait", "WEEKDAYS"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Summary:
    """One scheduled summary.

    Attributes:
        title: What it is called in Slack ("Invoices awaiting approval"); with ``channel``, its
            identity in the store, so renaming it starts a new series of slots.
        channel: Where it is posted.
        at: Times of day (local) it is posted.
        match: Which documents it lists, by their last known state (entity, source, company,
            statuses, amounts, suppliers: the same filters a route has).
        timezone: IANA zone of ``at`` and ``days``.
        days: Weekdays it is posted on (Monday = 0).
        post_empty: Post "nothing to show" when no document matches (a quiet morning is news too).
        limit: Documents listed by name; the rest are counted.
        where: (field, values): only documents whose field now reads one of the values, as shown
            ("approval" in "Pending Approval", "hold" in "Yes").
    """

    title: str
    channel: str
    at: tuple[time, ...]
    match: Rule
    timezone: str = "UTC"
    days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    post_empty: bool = True
    limit: int = 20
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.channel} {self.title}"

    def latest_slot(self, now: datetime) -> datetime | None:
        """The latest time at or before ``now`` this summary was due (UTC), within a week."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        for back in range(8):
            day = local.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            for at in sorted(self.at, reverse=True):
                slot = datetime.combine(day, at, tzinfo=zone)
                if slot <= local:
                    return slot.astimezone(timezone.utc)
        return None

    def label(self, slot: datetime) -> str:
        """A slot as people read it: "09:00 Thu 3 Dec"."""
        local = slot.astimezone(ZoneInfo(self.timezone))
        return f"{local:%H:%M %a} {local.day} {local:%b}"


@dataclass
class SummaryOutcome:
    """What one summary did in one run."""

    summary: str
    slot: datetime | None
    status: str  # posted | already-posted | found | skipped-empty | not-due | failed
    documents: int = 0
    error: str | None = None
    ts: str | None = None


@dataclass
class _Context:
    store: Store
    gateway: SlackGateway
    entities: Mapping[tuple[str, str], Entity]
    names: Mapping[tuple[str, str], str]
    currency_codes: Mapping[str, str]
    wait: Callable[[str], None]
    audit: Callable[..., None]
    erp_codes: Mapping[tuple[str, str], Mapping[str, str]]  # the ERPs' own currency setups
    channel_ids: dict[str, str] = field(default_factory=dict)


def matching_documents(store: Store, summary: Summary, entities: Mapping[tuple[str, str], Entity]) -> list[Delivery]:
    """The documents whose last known state the summary's filter matches."""
    rule = summary.match
    kinds = [(s, e) for s, e in entities
             if rule.source in ("*", s) and ("*" in rule.entities or e in rule.entities)]
    out = []
    for d in store.current_documents(kinds):
        entity = entities[(d.source, d.entity)]
        record = Record(d.source, d.company, d.entity, d.record_key, "", None, _typed(d.fields, entity))
        if rule.matches(record, entity) and all(
                str(d.fields.get(name)) in values for name, values in summary.where):
            out.append(d)
    return out


def _typed(fields: Mapping[str, object], entity: Entity) -> dict[str, object]:
    """Stored fields with their amounts as numbers again (the store keeps them as text)."""
    out = dict(fields)
    for name, kind in entity.types.items():
        if kind == "decimal" and out.get(name) not in (None, ""):
            try:
                out[name] = Decimal(str(out[name]))
            except InvalidOperation:
                pass  # not a number: an amount filter does not match it
    return out


def post_summaries(
    store: Store, gateway: SlackGateway, summaries: Sequence[Summary], entities: Mapping[tuple[str, str], Entity],
    *, now: datetime | None = None, currency_codes: Mapping[str, str] | None = None,
    wait: Callable[[str], None] = lambda channel: None, flow_run_id: str | None = None,
    ops_channel: str | None = None,
) -> list[SummaryOutcome]:
    """Post each summary due at ``now`` that has not been posted for its latest slot. One
    summary's failure is recorded and told to the ops channel (once per streak) and the others
    still go; the caller decides what a failure means for the run. ``wait`` paces a post to its
    channel (the drainers' shared pace)."""
    now = now or utcnow()

    def audit(kind: str, **kw: object) -> None:
        store.audit(kind, flow_run_id=flow_run_id, **kw)

    ctx = _Context(store, gateway, entities, store.company_names(), currency_codes or {}, wait, audit,
                   store.currency_codes())
    outcomes = []
    for s in summaries:
        outcome = _one(ctx, s, now)
        outcomes.append(outcome)
        if outcome.status == "failed":
            raise_alert(store, gateway, ops_channel, source="summary", company=s.title, flow_run_id=flow_run_id,
                        problem=f"The {s.label(outcome.slot) if outcome.slot else ''} summary could not be posted to "
                                f"{s.channel}: {outcome.error}",
                        advice="check that the bot is in the channel and the token is valid; the summary goes "
                               "out with the next run of the summaries deployment (a retry, or its next time)")
        elif outcome.status in ("posted", "found"):
            clear_alert(store, gateway, ops_channel, source="summary", company=s.title, flow_run_id=flow_run_id,
                        news=f"The {s.label(outcome.slot)} summary reached {s.channel}.")  # type: ignore[arg-type]
    return outcomes


def channel_wait(store: Store, *, rate_per_channel: float, burst: int = 1,
                 pacer: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """Wait for a channel's next slot in the store, the pace every drainer on the database shares
    (and the Prefect limit across hosts, with ``pacer``)."""

    def wait(channel: str) -> None:
        slot = store.reserve_slot(channel, 1.0 / rate_per_channel, now=_time.time(), burst=burst)
        _time.sleep(max(0.0, slot - _time.time()))
        if pacer is not None:
            pacer(channel)

    return wait


def _one(ctx: _Context, summary: Summary, now: datetime) -> SummaryOutcome:
    slot = summary.latest_slot(now)
    if slot is None:
        return SummaryOutcome(summary.key, None, "not-due")
    post = ctx.store.summary_post(summary.key, slot, summary.channel)
    if post.ts is not None:
        return SummaryOutcome(summary.key, slot, "already-posted", ts=post.ts)
    try:
        channel_id = ctx.channel_ids.get(summary.channel) or ctx.gateway.resolve(summary.channel)
        ctx.channel_ids[summary.channel] = channel_id
        if post.attempted_at is not None:
            ts = ctx.gateway.find_batch(channel_id, post.uid, since=post.attempted_at)
            if ts is not None:
                ctx.store.summary_posted(post, channel_id, ts, None)
                ctx.audit("reconciled", channel=summary.channel, message=f"{summary.title}: summary found in "
                          "channel history", details={"slot": slot.isoformat(), "ts": ts})
                return SummaryOutcome(summary.key, slot, "found", ts=ts)
        docs = matching_documents(ctx.store, summary, ctx.entities)
        if not docs and not summary.post_empty:
            return SummaryOutcome(summary.key, slot, "skipped-empty")
        return _post(ctx, summary, post, channel_id, docs, now)
    except SlackError as exc:
        ctx.audit("summary_failed", channel=summary.channel, message=f"{summary.title}: {exc}",
                  details={"slot": slot.isoformat()})
        return SummaryOutcome(summary.key, slot, "failed", error=str(exc))


def _post(ctx: _Context, summary: Summary, post: SummaryPost, channel_id: str, docs: list[Delivery],
          now: datetime) -> SummaryOutcome:
    shown = [coded(d, ctx.entities.get((d.source, d.entity)), {**ctx.erp_codes.get((d.source, d.company), {}),
                                                                 **ctx.currency_codes}) for d in docs]
    threads = {}
    for d in sorted(shown, key=due_first)[:summary.limit]:  # only the lines shown link a thread
        live = ctx.store.living(d)
        link = live and ctx.gateway.permalink(live.channel_id, live.ts)
        if link:
            threads[d.uid] = link
    late = now - post.slot > timedelta(minutes=15)
    note = f"as of {now.astimezone(ZoneInfo(summary.timezone)):%H:%M}" if late else ""
    message = render_summary(title=summary.title, when=summary.label(post.slot), uid=post.uid, notices=shown,
                             entities=ctx.entities, names=ctx.names, threads=threads, limit=summary.limit,
                             note=note)
    ctx.store.summary_attempt(post)
    ctx.wait(summary.channel)
    try:
        posted = ctx.gateway.post(channel_id, message)
    except SlackRejected as exc:
        if exc.code != "not_in_channel":
            raise
        ctx.gateway.join(channel_id)  # a public channel the bot was never added to
        posted = ctx.gateway.post(channel_id, message)
    ctx.store.summary_posted(post, posted.channel_id, posted.ts, len(docs))
    ctx.audit("summary_posted", channel=summary.channel,
              message=f"{summary.title}: {len(docs)} document{'' if len(docs) == 1 else 's'}",
              details={"slot": post.slot.isoformat(), "ts": posted.ts, "documents": len(docs)})
    return SummaryOutcome(summary.key, post.slot, "posted", documents=len(docs), ts=posted.ts)
