"""Quiet hours: records held in the outbox (never dropped), urgent ones sent at once, the held ones
sent together as a digest once the window ends; held rows are not "waiting too long"."""

from __future__ import annotations

import time as _time
from datetime import datetime, time, timedelta, timezone

import pytest

from erp_slack.config import parse_config
from erp_slack.errors import ConfigError
from erp_slack.slack.quiet import QuietHours, quiet_until
from erp_slack.store import NewDelivery
from tests.test_send import assert_exactly_once, drainer

NIGHTS = QuietHours(frozenset({"#ap-invoices"}), time(19, 0), time(7, 0), weekends=True, timezone="Europe/London")


def _london(*args: int) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Europe/London"))


@pytest.mark.parametrize(("when", "quiet", "ends"), [
    (_london(2026, 12, 1, 12, 0), False, None),                       # a Tuesday at noon
    (_london(2026, 12, 1, 19, 0), True, _london(2026, 12, 2, 7, 0)),  # from 19:00 ...
    (_london(2026, 12, 2, 6, 59), True, _london(2026, 12, 2, 7, 0)),  # ... to 07:00
    (_london(2026, 12, 2, 7, 0), False, None),
    (_london(2026, 12, 4, 18, 0), False, None),                       # Friday evening, not yet
    (_london(2026, 12, 4, 20, 0), True, _london(2026, 12, 7, 7, 0)),  # Friday night → Monday 07:00
    (_london(2026, 12, 6, 13, 0), True, _london(2026, 12, 7, 7, 0)),  # Sunday afternoon
    (_london(2026, 3, 28, 23, 0), True, _london(2026, 3, 30, 7, 0)),  # over the clocks going forward
])
def test_when_a_channel_is_quiet_and_when_that_ends(when, quiet, ends):
    assert NIGHTS.quiet_at(when) is quiet
    until = quiet_until([NIGHTS], "#ap-invoices", when)
    assert until == (ends.astimezone(timezone.utc) if ends else None)
    assert quiet_until([NIGHTS], "#purchasing", when) is None  # another channel is never held


def test_weekends_only_and_overlapping_windows():
    weekends = QuietHours(frozenset({"#gl"}), time(0, 0), time(0, 0), weekends=True)
    assert not weekends.quiet_at(datetime(2026, 12, 4, 23, 0, tzinfo=timezone.utc))
    assert quiet_until([weekends], "#gl", datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)) == datetime(
        2026, 12, 7, 0, 0, tzinfo=timezone.utc)
    evening = QuietHours(frozenset({"#gl"}), time(18, 0), time(23, 0))
    late = QuietHours(frozenset({"#gl"}), time(22, 0), time(6, 0))
    assert quiet_until([evening, late], "#gl", datetime(2026, 12, 1, 19, 0, tzinfo=timezone.utc)) == datetime(
        2026, 12, 2, 6, 0, tzinfo=timezone.utc)


def test_quiet_hours_are_checked_when_the_file_is_loaded():
    base = {"slack": {"token": "xoxb-t"}, "syspro": {"base_url": "https://s.example", "operator": "OP",
                                                      "operator_password": "pw", "company_id": "EDU1"}}
    cfg = parse_config({**base, "slack": {**base["slack"], "quiet_hours": [
        {"channels": ["#ap-invoices"], "start": "19:00", "end": "07:00", "weekends": True,
         "timezone": "Europe/London"}]}})
    assert cfg.slack.quiet_hours[0].to_core() == NIGHTS
    for bad, field in (({"channels": ["#a"], "timezone": "Mars/Olympus"}, "timezone"),
                       ({"channels": ["#a"], "start": "08:00", "end": "08:00"}, "quiet_hours.0"),
                       ({"channels": []}, "channels")):
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "slack": {**base["slack"], "quiet_hours": [bad]}})
        assert field in err.value.path, err.value.path


def test_held_in_quiet_hours_urgent_at_once_the_rest_as_one_digest_when_it_ends(store, slack_sim_factory):
    slack_sim = slack_sim_factory(rate_limits=False)
    now = datetime.now(timezone.utc)
    ends = now + timedelta(seconds=3)
    window = QuietHours(frozenset({"#ap-invoices"}), (now - timedelta(hours=1)).time(), ends.time())
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[
        NewDelivery(record_key=f"INV-{i}", version="v1", channel="#ap-invoices", status="pending",
                    fields={"invoice": f"INV-{i}", "supplier": "ACME", "amount": "100.00"}, cursor=str(i),
                    urgent=(i == 9))
        for i in (1, 2, 3, 9)])
    quiet = drainer(store, slack_sim, quiet=(window,), digest_threshold=10)
    report = quiet.drain()
    (urgent,) = slack_sim.sim.posted("#ap-invoices")
    assert "INV-9" in urgent["text"] and report.records == 1
    assert store.held("#ap-invoices") == 3
    (held,) = store.audit_rows("held")
    assert held["details"]["rows"] == 3 and held["channel"] == "#ap-invoices"
    assert store.waiting("syspro", "EDU1", now=now + timedelta(seconds=1)) == (0, None)  # held is not late
    assert drainer(store, slack_sim, quiet=(window,)).drain().records == 0  # still quiet: nothing more

    _time.sleep(max(0.0, (ends - datetime.now(timezone.utc)).total_seconds()) + 0.3)
    after = drainer(store, slack_sim, quiet=(window,), digest_threshold=10).drain()
    posted = slack_sim.sim.posted("#ap-invoices")
    assert after.records == 3 and after.messages == 1 and len(posted) == 2
    assert all(f"INV-{i}" in posted[1]["text"] + str(posted[1]["blocks"]) for i in (1, 2, 3))
    assert_exactly_once(store, slack_sim)


def test_an_urgent_route_marks_its_records_and_the_report_counts_what_is_held(store):
    from decimal import Decimal

    from erp_slack.model import Record
    from erp_slack.report import report_markdown
    from erp_slack.routing import Rule, route
    from erp_slack.sources.syspro.entities import ENTITIES_ENET

    invoice = next(e for e in ENTITIES_ENET if e.name == "ap_invoice")
    rules = [Rule(entity="ap_invoice", min_amount=Decimal("50000"), channel="#ap-large", urgent=True),
             Rule(entity="ap_invoice", channel="#ap-invoices")]

    def record(amount: str) -> Record:
        return Record(source="syspro", company="EDU1", entity="ap_invoice", key="K", version="v",
                      cursor=1, fields={"amount": Decimal(amount)})

    assert route(record("75000"), invoice, rules).urgent is True
    assert route(record("75"), invoice, rules).urgent is False
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[
        NewDelivery(record_key="A", version="v1", channel="#ap-invoices", status="pending", fields={}, cursor="1")])
    assert store.hold("#ap-invoices", datetime.now(timezone.utc) + timedelta(hours=8)) == 1
    assert "Held for quiet hours: 1" in report_markdown(store)
