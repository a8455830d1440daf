"""Quiet hours: when a channel is not to be pinged, and when that ends.

A channel in quiet hours keeps its records in the outbox (held until the window ends, never
dropped); records an urgent routing rule marked go out at once. When the window ends the held
records go out together as a digest. Times are wall-clock times in the window's own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

__all__ = ["QuietHours", "quiet_until"]


@dataclass(frozen=True)
class QuietHours:
    """One quiet window for some channels.

    Attributes:
        channels: The channels it applies to (as routed, ``#ap-invoices``).
        start, end: Daily quiet time, local; ``start > end`` spans midnight (19:00–07:00);
            ``start == end`` means no daily window (weekends only).
        weekends: Saturday and Sunday are quiet all day.
        timezone: IANA zone of ``start``, ``end`` and the weekend.
    """

    channels: frozenset[str]
    start: time
    end: time
    weekends: bool = False
    timezone: str = "UTC"

    def quiet_at(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.timezone))
        if self.weekends and local.weekday() >= 5:
            return True
        now, start, end = local.time().replace(tzinfo=None), self.start, self.end
        if start == end:
            return False
        return start <= now < end if start < end else (now >= start or now < end)

    def ends_after(self, when: datetime) -> datetime:
        """The first moment after ``when`` that is not quiet (UTC)."""
        zone = ZoneInfo(self.timezone)
        local = when.astimezone(zone)
        candidates = []
        for days in range(0, 9):
            day = local.date() + timedelta(days=days)
            for at in (self.end, time(0, 0)):
                moment = datetime.combine(day, at, tzinfo=zone)
                if moment > local and not self.quiet_at(moment):
                    candidates.append(moment)
        return min(candidates).astimezone(timezone.utc)


def quiet_until(rules: Iterable[QuietHours], channel: str, when: datetime) -> datetime | None:
    """When ``channel``'s quiet time ends, if it is quiet at ``when`` (the latest end of every
    window that applies); None if the channel may be posted to."""
    ends = [q.ends_after(when) for q in rules if channel in q.channels and q.quiet_at(when)]
    if not ends:
        return None
    until = max(ends)
    # Overlapping windows: carry on until no window applies.
    later = quiet_until(rules, channel, until)
    return later or until
