"""Extract → route → enqueue for one entity: the core of every poll, with no Prefect in it.

Pages are committed to the outbox as they arrive; the watermark moves once per entity, at the
end, only forward, and never past the moment the poll started. A crash mid-poll therefore
re-reads from the old watermark and the outbox's (key, version) uniqueness drops what was
already queued, whatever order the source returned rows in (the rule the Singer SDK follows
for unsorted streams). No row the server returned is dropped without an audit row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

from erp_slack.errors import BadRecord, EntityNotOffered
from erp_slack.model import CursorValue, Entity, cursor_to_text, lower_bound, normalise, parse_cursor
from erp_slack.routing import Rule, route
from erp_slack.schema import DeliveryStatus
from erp_slack.slack.archive import period_of
from erp_slack.sources.base import SourceClient
from erp_slack.store import BASELINE_REASON, NewDelivery, Store

__all__ = ["PollResult", "poll_entity", "Window", "FIRST_RUN"]

# What the first poll of an entity does with documents already in the ERP.
FIRST_RUN = ("post", "baseline")

_EXCERPT = 200  # characters kept of each raw value in a quarantine row
# The watermark of an entity polled while it was still empty: below every real cursor value.
_EPOCH: dict[str, CursorValue] = {
    "rowversion": 0, "timestamp": datetime(1970, 1, 1, tzinfo=timezone.utc), "date": date(1970, 1, 1),
}


@dataclass(frozen=True)
class Window:
    """A backfill window: re-read [since, until) without touching the live watermark."""

    since: Any = None
    until: Any = None

    @property
    def is_backfill(self) -> bool:
        return self.since is not None or self.until is not None


@dataclass
class PollResult:
    """Figures of one entity's poll (also written as the ``poll`` audit row)."""

    source: str
    company: str
    entity: str
    pages: int = 0
    rows_seen: int = 0
    new: int = 0
    updated: int = 0
    filtered: int = 0
    dry_run_rows: int = 0
    duplicates: int = 0
    out_of_window: int = 0
    bad: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    since: str | None = None
    until: str | None = None
    dry_run: bool = False
    channels: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def poll_entity(
    client: SourceClient,
    entity: Entity,
    store: Store,
    rules: Sequence[Rule],
    *,
    window: Window = Window(),
    dry_run: bool = False,
    first_run: str = "post",
    flow_run_id: str | None = None,
) -> PollResult:
    """Read what changed in ``entity`` since its watermark (or in ``window``) into the outbox.

    ``first_run="baseline"`` makes the very first poll of an entity record what the ERP already
    holds as ``filtered`` ("baseline") instead of posting years of history; later changes to
    those documents still post as updates. It is a first run only while the entity has no
    watermark of any kind and the outbox holds nothing of it but an unfinished baseline, so a
    switched SYSPRO transport or a lost watermark never silences news. A dry run applies the
    same baseline, so it shows what the live run would really post.
    """
    company = client.company
    res = PollResult(entity.source, company, entity.name, dry_run=dry_run)
    kind = entity.cursor.kind
    stored = store.watermark(entity.source, company, entity.name)
    stored_value = stored[1] if stored and stored[0] == kind else None
    res.watermark_before = cursor_to_text(kind, stored_value) if stored_value is not None else None
    if window.is_backfill:
        lower = parse_cursor(kind, window.since) if window.since is not None else None
        upper = parse_cursor(kind, window.until) if window.until is not None else None
    else:
        lower, upper = lower_bound(entity.cursor, stored_value), None
    # No watermark of this kind: read from the beginning (a watermark of another kind means the
    # SYSPRO transport changed; its cursor values mean nothing to this one).
    first = stored_value is None and not window.is_backfill
    baseline = (first_run == "baseline" and first and stored is None
                and not store.has_deliveries(entity.source, company, entity.name))
    res.since = cursor_to_text(kind, lower) if lower is not None else None
    res.until = cursor_to_text(kind, upper) if upper is not None else None
    high: CursorValue | None = None
    started = datetime.now(timezone.utc)  # replaced by the ERP's own clock when it tells it
    ceiling: CursorValue | None = None

    try:
        for page in client.pages(entity, since=lower, until=upper):
            if ceiling is None:
                # The earlier of the ERP's clock and ours: whichever of the two runs ahead, the
                # watermark never passes a moment that is still to come for the other.
                ceiling = _ceiling(kind, min(page.server_time or started, started))
            res.pages += 1
            res.rows_seen += len(page.rows)
            items: list[NewDelivery] = []
            audits: list[Mapping[str, Any]] = []
            for raw in page.rows:
                try:
                    rec = normalise(entity, company, raw)
                except BadRecord as exc:
                    audits.append(_quarantine(entity, company, exc.key, exc.reason, raw, page.url))
                    continue
                outside = _outside(rec.cursor, lower, upper)
                if outside:
                    res.out_of_window += 1
                    audits.append(_out_of_window(entity, company, rec.key, rec.cursor, outside, window))
                    if window.is_backfill:
                        continue  # the operator asked for this window only
                    # A live poll keeps the row: the server sent it for ">= watermark", so a value
                    # that reads lower is a format surprise, and dropping it would lose a document.
                if ceiling is not None and rec.cursor > ceiling:
                    # Delivered like any row; the watermark stops at the poll's start (below).
                    audits.append(_future(entity, company, rec.key, rec.cursor))
                if high is None or rec.cursor > high:
                    high = rec.cursor
                decision = route(rec, entity, rules)
                status = DeliveryStatus.FILTERED if decision.channel is None else (DeliveryStatus.DRY_RUN if dry_run else DeliveryStatus.PENDING)
                reason = decision.reason
                if baseline and status != DeliveryStatus.FILTERED:
                    status, reason = DeliveryStatus.FILTERED, f"{BASELINE_REASON} in the ERP before the first run ({decision.reason})"
                items.append(
                    NewDelivery(
                        record_key=rec.key, version=rec.version, channel=decision.channel or "", status=status,
                        fields=rec.fields, cursor=cursor_to_text(kind, rec.cursor), reason=reason,
                        status_field=entity.status_field, watch=entity.version_fields, mentions=decision.notify,
                        urgent=decision.urgent, style=decision.style,
                        archive=(period_of(rec.fields.get(entity.period_field) if entity.period_field else None,
                                           decision.archive, decision.archive_timezone)
                                 if decision.archive and status == DeliveryStatus.PENDING else None),
                        broadcast=decision.archive_in_channel,
                    )
                )
            for raw, reason in page.problems:
                audits.append(_quarantine(entity, company, None, reason, raw, page.url))
            res.bad += sum(1 for a in audits if a["kind"] == "bad_record")
            outcome = store.enqueue(
                source=entity.source, company=company, entity=entity.name, items=items, dry_run=dry_run,
                requeue_filtered=window.is_backfill,
                flow_run_id=flow_run_id, audit=audits,
            )
            res.filtered += outcome.filtered
            res.duplicates += outcome.duplicates
            if dry_run:
                res.dry_run_rows += outcome.new + outcome.updated
            else:
                res.new += outcome.new
                res.updated += outcome.updated
            for item in items:
                if item.channel and item.status != DeliveryStatus.FILTERED:
                    res.channels[item.channel] = res.channels.get(item.channel, 0) + 1
    except EntityNotOffered as exc:
        # Not there at all (yet): no watermark, so when it appears its history is a first run.
        res.skipped = str(exc)
        store.audit(
            "poll", source=entity.source, company=company, entity=entity.name, flow_run_id=flow_run_id,
            message=f"skipped: {exc}", details=res.as_dict(),
        )
        return res

    # Close the poll: move the watermark (live runs only), then record the poll.
    advance = None if (window.is_backfill or dry_run) else high
    if advance is not None and ceiling is not None and advance > ceiling:  # type: ignore[operator]
        advance = ceiling
    if advance is None and first and not dry_run:
        # Nothing there yet: remember that this entity has been polled, so documents that
        # appear later are news, not a first-run baseline.
        advance = _EPOCH[kind]
    res.watermark_after = res.watermark_before
    if advance is not None:
        res.watermark_after = store.advance_watermark(
            entity.source, company, entity.name, kind, advance, flow_run_id=flow_run_id
        )
    poll_row = {
        "kind": "poll", "source": entity.source, "company": company, "entity": entity.name,
        "message": f"{res.rows_seen} rows seen, {res.new} new, {res.updated} updated, {res.bad} quarantined",
    }
    store.audit(flow_run_id=flow_run_id, details=res.as_dict(), **poll_row)
    return res


