"""The SQL store: watermarks, the outbox of deliveries, and the audit trail.

Any SQLAlchemy URL works; SQLite is the default and PostgreSQL is tested. The schema is
created and upgraded by Alembic on open. Two rules hold everything together:

* ``enqueue`` inserts a page's deliveries and its audit rows in **one transaction**; the
  watermark moves apart, once a whole entity is read (``advance_watermark``), so a crash at any
  point re-reads from the old watermark and the outbox's (key, version) uniqueness drops what
  was already queued. Whether a version is news is the pure ``classify_version``.
* ``claim`` hands a lane's pending rows to exactly one drainer: ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, and a single conditional ``UPDATE`` (atomic under SQLite's write lock) everywhere.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import and_, create_engine, delete, event, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine

from erp_slack.model import CursorKind, CursorValue, cursor_from_text, cursor_to_text
from erp_slack.schema import (
    DeliveryStatus,
    archive_threads,
    audit_events,
    channel_pace,
    company_names,
    currency_codes,
    deliveries,
    living_messages,
    summary_posts,
    watermarks,
)
from erp_slack.slack.archive import Period

_DELIVERY_KEY = ("source", "company", "entity", "record_key", "version", "dry_run", "revision")
_THREAD_KEY = ("channel", "source", "company", "period")

__all__ = ["Store", "NewDelivery", "Delivery", "EnqueueResult", "utcnow", "redact_url"]


# How the reason of a row held back by the first-run baseline begins (the pipeline writes it).
BASELINE_REASON = "baseline:"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def redact_url(url: str) -> str:
    """A database URL with its password replaced, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an unparseable URL is reported without its text
        return "<unparseable database URL>"
    # libpq also takes the password as a query parameter (?password=…).
    query = {k: ("***" if "password" in k.lower() else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


# One encoder for every row: ``json.dumps`` with these options would build a new one per call
# (the outbox writes one ``fields`` document per record). Same options, same text.
_JSON = json.JSONEncoder(default=str, ensure_ascii=False, sort_keys=True)


def _json(value: Any) -> str:
    return _JSON.encode(value)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; everything we write is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)

# How a row held for a channel's quiet hours says so in last_error (it stays pending).
HELD = "held: quiet hours"


@dataclass(frozen=True)
class NewDelivery:
    """One routed record version to put in the outbox (built by the pipeline)."""

    record_key: str
    version: str
    channel: str
    status: str  # pending | filtered | dry-run
    fields: Mapping[str, Any]
    cursor: str
    reason: str = ""
    status_field: str | None = None
    watch: tuple[str, ...] = ()  # fields whose change is news; others never show as "what changed"
    payload: Mapping[str, Any] | None = None
    mentions: tuple[str, ...] = ()  # who the routing rule notifies
    urgent: bool = False  # sent even in the channel's quiet hours
    style: str = "living"  # how later changes reach the channel: the routing rule's ``message``
    archive: Period | None = None  # the archive period it is a reply in, if its rule archives
    broadcast: bool = False  # that reply is also shown in the channel


@dataclass(frozen=True)
class Delivery:
    """A row of ``deliveries`` as the sender sees it."""

    id: int
    uid: str
    source: str
    company: str
    entity: str
    record_key: str
    event: str
    channel: str
    status: str
    fields: Mapping[str, Any]
    changes: tuple[tuple[str, Any, Any], ...]
    attempts: int
    created_at: datetime
    batch_uid: str | None = None
    claimed_at: datetime | None = None
    first_attempt_at: datetime | None = None
    mentions: tuple[str, ...] = ()
    urgent: bool = False
    style: str = "new-message"  # rows from before living messages (0007) were each their own
    thread_ts: str | None = None
    archive: str | None = None  # period key (month:2026-11) of its archive thread
    broadcast: bool = False

    @property
    def document(self) -> tuple[str, str, str, str, str]:
        """Which living message this delivery belongs to: its document in its channel."""
        return (self.source, self.company, self.entity, self.record_key, self.channel)


@dataclass(frozen=True)
class ArchiveThread:
    """A period's archive thread in one channel, for one source and company."""

    channel: str
    source: str
    company: str
    period: str
    label: str
    ends_at: datetime
    uid: str
    channel_id: str | None
    ts: str | None
    attempted_at: datetime | None
    version: int
    shown: int
    closed: bool


@dataclass(frozen=True)
class SummaryPost:
    """One scheduled summary's post for one slot: claimed, attempted, posted."""

    summary: str
    slot: datetime
    uid: str
    channel: str
    channel_id: str | None
    ts: str | None
    attempted_at: datetime | None


@dataclass(frozen=True)
class Living:
    """A document's living message in one channel, and the newest delivery rendered into it."""

    channel_id: str
    ts: str
    delivery_id: int


@dataclass
class EnqueueResult:
    """What one ``enqueue`` did."""

    new: int = 0
    updated: int = 0
    filtered: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)


# The PostgreSQL advisory lock key that serialises schema migrations (any constant unlikely to
# be used by another application on the same database).
_MIGRATION_LOCK = 0x6572_702D_736C_6B  # "erp-slk"


