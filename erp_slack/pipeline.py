"""Extract → route → enqueue for one entity: the core of every poll, with no Prefect in it.

Pages are committed to the outbox as they arrive; the watermark moves once per entity, at the
end, and only forward. A crash mid-poll therefore
re-reads from the old watermark and the outbox's (key, version) uniqueness drops what was
already queued, whatever order the source returned rows in (Singer's rule for unsorted
streams, reference/peers.md §3.2).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from erp_slack.errors import BadRecord
from erp_slack.model import CursorValue, Entity, cursor_to_text, lower_bound, normalise, parse_cursor
from erp_slack.routing import Rule, route
from erp_slack.sources.base import SourceClient
from erp_slack.store import NewDelivery, Store

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

    ``first_run="baseline"`` makes the very first poll of an entity (no watermark yet) record
    what the ERP already holds as ``filtered`` ("baseline") instead of posting years of history;
    later changes to those documents still post as updates.
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
    # First poll: no watermark yet, or one of another kind (the transport changed, reference
    # syspro.md §5.5), which reads from the beginning again.
    first = stored_value is None and not window.is_backfill
    baseline = first_run == "baseline" and first
    res.since = cursor_to_text(kind, lower) if lower is not None else None
    res.until = cursor_to_text(kind, upper) if upper is not None else None
    high: CursorValue | None = None
    ceiling = _ceiling(kind)

    for page in client.pages(entity, since=lower, until=upper):
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
            # The server may ignore filters (GP); the window is enforced here either way.
            if (lower is not None and rec.cursor < lower) or (upper is not None and rec.cursor >= upper):
                res.out_of_window += 1
                continue
            if ceiling is not None and rec.cursor > ceiling:
                # Delivered like any row, but a date far in the future must not drag the
                # watermark past everything entered from today on.
                audits.append(_future(entity, company, rec.key, rec.cursor))
            elif high is None or rec.cursor > high:
                high = rec.cursor
            decision = route(rec, entity, rules)
            status = "filtered" if decision.channel is None else ("dry-run" if dry_run else "pending")
            reason = decision.reason
            if baseline and status == "pending":
                status, reason = "filtered", f"baseline: in the ERP before the first run ({decision.reason})"
            items.append(
                NewDelivery(
                    record_key=rec.key, version=rec.version, channel=decision.channel or "", status=status,
                    fields=rec.fields, cursor=cursor_to_text(kind, rec.cursor), reason=reason,
                    status_field=entity.status_field, watch=entity.version_fields,
                )
            )
        for raw, reason in page.problems:
            audits.append(_quarantine(entity, company, None, reason, raw, page.url))
        res.bad += sum(1 for a in audits if a["kind"] == "bad_record")
        outcome = store.enqueue(
            source=entity.source, company=company, entity=entity.name, items=items, cursor_kind=kind,
            watermark=None, dry_run=dry_run, requeue_filtered=window.is_backfill,
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
            if item.channel and item.status != "filtered":
                res.channels[item.channel] = res.channels.get(item.channel, 0) + 1

    # Close the poll: move the watermark (live runs only), then record the poll.
    advance = None if (window.is_backfill or dry_run) else high
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


def _ceiling(kind: str) -> CursorValue | None:
    """The highest cursor value the watermark may take: a day ahead of now (clock skew between
    the ERP and us). Rowversions have no relation to the clock."""
    now = datetime.now(timezone.utc)
    if kind == "timestamp":
        return now + timedelta(days=1)
    if kind == "date":
        return now.date() + timedelta(days=1)
    return None


def _future(entity: Entity, company: str, key: str, cursor: CursorValue) -> dict[str, Any]:
    return {
        "kind": "future_cursor", "source": entity.source, "company": company, "entity": entity.name,
        "record_key": key, "message": f"{entity.cursor.column} {cursor} is in the future; the watermark stays",
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