def _ceiling(kind: str, started: datetime) -> CursorValue | None:
    """The highest value a watermark may take: the moment the poll started. A document stamped later — a server clock running hours ahead — is
    still delivered, but the watermark waits for real time, so nothing stamped between now and
    then is ever skipped. Rowversions have no relation to the clock."""
    if kind == "timestamp":
        return started
    if kind == "date":
        return started.date()
    return None


def _outside(cursor: CursorValue, lower: CursorValue | None, upper: CursorValue | None) -> str | None:
    if lower is not None and cursor < lower:  # type: ignore[operator]
        return "below"
    if upper is not None and cursor >= upper:  # type: ignore[operator]
        return "above"
    return None


def _out_of_window(entity: Entity, company: str, key: str, cursor: CursorValue, where: str,
                   window: Window) -> dict[str, Any]:
    if window.is_backfill:
        message = f"{entity.cursor.column} {cursor} is {where} the backfill window; not read"
    else:
        message = (f"{entity.cursor.column} {cursor} is below the watermark the server was asked for; "
                   "delivered anyway")
    return {
        "kind": "out_of_window", "source": entity.source, "company": company, "entity": entity.name,
        "record_key": key, "message": message, "dedupe": True,
    }


def _future(entity: Entity, company: str, key: str, cursor: CursorValue) -> dict[str, Any]:
    return {
        "kind": "future_cursor", "source": entity.source, "company": company, "entity": entity.name,
        "record_key": key,
        "message": f"{entity.cursor.column} {cursor} is later than the poll's start; the watermark waits for it",
        "dedupe": True,
    }


def _quarantine(entity: Entity, company: str, key: str | None, reason: str, raw: Any, url: str) -> dict[str, Any]:
    excerpt: Any
    if isinstance(raw, Mapping):
        excerpt = {str(k)[:60]: (str(v)[:_EXCERPT] if v is not None else None) for k, v in list(raw.items())[:40]}
    else:
        excerpt = str(raw)[:_EXCERPT] if raw is not None else None
    if key is None:
        # No usable key: name the row by a fingerprint of its content, so the same broken row
        # re-read by the next poll is recognised (and reported once) all the same.
        blob = json.dumps(excerpt, sort_keys=True, default=str)
        key = "#row-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
    return {
        "kind": "bad_record", "source": entity.source, "company": company, "entity": entity.name,
        "record_key": key, "message": reason, "details": {"row": excerpt, "url": url}, "dedupe": True,
    }