class Store:
    """The audit store. Open it with a SQLAlchemy URL; it migrates itself to the latest schema."""

    def __init__(self, url: str = "sqlite:///erp-slack.db", *, engine: Engine | None = None, migrate: bool = True):
        self.url = url
        self.engine = engine or _make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        if migrate:
            self.migrate()

    # --- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema with Alembic (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            if self.is_postgres:
                # Workers starting together against a new database would each try to create the
                # schema; one migrates, the others wait here and then find it at head. The lock
                # is the transaction's: it goes with the commit. (SQLite's BEGIN IMMEDIATE
                # already lets one writer in at a time.)
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()

    # --- watermarks -----------------------------------------------------------------------

    def watermark(self, source: str, company: str, entity: str) -> tuple[CursorKind, CursorValue] | None:
        """The stored watermark of one (source, company, entity), or None before the first poll."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(watermarks.c.kind, watermarks.c.value).where(
                    watermarks.c.source == source, watermarks.c.company == company, watermarks.c.entity == entity
                )
            ).first()
        if row is None:
            return None
        return row.kind, cursor_from_text(row.kind, row.value)

    def _advance(
        self, conn: Connection, source: str, company: str, entity: str, kind: CursorKind, value: CursorValue,
        flow_run_id: str | None,
    ) -> tuple[str | None, str]:
        """Move a watermark forward (never backwards) inside the caller's transaction."""
        where = and_(watermarks.c.source == source, watermarks.c.company == company, watermarks.c.entity == entity)
        q = select(watermarks.c.kind, watermarks.c.value).where(where)
        if self.is_postgres:
            q = q.with_for_update()
        row = conn.execute(q).first()
        new_text = cursor_to_text(kind, value)
        if row is None:
            conn.execute(
                self._insert_ignore(watermarks, ("source", "company", "entity")).values(
                    source=source, company=company, entity=entity, kind=kind, value=new_text,
                    updated_at=utcnow(), flow_run_id=flow_run_id,
                )
            )
            row = conn.execute(q).first()
            if row is not None and row.value == new_text:
                return None, new_text
        assert row is not None
        before = row.value
        if row.kind == kind and cursor_from_text(kind, before) >= value:  # type: ignore[operator]
            return before, before
        conn.execute(update(watermarks).where(where).values(kind=kind, value=new_text, updated_at=utcnow(), flow_run_id=flow_run_id))
        return before, new_text

    def advance_watermark(
        self, source: str, company: str, entity: str, kind: CursorKind, value: CursorValue, *,
        flow_run_id: str | None = None,
    ) -> str:
        """Move a watermark forward (never backwards); returns the value now stored."""
        with self.engine.begin() as conn:
            return self._advance(conn, source, company, entity, kind, value, flow_run_id)[1]

    def has_deliveries(self, source: str, company: str, entity: str) -> bool:
        """Whether the outbox holds a live row of this (source, company, entity) other than the
        first-run baseline's.

        The first-run baseline applies only where it holds none, so a lost watermark or a
        switched SYSPRO transport never silences news, while a baseline cut short by a crash
        carries on as a baseline.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(deliveries.c.id).where(
                    deliveries.c.source == source, deliveries.c.company == company,
                    deliveries.c.entity == entity, deliveries.c.dry_run.is_(False),
                    ~and_(deliveries.c.status == DeliveryStatus.FILTERED, func.coalesce(deliveries.c.reason, "").like(f"{BASELINE_REASON}%")),
                ).limit(1)
            ).first()
        return row is not None

    # --- enqueue --------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        source: str,
        company: str,
        entity: str,
        items: Sequence[NewDelivery],
        dry_run: bool = False,
        requeue_filtered: bool = False,
        flow_run_id: str | None = None,
        audit: Sequence[Mapping[str, Any]] = (),
    ) -> EnqueueResult:
        """Insert a page's deliveries and write its audit rows, atomically (the watermark moves
        apart, once the whole entity is read: ``advance_watermark``).

        A (record key, version) already in the outbox is skipped; a known key with a new version
        becomes an ``updated`` (or ``status_change``) event listing what changed. A dry run
        compares with live rows too, so it shows what a live run would post. With
        ``requeue_filtered`` (a live backfill), a version recorded earlier as ``filtered`` (by a
        route since changed, or the first-run baseline) that now routes to a channel is queued.
        """
        result = EnqueueResult()
        now = utcnow()
        with self.engine.begin() as conn:
            prior = self._latest_versions(conn, source, company, entity, {i.record_key for i in items}, dry_run)
            rows = []
            revive: list[tuple[int, NewDelivery]] = []
            threads: dict[tuple[str, str], Period] = {}
            seen: set[tuple[str, str]] = set()
            for item in items:
                verdict = classify_version(item, prior.get(item.record_key),
                                           repeated=(item.record_key, item.version) in seen,
                                           requeue_filtered=requeue_filtered)
                if verdict.revive is not None:
                    revive.append((verdict.revive, item))
                    continue
                if verdict.event is None:
                    result.duplicates += 1
                    continue
                seen.add((item.record_key, item.version))
                event_kind, changes = verdict.event, verdict.changes
                slot = prior.setdefault(item.record_key, {"revisions": {}})
                revision = slot["revisions"].get(item.version, 0)
                slot["revisions"][item.version] = revision + 1
                slot.update(latest=item.version, latest_id=None, latest_status=item.status, fields=item.fields,
                            latest_dry_run=dry_run)
                rows.append(
                    dict(
                        uid=uuid.uuid4().hex, source=source, company=company, entity=entity,
                        record_key=item.record_key, version=item.version, dry_run=dry_run, revision=revision,
                        event=event_kind,
                        channel=item.channel, status=item.status, reason=item.reason or None, cursor=item.cursor,
                        fields=_json(dict(item.fields)), changes=_json(changes) if changes else None,
                        payload=_json(item.payload) if item.payload is not None else None,
                        mentions=_json(list(item.mentions)) if item.mentions else None, urgent=item.urgent,
                        style=item.style, attempts=0, created_at=now, updated_at=now, flow_run_id=flow_run_id,
                        archive=item.archive.key if item.archive else None, broadcast=item.broadcast,
                    )
                )
                if item.archive is not None:
                    threads[(item.channel, item.archive.key)] = item.archive
            if threads:
                # Each period's thread is known before any of its replies can be claimed.
                conn.execute(self._insert_ignore(archive_threads, _THREAD_KEY), [
                    dict(channel=channel, source=source, company=company, period=p.key, label=p.label,
                         ends_at=p.ends_at, uid=uuid.uuid4().hex, version=0, shown=-1, closed=False)
                    for (channel, _), p in threads.items()])
            if rows:
                # Another run may have inserted the same version a moment ago: that is a duplicate,
                # not an error (the unique key is the guarantee; the prior-read is the fast path).
                stmt = self._insert_ignore(deliveries, _DELIVERY_KEY).returning(
                    deliveries.c.id, deliveries.c.status, deliveries.c.event
                )
                inserted = conn.execute(stmt, rows).all()
                result.duplicates += len(rows) - len(inserted)
                for rid, status, event_kind in inserted:
                    result.ids.append(rid)
                    if status == DeliveryStatus.FILTERED:
                        result.filtered += 1
                    elif event_kind == "created":
                        result.new += 1
                    else:
                        result.updated += 1
            for row_id, item in revive:
                conn.execute(
                    update(deliveries).where(deliveries.c.id == row_id, deliveries.c.status == DeliveryStatus.FILTERED).values(
                        status=DeliveryStatus.PENDING, channel=item.channel, reason=f"backfill: {item.reason}", updated_at=now,
                    )
                )
                result.ids.append(row_id)
                result.new += 1
            # Audit rows marked ``dedupe`` (a bad or future-dated row re-read on every poll) are
            # written once: checked against the audit trail for the whole page in one query.
            seen = self._audited(conn, [a for a in audit if a.get("dedupe")])
            for a in audit:
                key = _audit_key(a)
                if a.get("dedupe") and key in seen:
                    continue
                seen.add(key)  # any row written here counts for the rows after it
                self._audit(conn, flow_run_id=flow_run_id, **{**a, "dedupe": False})
        return result

    def _insert_ignore(self, table: Any, key: Sequence[str]) -> Any:
        """INSERT … ON CONFLICT DO NOTHING in this database's dialect."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=list(key))
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(key))

    def _latest_versions(
        self, conn: Connection, source: str, company: str, entity: str, keys: set[str], dry_run: bool
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not keys:
            return out
        keys_list = sorted(keys)
        for i in range(0, len(keys_list), 500):  # stay under bind-parameter limits
            chunk = keys_list[i : i + 500]
            q = (
                select(deliveries.c.id, deliveries.c.record_key, deliveries.c.version, deliveries.c.fields,
                       deliveries.c.status, deliveries.c.dry_run, deliveries.c.revision)
                .where(
                    deliveries.c.source == source, deliveries.c.company == company, deliveries.c.entity == entity,
                    deliveries.c.record_key.in_(chunk),
                )
                .order_by(deliveries.c.id)
            )
            if not dry_run:
                q = q.where(deliveries.c.dry_run.is_(False))  # what was only rehearsed is still news
            for r in conn.execute(q):
                slot = out.setdefault(r.record_key, {"latest": None, "latest_id": None, "latest_status": None,
                                                     "fields": {}, "revisions": {}})
                # Rows come oldest first: the last one is the state last recorded.
                slot["latest"], slot["latest_id"], slot["latest_status"] = r.version, r.id, r.status
                slot["fields"] = json.loads(r.fields)
                if r.dry_run == dry_run:
                    slot["revisions"][r.version] = slot["revisions"].get(r.version, 0) + 1
                slot["latest_dry_run"] = r.dry_run
        return out

    # --- audit ----------------------------------------------------------------------------

    def audit(self, kind: str, *, flow_run_id: str | None = None, **kw: Any) -> None:
        """Write one audit event (its own transaction)."""
        with self.engine.begin() as conn:
            self._audit(conn, kind=kind, flow_run_id=flow_run_id, **kw)

    @staticmethod
    def _audit(
        conn: Connection, *, kind: str, flow_run_id: str | None = None, source: str | None = None,
        company: str | None = None, entity: str | None = None, record_key: str | None = None,
        channel: str | None = None, delivery_id: int | None = None, message: str | None = None,
        details: Mapping[str, Any] | None = None, at: datetime | None = None, dedupe: bool = False,
    ) -> None:
        if dedupe:
            # A bad row re-read inside the lookback window is reported once, not every poll.
            seen = conn.execute(
                select(audit_events.c.id).where(
                    audit_events.c.kind == kind, audit_events.c.source == source, audit_events.c.company == company,
                    audit_events.c.entity == entity, audit_events.c.record_key == record_key,
                    audit_events.c.message == message,
                ).limit(1)
            ).first()
            if seen is not None:
                return
        conn.execute(
            insert(audit_events).values(
                at=at or utcnow(), kind=kind, source=source, company=company, entity=entity,
                record_key=record_key, channel=channel, delivery_id=delivery_id, message=message,
                details=_json(dict(details)) if details else None, flow_run_id=flow_run_id,
            )
        )

    @staticmethod
    def _audited(conn: Connection, audits: Sequence[Mapping[str, Any]]) -> set[tuple[Any, ...]]:
        """The ``_audit_key`` of each of ``audits`` already in the audit trail."""
        found: set[tuple[Any, ...]] = set()
        groups: dict[tuple[Any, ...], set[str | None]] = {}
        for a in audits:
            groups.setdefault(_audit_key(a)[:4], set()).add(a.get("record_key"))
        c = audit_events.c
        for (kind, source, company, entity), keys in groups.items():
            # ``== None`` renders IS NULL, exactly as the one-row check does.
            base = select(c.record_key, c.message).where(
                c.kind == kind, c.source == source, c.company == company, c.entity == entity
            )
            named = sorted(k for k in keys if k is not None)
            queries = [base.where(c.record_key.in_(named[i : i + 500])) for i in range(0, len(named), 500)]
            if None in keys:
                queries.append(base.where(c.record_key.is_(None)))
            for q in queries:
                found.update((kind, source, company, entity, r.record_key, r.message) for r in conn.execute(q))
        return found

    def audit_rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Audit events, oldest first (for tests, reports and the CLI)."""
        q = select(audit_events).order_by(audit_events.c.id)
        if kind:
            q = q.where(audit_events.c.kind == kind)
        with self.engine.connect() as conn:
            return [
                {**r._asdict(), "details": json.loads(r.details) if r.details else {}} for r in conn.execute(q)
            ]

    # --- delivery lanes -------------------------------------------------------------------

    def pending_by_channel(self, *, now: datetime | None = None) -> dict[str, int]:
        """Channels with deliverable rows and how many each has (ready now)."""
        now = now or utcnow()
        q = (
            select(deliveries.c.channel, func.count())
            .where(
                deliveries.c.status == DeliveryStatus.PENDING,
                (deliveries.c.next_attempt_at.is_(None)) | (deliveries.c.next_attempt_at <= now),
            )
            .group_by(deliveries.c.channel)
        )
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(q)}

    def hold(self, channel: str, until: datetime, *, now: datetime | None = None) -> int:
        """Hold the channel's pending rows that are not urgent until ``until`` (its quiet hours
        end); returns how many were newly held. They stay ``pending``: nothing is dropped."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            return conn.execute(
                update(deliveries).where(
                    deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.channel == channel,
                    deliveries.c.urgent.is_(False),
                    (deliveries.c.next_attempt_at.is_(None)) | (deliveries.c.next_attempt_at < until))
                .values(next_attempt_at=until, last_error=f"{HELD} until {until.isoformat(timespec='minutes')}",
                        updated_at=now)
            ).rowcount

    def held(self, channel: str | None = None, *, ready: bool = False, now: datetime | None = None) -> int:
        """Pending rows held for quiet hours (``ready``: only those whose window has ended)."""
        q = select(func.count()).where(deliveries.c.status == DeliveryStatus.PENDING,
                                       deliveries.c.last_error.like(f"{HELD}%"))
        if channel is not None:
            q = q.where(deliveries.c.channel == channel)
        if ready:
            q = q.where(deliveries.c.next_attempt_at <= (now or utcnow()))
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    def pending_count(self, channel: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.channel == channel)
            ).scalar_one()

    def claim(self, channel: str, limit: int, *, worker: str, now: datetime | None = None) -> list[Delivery]:
        """Claim up to ``limit`` ready rows of one channel for this worker, oldest first.

        The rows move to ``sending`` with a batch uid; only this worker gets them
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two drainers never wait on each other).
        """
        now = now or utcnow()
        batch = uuid.uuid4().hex
        ready = (
            select(deliveries.c.id)
            .where(
                deliveries.c.status == DeliveryStatus.PENDING,
                deliveries.c.channel == channel,
                (deliveries.c.next_attempt_at.is_(None)) | (deliveries.c.next_attempt_at <= now),
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        if self.is_postgres:
            ready = ready.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            # Select then update inside one transaction: the rows are locked (PostgreSQL) or the
            # whole database is (SQLite, BEGIN IMMEDIATE), so no other drainer can take them.
            ids = list(conn.execute(ready).scalars())
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids), deliveries.c.status == DeliveryStatus.PENDING)
                .values(status=DeliveryStatus.SENDING, claimed_by=worker, claimed_at=now, batch_uid=batch, updated_at=now)
            )
            rows = conn.execute(select(deliveries).where(deliveries.c.batch_uid == batch).order_by(deliveries.c.id)).all()
        return [_delivery(r) for r in rows]

    def stale_batches(self, *, older_than: timedelta, now: datetime | None = None) -> dict[str, list[Delivery]]:
        """``sending`` rows whose claim is older than the lease, grouped by batch: maybe posted."""
        cutoff = (now or utcnow()) - older_than
        q = (
            select(deliveries)
            .where(deliveries.c.status == DeliveryStatus.SENDING, deliveries.c.claimed_at <= cutoff)
            .order_by(deliveries.c.id)
        )
        out: dict[str, list[Delivery]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out.setdefault(r.batch_uid or "", []).append(_delivery(r))
        return out

    def take_stale(self, batch_uid: str, *, worker: str, older_than: timedelta) -> list[Delivery]:
        """Take over a stale batch (so two drainers never reconcile the same one)."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.batch_uid == batch_uid, deliveries.c.status == DeliveryStatus.SENDING,
                    deliveries.c.claimed_at <= now - older_than,
                )
                .values(claimed_by=worker, claimed_at=now, updated_at=now)
            )
            rows = conn.execute(
                select(deliveries).where(deliveries.c.batch_uid == batch_uid, deliveries.c.claimed_by == worker,
                                         deliveries.c.status == DeliveryStatus.SENDING)
            ).all()
        return [_delivery(r) for r in rows]

    def defer_channel(self, channel: str, *, until: datetime) -> None:
        """Hold every pending row of a channel until ``until`` (Slack asked for a pause)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.channel == channel, deliveries.c.status == DeliveryStatus.PENDING,
                       (deliveries.c.next_attempt_at.is_(None)) | (deliveries.c.next_attempt_at < until))
                .values(next_attempt_at=until, updated_at=utcnow())
            )

    def renew(self, ids: Iterable[int], *, worker: str) -> None:
        """Refresh this worker's claim on rows it is still working on (waiting out a 429)."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(_mine(update(deliveries), list(ids), worker).values(claimed_at=now, updated_at=now))

    def mark_sent(
        self, ids: Sequence[int], *, worker: str, channel_id: str, ts: str, permalink: str | None,
        payload: Mapping[str, Any] | None, batch_uid: str | None = None,
    ) -> None:
        """Record a successful post: the Slack ts and permalink go on every row it carried."""
        now = utcnow()
        values: dict[str, Any] = dict(
            status=DeliveryStatus.SENT, slack_channel_id=channel_id, slack_ts=ts, permalink=permalink, sent_at=now,
            updated_at=now, last_error=None, batch_size=len(ids),
        )
        if batch_uid:
            values["batch_uid"] = batch_uid
        if payload is not None and len(ids) == 1:
            values["payload"] = _json(payload)
        with self.engine.begin() as conn:
            if len(ids) == 1:
                # A message of its own (not a reply, not a digest) of a living or thread-only rule
                # becomes its document's living message, in the same transaction as the send.
                row = conn.execute(_mine(select(deliveries), ids, worker)).first()
                if row is not None and row.thread_ts is None and row.style in ("living", "thread-only") \
                        and row.archive is None:
                    self._set_living(conn, _delivery(row), channel_id, ts, now)
            first = conn.execute(_mine(select(deliveries), ids[:1], worker)).first()
            if first is not None and first.archive is not None:
                # The period's totals now lag one reply behind: its parent is refreshed from this.
                conn.execute(update(archive_threads).where(*_thread_of(first)).values(
                    version=archive_threads.c.version + 1))
            conn.execute(_mine(update(deliveries), ids, worker).values(**values))

    # --- archive threads ------------------------------------------------------------------

    def archive_thread(self, d: Delivery) -> ArchiveThread | None:
        """The archive thread ``d`` is a reply in."""
        with self.engine.connect() as conn:
            row = conn.execute(select(archive_threads).where(*_thread_of(d))).first()
        return None if row is None else _thread(row)

    def archive_attempt(self, thread: ArchiveThread) -> None:
        """Record that the thread's parent is about to be posted (after this, a missing ``ts``
        means "look for it in the channel before posting")."""
        with self.engine.begin() as conn:
            conn.execute(update(archive_threads).where(*_thread_of(thread), archive_threads.c.attempted_at.is_(None))
                         .values(attempted_at=utcnow()))

    def archive_posted(self, thread: ArchiveThread, channel_id: str, ts: str) -> None:
        with self.engine.begin() as conn:
            # Posted with no replies yet: it shows version 0 as it is.
            conn.execute(update(archive_threads).where(*_thread_of(thread)).values(channel_id=channel_id, ts=ts,
                                                                                    shown=0))

    def archive_due(self, now: datetime | None = None) -> list[ArchiveThread]:
        """Posted parents whose totals lag their replies, or whose period has ended and which do
        not say so yet."""
        now = now or utcnow()
        with self.engine.connect() as conn:
            rows = conn.execute(select(archive_threads).where(
                archive_threads.c.ts.is_not(None),
                (archive_threads.c.version > archive_threads.c.shown)
                | (archive_threads.c.closed.is_(False) & (archive_threads.c.ends_at <= now)))).all()
        return [_thread(r) for r in rows]

    def archive_replies(self, thread: ArchiveThread) -> list[Delivery]:
        """The deliveries sent into a period's thread (what its totals add up)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(deliveries).where(
                deliveries.c.channel == thread.channel, deliveries.c.source == thread.source,
                deliveries.c.company == thread.company, deliveries.c.archive == thread.period,
                deliveries.c.status == DeliveryStatus.SENT).order_by(deliveries.c.id)).all()
        return [_delivery(r) for r in rows]

    def archive_shown(self, thread: ArchiveThread, version: int, closed: bool) -> None:
        """The parent now shows ``version`` replies' totals (and the period closed, if so)."""
        with self.engine.begin() as conn:
            conn.execute(update(archive_threads).where(*_thread_of(thread), archive_threads.c.shown < version)
                         .values(shown=version))
            if closed:
                conn.execute(update(archive_threads).where(*_thread_of(thread)).values(closed=True))

    # --- scheduled summaries --------------------------------------------------------------

    def current_documents(self, kinds: Iterable[tuple[str, str]]) -> Iterator[Delivery]:
        """Each document's last recorded state, for the (source, entity) pairs given: its newest
        live row, whatever became of it (sent, filtered by a route, or still waiting). Streamed,
        so years of documents are read without holding them all."""
        pairs = [and_(deliveries.c.source == s, deliveries.c.entity == e) for s, e in sorted(set(kinds))]
        if not pairs:
            return
        newest = (select(func.max(deliveries.c.id)).where(deliveries.c.dry_run.is_(False), or_(*pairs))
                  .group_by(deliveries.c.source, deliveries.c.company, deliveries.c.entity, deliveries.c.record_key))
        c = deliveries.c
        # Only what a state needs (no claim or attempt columns: their dates cost more to read than the rest).
        query = (select(c.id, c.uid, c.source, c.company, c.entity, c.record_key, c.event, c.channel, c.status,
                        c.fields, c.style, c.created_at)
                 .where(c.id.in_(newest)).order_by(c.id))
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=2000).execute(query):
                yield Delivery(id=r.id, uid=r.uid, source=r.source, company=r.company, entity=r.entity,
                               record_key=r.record_key, event=r.event, channel=r.channel, status=r.status,
                               fields=json.loads(r.fields), changes=(), attempts=0, created_at=_aware(r.created_at),
                               style=r.style or "new-message")

    def summary_post(self, summary: str, slot: datetime, channel: str) -> SummaryPost:
        """The post of ``summary`` for ``slot``, created (with the id its message will carry) if
        this is the first time the slot is seen."""
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(summary_posts, ("summary", "slot")).values(
                summary=summary, slot=slot, uid=uuid.uuid4().hex, channel=channel))
            r = conn.execute(select(summary_posts).where(summary_posts.c.summary == summary,
                                                         summary_posts.c.slot == slot)).one()
        return SummaryPost(summary=r.summary, slot=_aware(r.slot), uid=r.uid, channel=r.channel,  # type: ignore[arg-type]
                           channel_id=r.channel_id, ts=r.ts, attempted_at=_aware(r.attempted_at))

    def summary_attempt(self, post: SummaryPost) -> None:
        """Record that the post is about to be made (from then on, a missing ``ts`` means "look
        in the channel before posting")."""
        with self.engine.begin() as conn:
            conn.execute(update(summary_posts).where(summary_posts.c.summary == post.summary,
                                                     summary_posts.c.slot == post.slot)
                         .values(attempted_at=utcnow()))

    def summary_posted(self, post: SummaryPost, channel_id: str, ts: str, documents: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(summary_posts).where(summary_posts.c.summary == post.summary,
                                                     summary_posts.c.slot == post.slot)
                         .values(channel_id=channel_id, ts=ts, documents=documents, posted_at=utcnow()))

    def _set_living(self, conn: Connection, d: Delivery, channel_id: str, ts: str, now: datetime) -> None:
        source, company, entity, key, channel = d.document
        values = dict(channel_id=channel_id, ts=ts, delivery_id=d.id, updated_at=now)
        conn.execute(self._upsert(living_messages).values(
            source=source, company=company, entity=entity, record_key=key, channel=channel, **values,
        ).on_conflict_do_update(index_elements=["source", "company", "entity", "record_key", "channel"], set_=values,
                                 where=living_messages.c.delivery_id < d.id))

    def living(self, d: Delivery) -> Living | None:
        """The living message of ``d``'s document in its channel, if it has one."""
        source, company, entity, key, channel = d.document
        with self.engine.connect() as conn:
            row = conn.execute(select(living_messages).where(
                living_messages.c.source == source, living_messages.c.company == company,
                living_messages.c.entity == entity, living_messages.c.record_key == key,
                living_messages.c.channel == channel)).first()
        return None if row is None else Living(row.channel_id, row.ts, row.delivery_id)

    def living_edited(self, d: Delivery) -> None:
        """Record that the living message now shows ``d`` (never an older delivery than it had)."""
        source, company, entity, key, channel = d.document
        with self.engine.begin() as conn:
            conn.execute(update(living_messages).where(
                living_messages.c.source == source, living_messages.c.company == company,
                living_messages.c.entity == entity, living_messages.c.record_key == key,
                living_messages.c.channel == channel, living_messages.c.delivery_id < d.id,
            ).values(delivery_id=d.id, updated_at=utcnow()))

    def mark_attempt(self, ids: Sequence[int], *, worker: str, thread_ts: str | None = None) -> bool:
        """Record an attempt just before posting; False if any row is no longer this worker's.

        The claim is refreshed in the same statement, so "still mine?" and "I am sending it now"
        are one atomic step: a drainer whose claim lapsed never posts a batch someone took over.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            n = conn.execute(
                _mine(update(deliveries), ids, worker).values(
                    attempts=deliveries.c.attempts + 1, claimed_at=now, updated_at=now, thread_ts=thread_ts,
                    first_attempt_at=func.coalesce(deliveries.c.first_attempt_at, now),
                )
            ).rowcount
        return n == len(ids)

    def release(self, ids: Sequence[int], *, worker: str, error: str | None, retry_at: datetime | None) -> None:
        """Give this worker's claimed rows back to the lane (not sent, or reconciled as not posted)."""
        with self.engine.begin() as conn:
            conn.execute(
                _mine(update(deliveries), ids, worker).values(
                    status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None, next_attempt_at=retry_at,
                    last_error=error, updated_at=utcnow(),
                )
            )

    def finish(self, ids: Sequence[int], *, worker: str, status: str, error: str) -> None:
        """End this worker's rows as ``failed`` (fixable: channel, token) or ``dead`` (gave up)."""
        with self.engine.begin() as conn:
            for chunk in _chunks(ids):
                conn.execute(
                    _mine(update(deliveries), chunk, worker).values(
                        status=status, last_error=error, claimed_by=None, updated_at=utcnow()
                    )
                )

    def fail_channel(self, channel: str, *, error: str) -> list[Delivery]:
        """Mark every pending row of a channel ``failed`` in one statement (a broken destination:
        the rest would fail the same way), however long the backlog; returns the rows."""
        now = utcnow()
        stmt = (
            update(deliveries)
            .where(deliveries.c.channel == channel, deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.dry_run.is_(False))
            .values(status=DeliveryStatus.FAILED, last_error=error, updated_at=now)
            .returning(*deliveries.c)
        )
        with self.engine.begin() as conn:
            return [_delivery(r) for r in conn.execute(stmt).all()]

    def audit_many(self, events: Sequence[Mapping[str, Any]], *, flow_run_id: str | None = None) -> None:
        """Write many audit events in one transaction (one per record of a failed lane)."""
        if not events:
            return
        now = utcnow()
        rows = [
            dict(at=now, kind=e["kind"], source=e.get("source"), company=e.get("company"), entity=e.get("entity"),
                 record_key=e.get("record_key"), channel=e.get("channel"), delivery_id=e.get("delivery_id"),
                 message=e.get("message"), details=_json(dict(e["details"])) if e.get("details") else None,
                 flow_run_id=flow_run_id)
            for e in events
        ]
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 1000):
                conn.execute(insert(audit_events), rows[i:i + 1000])

    def requeue(self, *, status: str = DeliveryStatus.FAILED, channel: str | None = None, to: str | None = None) -> int:
        """Put failed (or dead) rows back to pending, e.g. after a channel or token is fixed;
        ``to`` moves them to another channel (a route that named the wrong one)."""
        q = update(deliveries).where(deliveries.c.status == status, deliveries.c.dry_run.is_(False))
        if channel:
            q = q.where(deliveries.c.channel == channel)
        # A fresh start: its age, attempts and claim are those of a new row, so a requeued row is
        # neither treated as ambiguous nor dead-lettered at once for an old attempt count.
        values: dict[str, Any] = dict(status=DeliveryStatus.PENDING, next_attempt_at=None, updated_at=utcnow(), attempts=0,
                                      first_attempt_at=None, claimed_by=None, claimed_at=None, batch_uid=None)
        if to:
            values["channel"] = to
        with self.engine.begin() as conn:
            return conn.execute(q.values(**values)).rowcount

    # --- reading --------------------------------------------------------------------------

    def deliveries(self, **where: Any) -> list[dict[str, Any]]:
        """Delivery rows matching column=value filters, oldest first."""
        q = select(deliveries).order_by(deliveries.c.id)
        for col, value in where.items():
            q = q.where(deliveries.c[col] == value)
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(q)]

    def counts(self) -> dict[str, int]:
        """Rows per delivery status."""
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))}

    def status(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Per source, company and entity: the last poll that completed, the last change seen
        (the newest live delivery), the watermark, the deliveries per state and the age of the
        oldest one still waiting or sending. What an operator asks first."""
        now = now or utcnow()
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}

        def row(source: str, company: str, entity: str) -> dict[str, Any]:
            return rows.setdefault((source, company, entity), {
                "source": source, "company": company, "entity": entity, "last_poll": None, "last_change": None,
                "watermark": None, **{str(s): 0 for s in DeliveryStatus}, "oldest_waiting": None,
            })

        live = deliveries.c.dry_run.is_(False)
        waiting = deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING))
        with self.engine.connect() as conn:
            for r in conn.execute(select(watermarks.c.source, watermarks.c.company, watermarks.c.entity,
                                         watermarks.c.kind, watermarks.c.value)):
                row(r.source, r.company, r.entity)["watermark"] = r.value
            for r in conn.execute(
                select(audit_events.c.source, audit_events.c.company, audit_events.c.entity,
                       func.max(audit_events.c.at))
                .where(audit_events.c.kind == "poll", audit_events.c.entity.is_not(None))
                .group_by(audit_events.c.source, audit_events.c.company, audit_events.c.entity)
            ):
                row(r[0], r[1], r[2])["last_poll"] = _aware(r[3])
            for r in conn.execute(
                select(deliveries.c.source, deliveries.c.company, deliveries.c.entity, deliveries.c.status,
                       func.count(), func.max(deliveries.c.created_at))
                .where(live)
                .group_by(deliveries.c.source, deliveries.c.company, deliveries.c.entity, deliveries.c.status)
            ):
                slot = row(r[0], r[1], r[2])
                slot[r[3]] = r[4]
                if r[3] != DeliveryStatus.FILTERED:  # held back (a baseline, no route) is no news
                    slot["last_change"] = max(filter(None, (slot["last_change"], _aware(r[5]))), default=None)
            for r in conn.execute(
                select(deliveries.c.source, deliveries.c.company, deliveries.c.entity,
                       func.min(deliveries.c.created_at))
                .where(live, waiting)
                .group_by(deliveries.c.source, deliveries.c.company, deliveries.c.entity)
            ):
                row(r[0], r[1], r[2])["oldest_waiting"] = now - _aware(r[3])  # type: ignore[operator]
        return [rows[k] for k in sorted(rows)]

    def reserve_slot(self, channel: str, interval: float, *, now: float, burst: int = 1) -> float:
        """The time (seconds since the epoch) this drainer may post to ``channel``, with the
        channel's next slot moved one ``interval`` past it, atomically: every drainer on this
        database keeps the channel's pace together.

        Slots follow a schedule: the next is the last plus ``interval``, not "now plus
        interval", so time lost to a slow write or a pause is made up. A slot may lie up to
        ``burst - 1`` intervals in the past, which posts at once to catch up, but never more: a
        channel idle for longer starts again from ``now - (burst - 1) * interval``. This is a
        token bucket of capacity ``burst`` kept as one number (the generic cell rate algorithm)."""
        earliest = now - (burst - 1) * interval
        insert_ = self._upsert(channel_pace)
        stmt = insert_.values(channel=channel, next_at=now + interval).on_conflict_do_update(
            index_elements=["channel"],
            set_={"next_at": self._greatest(channel_pace.c.next_at, earliest) + interval},
        ).returning(channel_pace.c.next_at)
        with self.engine.begin() as conn:
            return float(conn.execute(stmt).scalar_one()) - interval

    def name_company(self, source: str, company: str, name: str | None) -> None:
        """Record what Slack calls this company (None: the company as it is)."""
        with self.engine.begin() as conn:
            if not name:
                conn.execute(delete(company_names).where(company_names.c.source == source,
                                                         company_names.c.company == company))
                return
            conn.execute(self._upsert(company_names).values(source=source, company=company, name=name)
                         .on_conflict_do_update(index_elements=["source", "company"], set_={"name": name}))

    def company_names(self) -> dict[tuple[str, str], str]:
        """(source, company) -> the name Slack shows, for every company that has one."""
        with self.engine.connect() as conn:
            return {(r.source, r.company): r.name for r in conn.execute(select(company_names))}

    def learn_currencies(self, source: str, company: str, codes: Mapping[str, str]) -> None:
        """Record the ISO code of each currency id the ERP's setup names (replacing what an
        earlier run read for this company)."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(delete(currency_codes).where(currency_codes.c.source == source,
                                                      currency_codes.c.company == company))
            if codes:
                conn.execute(insert(currency_codes), [
                    dict(source=source, company=company, currency=k, code=v, updated_at=now) for k, v in codes.items()])

    def currency_codes(self) -> dict[tuple[str, str], dict[str, str]]:
        """(source, company) -> currency id -> ISO code, as the ERPs' setups say."""
        out: dict[tuple[str, str], dict[str, str]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(currency_codes)):
                out.setdefault((r.source, r.company), {})[r.currency] = r.code
        return out

    def push_slot(self, channel: str, at_least: float) -> None:
        """Move ``channel``'s next slot to ``at_least`` if it is earlier (a post that went late)."""
        with self.engine.begin() as conn:
            conn.execute(update(channel_pace).where(channel_pace.c.channel == channel, channel_pace.c.next_at < at_least)
                         .values(next_at=at_least))

    def _upsert(self, table: Any) -> Any:
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def _greatest(self, column: Any, value: float) -> Any:
        # PostgreSQL's GREATEST; SQLite's two-argument MAX is the same scalar function.
        return func.greatest(column, value) if self.is_postgres else func.max(column, value)

    def waiting(self, source: str, company: str, now: datetime | None = None) -> tuple[int, timedelta | None]:
        """Live deliveries of one source and company not yet in Slack (pending or sending), and
        how long the oldest has waited; rows held for a channel's quiet hours wait on purpose and
        are not counted until their window has ended."""
        now = now or utcnow()
        # Spelled out so that a NULL last_error or next_attempt_at counts as "not held" (NOT of a
        # NULL comparison is NULL in SQL, and would hide every ordinary row).
        not_held = or_(deliveries.c.last_error.is_(None), ~deliveries.c.last_error.like(f"{HELD}%"),
                       deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now)
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(deliveries.c.created_at)).where(
                    deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
                    deliveries.c.source == source, deliveries.c.company == company,
                    deliveries.c.dry_run.is_(False), not_held)
            ).one()
        return count, None if oldest is None else (now or utcnow()) - _aware(oldest)  # type: ignore[operator]

    def last_change(self, source: str, company: str, entity: str) -> datetime | None:
        """When the newest live delivery of an entity (one that was news, not held back) was made."""
        with self.engine.connect() as conn:
            newest = conn.execute(
                select(func.max(deliveries.c.created_at)).where(
                    deliveries.c.source == source, deliveries.c.company == company, deliveries.c.entity == entity,
                    deliveries.c.dry_run.is_(False), deliveries.c.status != DeliveryStatus.FILTERED)
            ).scalar()
        return _aware(newest)

    def last_poll_at(self, source: str, company: str) -> datetime | None:
        """When a poll of this source and company last completed (any entity, any run)."""
        with self.engine.connect() as conn:
            last = conn.execute(
                select(func.max(audit_events.c.at)).where(
                    audit_events.c.kind == "poll", audit_events.c.source == source,
                    audit_events.c.company == company)
            ).scalar()
        return _aware(last)

    def claimed(self, now: datetime | None = None) -> tuple[int, timedelta | None]:
        """Rows ``sending`` under some drainer's claim, and how long the oldest claim has lasted:
        what a run leaves in flight (another run's batch, or one waiting to be reconciled)."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(deliveries.c.claimed_at)).where(
                    deliveries.c.status == DeliveryStatus.SENDING)
            ).one()
        return count, None if oldest is None else (now or utcnow()) - _aware(oldest)  # type: ignore[operator]

    def oldest_pending_age(self, now: datetime | None = None) -> timedelta | None:
        with self.engine.connect() as conn:
            oldest = conn.execute(
                select(func.min(deliveries.c.created_at)).where(deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)))
            ).scalar()
        if oldest is None:
            return None
        return (now or utcnow()) - _aware(oldest)  # type: ignore[operator]


def _chunks(ids: Sequence[int], size: int = 1000) -> list[list[int]]:
    """Id lists cut to a size every database takes as bind parameters (PostgreSQL: 65,535)."""
    ids = list(ids)
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _mine(stmt: Any, ids: Sequence[int], worker: str) -> Any:
    """Restrict an update to rows this worker has claimed and not finished: a drainer whose claim
    was taken over can never change (or re-send) a row that is now someone else's."""
    return stmt.where(
        deliveries.c.id.in_(list(ids)), deliveries.c.claimed_by == worker, deliveries.c.status == DeliveryStatus.SENDING
    )


