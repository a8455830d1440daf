"""Period archive threads: which accounting period a posting belongs to.

A routing rule with ``archive = "month"`` (or ``"week"``) sends each of its records as a reply in
its period's thread: one parent message per channel, company and period, kept current with the
period's counts and totals. The period comes from the document's own date (its posting or
journal date), not from when it was polled, so a back-dated posting lands in its own period's
thread, and a late one after the period closed still does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = ["Period", "period_of", "ARCHIVE_KINDS"]

ARCHIVE_KINDS = ("month", "week")


@dataclass(frozen=True)
class Period:
    """One archive period: ``key`` is stable and sortable (``month:2026-11``, ``week:2026-W48``),
    ``label`` what people read ("November 2026"), ``ends_at`` when it closes (UTC)."""

    key: str
    label: str
    ends_at: datetime


def period_of(day: date | datetime | str | None, kind: str, tz: str = "UTC", *, now: datetime | None = None) -> Period:
    """The period ``day`` falls in. A timestamp is read in ``tz`` (the company's time zone); a
    document without a date counts in the period it was seen in."""
    zone = ZoneInfo(tz)
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    if day is None:
        day = now or datetime.now(timezone.utc)
    if isinstance(day, datetime):
        day = (day if day.tzinfo else day.replace(tzinfo=timezone.utc)).astimezone(zone).date()
    if kind == "month":
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        key, label = f"month:{first:%Y-%m}", f"{first:%B %Y}"
    elif kind == "week":
        year, week, weekday = day.isocalendar()
        first = day - timedelta(days=weekday - 1)
        after = first + timedelta(days=7)
        last = after - timedelta(days=1)
        key = f"week:{year}-W{week:02d}"
        label = f"Week {week}, {year} ({first.day} {first:%b} – {last.day} {last:%b})"
    else:
        raise ValueError(f"archive periods are {ARCHIVE_KINDS}, not {kind!r}")
    ends_at = datetime.combine(after, time(0), tzinfo=zone).astimezone(timezone.utc)
    return Period(key, label, ends_at)
