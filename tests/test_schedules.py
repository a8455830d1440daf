"""The schedules ``erp-slack config apply`` writes: GP's daily run keeps its local time across
daylight-saving changes, for every time of day, in the time zone the configuration names."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from prefect.server.schemas.schedules import CronSchedule

from cli.apply import _describe_schedule, _schedule_for
from erp_slack.config import parse_config


def _cfg(at: str, tz: str):
    return parse_config({
        "dynamics_gp": {"base_url": "https://gp.example", "company": "C", "username": "D\\u", "password": "p",
                        "schedule": {"at": at, "timezone": tz}},
        "slack": {"token": "xoxb-1"},
    })


def _local_runs(at: str, tz: str, start: datetime, n: int) -> list[datetime]:
    sched = _schedule_for(_cfg(at, tz), "gp-daily")
    server = CronSchedule(cron=sched.cron, timezone=sched.timezone)
    dates = server.get_dates(n, start=start)
    if asyncio.iscoroutine(dates):
        dates = asyncio.run(dates)
    return [d.astimezone(ZoneInfo(tz)) for d in dates]


# (zone, a day before spring-forward, a day before fall-back)
ZONES = [("America/Chicago", datetime(2026, 3, 5), datetime(2026, 10, 29)),
         ("Europe/Berlin", datetime(2026, 3, 26), datetime(2026, 10, 22))]


@pytest.mark.parametrize("at", ["00:00", "01:30", "02:00", "02:30", "03:00", "06:00", "07:30", "23:59"])
@pytest.mark.parametrize("tz, spring, autumn", ZONES, ids=[z[0] for z in ZONES])
def test_the_daily_run_keeps_its_local_time_across_daylight_saving(at, tz, spring, autumn):
    want = time.fromisoformat(at)
    for before in (spring, autumn):
        runs = _local_runs(at, tz, before.replace(tzinfo=ZoneInfo(tz)), 8)
        assert len({r.date() for r in runs}) == 8  # one run a day, none skipped or doubled
        off = [r for r in runs if r.time() != want]
        # Only a time the spring-forward skipped moves, that night only, by at most the hour.
        assert len(off) <= 1, off
        for r in off:
            assert timedelta(0) < datetime.combine(r.date(), r.time()) - datetime.combine(r.date(), want) <= \
                timedelta(hours=1)
        assert runs[-1].time() == want


def test_schedules_read_as_people_say_them():
    cfg = _cfg("07:30", "Europe/Berlin")
    assert _describe_schedule(_schedule_for(cfg, "gp-daily")) == "daily at 07:30 Europe/Berlin"