def _audit_key(a: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes a de-duplicated audit row the same as an earlier one."""
    return (a["kind"], a.get("source"), a.get("company"), a.get("entity"), a.get("record_key"), a.get("message"))


@dataclass(frozen=True)
class Verdict:
    """What one record version means against the latest one recorded for its key.

    ``event`` is ``created``, ``updated`` or ``status_change`` for news (``changes`` lists the
    watched fields that differ, as ``(field, before, after)``), or None for a duplicate;
    ``revive`` is the id of a held-back row a live backfill sends after all.
    """

    event: str | None
    changes: list[tuple[str, Any, Any]] | None = None
    revive: int | None = None


def classify_version(
    item: NewDelivery, latest: Mapping[str, Any] | None, *, repeated: bool = False, requeue_filtered: bool = False,
) -> Verdict:
    """Is ``item`` new, an update, a status change, a duplicate or a revival? A pure decision.

    ``latest`` describes the key's latest recorded version (``latest`` version, ``latest_id``,
    ``latest_status``, ``latest_dry_run``, ``fields``), or is None for a key never seen;
    ``repeated`` says this page already held the same version. A duplicate is the state last
    recorded, not any state ever seen: a document that returns to an earlier state (hold on,
    off, on again) is news again.
    """
    slot = latest or {}
    rehearse_revival = False
    if repeated or item.version == slot.get("latest"):
        held = slot.get("latest_status") == DeliveryStatus.FILTERED and not slot.get("latest_dry_run")
        held_id = slot.get("latest_id") if held else None
        if requeue_filtered and held_id is not None and item.status == DeliveryStatus.PENDING:
            return Verdict(None, revive=held_id)
        if not (requeue_filtered and held_id is not None and item.status == DeliveryStatus.DRY_RUN):
            return Verdict(None)
        rehearse_revival = True  # a dry-run backfill shows what the live one would revive
    if latest is None or "fields" not in latest or rehearse_revival:
        return Verdict("created")
    changes = [c for c in _diff(latest["fields"], item.fields) if not item.watch or c[0] in item.watch]
    if not changes:
        return Verdict(None)  # a new hash but no watched field differs (a rehash, say): not news
    sf = item.status_field
    return Verdict("status_change" if sf and any(c[0] == sf for c in changes) else "updated", changes)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    changes = []
    for k in new:
        a, b = old.get(k), new.get(k)
        if _jsonish(a) != _jsonish(b):
            changes.append((k, _jsonish(a), _jsonish(b)))
    return changes


def _jsonish(v: Any) -> Any:
    return json.loads(_json(v)) if v is not None else None


def _thread_of(x: Any) -> tuple[Any, ...]:
    """The archive thread of a delivery (row or Delivery) or of an ArchiveThread, as a WHERE."""
    period = x.period if isinstance(x, ArchiveThread) else x.archive
    return (archive_threads.c.channel == x.channel, archive_threads.c.source == x.source,
            archive_threads.c.company == x.company, archive_threads.c.period == period)


def _thread(r: Any) -> ArchiveThread:
    return ArchiveThread(
        channel=r.channel, source=r.source, company=r.company, period=r.period, label=r.label,
        ends_at=_aware(r.ends_at), uid=r.uid, channel_id=r.channel_id, ts=r.ts,  # type: ignore[arg-type]
        attempted_at=_aware(r.attempted_at), version=r.version, shown=r.shown, closed=bool(r.closed),
    )


def _delivery(r: Any) -> Delivery:
    return Delivery(
        id=r.id, uid=r.uid, source=r.source, company=r.company, entity=r.entity, record_key=r.record_key,
        event=r.event, channel=r.channel, status=r.status, fields=json.loads(r.fields),
        changes=tuple(tuple(c) for c in json.loads(r.changes)) if r.changes else (),  # type: ignore[misc]
        attempts=r.attempts, created_at=_aware(r.created_at), batch_uid=r.batch_uid,  # type: ignore[arg-type]
        claimed_at=_aware(r.claimed_at), first_attempt_at=_aware(r.first_attempt_at),
        mentions=tuple(json.loads(r.mentions)) if r.mentions else (), urgent=bool(r.urgent),
        style=r.style or "new-message", thread_ts=r.thread_ts, archive=r.archive, broadcast=bool(r.broadcast),
    )


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite database file readable by its owner only, before SQLite creates it with
    the process umask: the audit trail holds invoice amounts and supplier names. SQLite gives the
    WAL and shared-memory files the database file's permissions."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists() and path.parent.is_dir():  # a missing folder stays SQLite's error to report
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another process created it a moment ago


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers run beside a writer; busy_timeout waits instead of failing; and
            # taking over transaction control lets SAVEPOINTs and BEGIN IMMEDIATE work (pysqlite
            # otherwise issues its own BEGIN lazily).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: two processes can then never deadlock on
            # a read-to-write lock upgrade, which busy_timeout cannot resolve.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)
