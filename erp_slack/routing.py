"""Routing: which Slack channel a record goes to, or why it is filtered.

Rules are tried top to bottom and the first that matches decides, so severity rules
("supplier invoices of 50,000 or more → #ap-large") go above the general ones. A record that no
rule matches is recorded as ``filtered`` with the reason "no route", never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from erp_slack.model import Entity, Record

__all__ = ["Rule", "Routes", "Route", "route", "DEFAULT_ROUTES"]

# What a rule may mention: a user (U…/W…), a user group (S…), or the channel's members.
MENTION = re.compile(r"[UW][A-Z0-9]{6,}|S[A-Z0-9]{6,}|@here|@channel")


class Rule(BaseModel):
    """One routing rule.

    Attributes:
        entity: Entity names this rule applies to (``ap_invoice``), or ``*``.
        source: ``syspro``, ``gp`` or ``*``.
        company: Company this rule applies to, or ``*``.
        channel: Where matching records go (``#ap-invoices`` or a channel ID).
        skip: Filter matching records out instead (recorded as ``filtered``).
        min_amount: Match only records whose amount is at least this.
        max_amount: Match only records whose amount is below this.
        suppliers: Match only documents of these parties (the entity's ``party_field``: a
            supplier, vendor or customer code).
        exclude_suppliers: Never match documents of these parties.
        statuses: Match only these statuses (as shown, e.g. ``Released``).
        notify: Who the messages of this rule mention: Slack user ids (``U…``/``W…``), user-group
            ids (``S…``), or ``@here``/``@channel``. The only mentions a message can carry: text
            from the ERP is always escaped.
        urgent: Its records go out at once even in the channel's quiet hours.
        message: How a document's later changes reach the channel: ``living`` (default) edits
            the document's first message so it always shows the current state and adds a thread
            reply saying what changed; ``thread-only`` adds the reply only; ``new-message``
            posts each change as a message of its own.
        archive: ``month`` or ``week``: each record is a reply in its period's thread (one parent
            per channel, company and period, showing the period's counts and totals), the period
            taken from the document's own posting or journal date.
        archive_timezone: The company's time zone, where a period starts and ends.
        archive_in_channel: Archive replies are also shown in the channel.
        name: A label for this rule in audit rows and reports.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: str | list[str] = "*"
    source: str = "*"
    company: str = "*"
    channel: str | None = None
    skip: bool = False
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    suppliers: list[str] | None = None
    exclude_suppliers: list[str] = Field(default_factory=list)
    statuses: list[str] | None = None
    notify: list[str] = Field(default_factory=list)
    urgent: bool = False
    message: Literal["living", "thread-only", "new-message"] = "living"
    archive: Literal["month", "week"] | None = None
    archive_timezone: str = "UTC"
    archive_in_channel: bool = False
    name: str | None = None

    @field_validator("entity")
    @classmethod
    def _known_entity(cls, v: str | list[str]) -> str | list[str]:
        from erp_slack.sources import all_entities

        known = {name for _, name in all_entities()}
        names = [v] if isinstance(v, str) else v
        unknown = sorted(n for n in names if n != "*" and n not in known)
        if unknown:
            raise ValueError(f"unknown entities {unknown}; known: {sorted(known)}")
        return v

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v not in ("*", "syspro", "gp"):
            raise ValueError("must be 'syspro', 'gp' or '*'")
        return v

    @field_validator("channel")
    @classmethod
    def _channel_shape(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or " " in v.strip()):
            raise ValueError("must be a channel name like '#ap-invoices' or a channel ID")
        return v.strip() if v else v

    @field_validator("notify")
    @classmethod
    def _mentionable(cls, v: list[str]) -> list[str]:
        for target in v:
            if not MENTION.fullmatch(target):
                raise ValueError(f"{target!r} is not a Slack user id (U… or W…), a user-group id (S…), "
                                 "'@here' or '@channel' (find ids in a profile's or group's 'Copy member ID')")
        return list(dict.fromkeys(v))

    @field_validator("archive_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone name like 'Europe/London' or 'UTC'") from None
        return v

    @model_validator(mode="after")
    def _coherent(self) -> "Rule":
        if not self.skip and not self.channel:
            raise ValueError("a rule needs a channel (or skip = true)")
        if self.skip and self.notify:
            raise ValueError("a rule that skips records notifies nobody: drop notify or skip")
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("min_amount is above max_amount")
        return self

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity,) if isinstance(self.entity, str) else tuple(self.entity)

    def label(self, index: int) -> str:
        return self.name or f"rule {index + 1}"

    def matches(self, record: Record, entity: Entity) -> bool:
        if self.source not in ("*", record.source) or self.company not in ("*", record.company):
            return False
        if "*" not in self.entities and record.entity not in self.entities:
            return False
        code = _field_text(record, entity.party_field)
        if self.suppliers is not None and code not in self.suppliers:
            return False
        if code is not None and code in self.exclude_suppliers:
            return False
        if self.min_amount is not None or self.max_amount is not None:
            amount = _amount(record, entity)
            if amount is None:
                return False
            if self.min_amount is not None and amount < self.min_amount:
                return False
            if self.max_amount is not None and amount >= self.max_amount:
                return False
        if self.statuses is not None:
            status = record.fields.get(entity.status_field) if entity.status_field else None
            if status is None or str(status) not in self.statuses:
                return False
        return True


class Routes(BaseModel):
    """The ordered rule list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)


@dataclass(frozen=True)
class Route:
    """A routing decision: a channel, or None with the reason it was filtered; who to mention."""

    channel: str | None
    reason: str
    notify: tuple[str, ...] = ()
    urgent: bool = False
    style: str = "living"
    archive: str | None = None  # month | week
    archive_timezone: str = "UTC"
    archive_in_channel: bool = False


def route(record: Record, entity: Entity, rules: Sequence[Rule]) -> Route:
    """The first matching rule decides."""
    for i, rule in enumerate(rules):
        if rule.matches(record, entity):
            if rule.skip:
                return Route(None, f"filtered by {rule.label(i)}")
            return Route(rule.channel, f"routed by {rule.label(i)}", tuple(rule.notify), rule.urgent, rule.message,
                         rule.archive, rule.archive_timezone, rule.archive_in_channel)
    return Route(None, "no route")


def _field_text(record: Record, name: str | None) -> str | None:
    value = record.fields.get(name) if name else None
    return str(value) if value not in (None, "") else None


def _amount(record: Record, entity: Entity) -> Decimal | None:
    value: Any = record.fields.get(entity.amount_field) if entity.amount_field else None
    return value if isinstance(value, Decimal) else None


# What a new install routes where until its configuration says otherwise (the demo uses these).
DEFAULT_ROUTES: tuple[Rule, ...] = (
    Rule(name="large supplier invoices", entity=["ap_invoice", "payables_invoice"], min_amount=Decimal("50000"),
         channel="#ap-large"),
    Rule(name="supplier invoices", entity=["ap_invoice", "payables_invoice"], channel="#ap-invoices"),
    Rule(name="vendor changes", entity="vendor", channel="#ap-invoices"),
    Rule(name="purchase orders", entity="purchase_order", channel="#purchasing"),
    Rule(name="sales orders", entity="sales_order", channel="#sales"),
    Rule(name="goods receipts", entity="goods_receipt", channel="#warehouse"),
    Rule(name="AP and GL postings", entity=["ap_journal", "gl_journal"], channel="#gl-postings"),
)
