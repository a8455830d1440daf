"""The audit store's tables (SQLAlchemy Core). People query these: keep names stable.

The schema is created and upgraded by the Alembic migrations in ``erp_slack/migrations``;
this module is the one description both the migrations and the store read.

    watermarks     one row per (source, company, entity): how far polling has read
    deliveries     the outbox and the per-message audit trail, one row per record version
    audit_events   everything else that happened: polls, logons, bad rows, rate limits, …
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import (
    false as sa_false,
)

__all__ = ["metadata", "watermarks", "deliveries", "audit_events", "channel_pace", "company_names", "living_messages",
           "archive_threads", "summary_posts", "currency_codes", "DeliveryStatus", "STATUSES", "EVENTS"]

metadata = MetaData()



class DeliveryStatus(StrEnum):
    """Where a delivery stands. pending → sending → sent is the happy path; ``sending`` rows older
    than the lease are reconciled against Slack before anything is re-posted. ``filtered`` rows
    were held back (no route, or the first-run baseline); ``dry-run`` rows show what a dry run
    would have posted; ``failed`` rows wait for a person (``erp-slack requeue``); ``dead`` rows
    were refused by Slack for good."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FILTERED = "filtered"
    DRY_RUN = "dry-run"
    FAILED = "failed"
    DEAD = "dead"


STATUSES = tuple(s.value for s in DeliveryStatus)
# What a delivery says about its record.
EVENTS = ("created", "updated", "status_change")

watermarks = Table(
    "watermarks",
    metadata,
    Column("source", String(20), primary_key=True),
    Column("company", String(100), primary_key=True),
    Column("entity", String(60), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("value", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("flow_run_id", String(64)),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(32), nullable=False, unique=True),
    Column("source", String(20), nullable=False),
    Column("company", String(100), nullable=False),
    Column("entity", String(60), nullable=False),
    Column("record_key", String(200), nullable=False),
    Column("version", String(32), nullable=False),
    # A dry run records what would be posted without blocking the real post later.
    Column("dry_run", Boolean, nullable=False, default=False),
    # How often this version was queued before: a document may return to an earlier state (0003).
    Column("revision", Integer, nullable=False, default=0, server_default="0"),
    Column("event", String(20), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", Text),
    Column("cursor", String(64)),
    Column("fields", Text, nullable=False),
    Column("changes", Text),
    Column("payload", Text),
    Column("mentions", Text),  # JSON list of who the routing rule notifies (migration 0006)
    # Sent at once even in the channel's quiet hours: the routing rule said so (migration 0006).
    Column("urgent", Boolean, nullable=False, default=False, server_default=sa_false()),
    # The routing rule's message style: living (default), thread-only or new-message (0007).
    Column("style", String(20)),
    # The living message this delivery replied under (its reply is looked for in that thread).
    Column("thread_ts", String(32)),
    # The archive period this delivery is a reply of (month:2026-11), and whether that reply is
    # also shown in the channel (migration 0008).
    Column("archive", String(40)),
    Column("broadcast", Boolean, nullable=False, default=False, server_default=sa_false()),
    Column("batch_uid", String(32)),
    Column("batch_size", Integer),
    Column("slack_channel_id", String(32)),
    Column("slack_ts", String(32)),
    Column("permalink", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("first_attempt_at", DateTime(timezone=True)),  # migration 0002
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("claimed_by", String(64)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("flow_run_id", String(64)),
    UniqueConstraint("source", "company", "entity", "record_key", "version", "dry_run", "revision",
                     name="uq_delivery_version"),
    Index("ix_deliveries_lane", "status", "channel", "id"),
    Index("ix_deliveries_record", "source", "company", "entity", "record_key"),
    Index("ix_deliveries_batch", "batch_uid"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("source", String(20)),
    Column("company", String(100)),
    Column("entity", String(60)),
    Column("record_key", String(200)),
    Column("channel", String(100)),
    Column("delivery_id", Integer),
    Column("message", Text),
    Column("details", Text),
    Column("flow_run_id", String(64)),
    Index("ix_audit_kind_at", "kind", "at"),
)

# The next time each channel may be posted to (seconds since the epoch), shared by every drainer
# on this database: one atomic update per post reserves a slot.
# What Slack calls a company ("Acme Outdoors" for EDU1), as the last run of it was configured.
company_names = Table(
    "company_names",
    metadata,
    Column("source", String(20), primary_key=True),
    Column("company", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
)

channel_pace = Table(
    "channel_pace",
    metadata,
    Column("channel", String(100), primary_key=True),
    Column("next_at", Float, nullable=False),
)

# One Slack message per document and channel that shows its current state (migration 0007):
# where it is, and the newest delivery rendered into it (edits never go back to an older one).
living_messages = Table(
    "living_messages",
    metadata,
    Column("source", String(20), primary_key=True),
    Column("company", String(100), primary_key=True),
    Column("entity", String(60), primary_key=True),
    Column("record_key", String(200), primary_key=True),
    Column("channel", String(100), primary_key=True),
    Column("channel_id", String(32), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("delivery_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A period's archive thread per channel, source and company (migration 0008): the parent message
# (posted once: ``uid`` is in its metadata, so an unrecorded post is found, not repeated), how many
# replies it has had (``version``) and how many its totals show (``shown``), and whether it shows
# the period as closed.
archive_threads = Table(
    "archive_threads",
    metadata,
    Column("channel", String(100), primary_key=True),
    Column("source", String(20), primary_key=True),
    Column("company", String(100), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("label", String(100), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("uid", String(32), nullable=False),
    Column("channel_id", String(32)),
    Column("ts", String(32)),
    Column("attempted_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, default=0, server_default="0"),
    Column("shown", Integer, nullable=False, default=-1, server_default="-1"),
    Column("closed", Boolean, nullable=False, default=False, server_default=sa_false()),
)

# A scheduled summary's posts (migration 0009): one row per summary and slot (its time of day on
# one day), claimed before posting; ``uid`` is in the message's metadata, so a post that was made
# and not recorded is found in the channel, never posted twice.
summary_posts = Table(
    "summary_posts",
    metadata,
    Column("summary", String(200), primary_key=True),
    Column("slot", DateTime(timezone=True), primary_key=True),
    Column("uid", String(32), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("channel_id", String(32)),
    Column("ts", String(32)),
    Column("documents", Integer),
    Column("attempted_at", DateTime(timezone=True)),
    Column("posted_at", DateTime(timezone=True)),
)

# The ISO 4217 code of each currency the ERP's own setup names (migration 0010), per source and
# company: messages show USD where GP says Z-US$. The configuration's ``currency_codes`` win.
currency_codes = Table(
    "currency_codes",
    metadata,
    Column("source", String(20), primary_key=True),
    Column("company", String(100), primary_key=True),
    Column("currency", String(40), primary_key=True),
    Column("code", String(3), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
