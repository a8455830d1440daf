"""Period archive threads: one parent per channel, company and period, kept current with its
replies' counts and totals, closed when the period ends; back-dated and late postings land in
their own period. Against the loopback Slack simulator."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from erp_slack.model import Cursor, Entity
from erp_slack.routing import Rule, route
from erp_slack.slack.archive import period_of
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.store import NewDelivery, Store

JOURNAL = Entity(
    source="gp", name="gl_journal", title="GL journal entry", table="GL", key=("Journal", "Line"),
    cursor=Cursor("ModifiedDate", "timestamp"),
    fields={"journal": "Journal", "entry": "Line", "account": "Account", "amount": "Amount", "currency": "Currency",
            "posting_date": "PostingDate", "period": "Period"},
    template="gl_journal", amount_field="amount", currency_field="currency", period_field="posting_date",
)
ENTITIES = {("gp", "gl_journal"): JOURNAL}
CHANNEL = "#gl-postings"


def post(store: Store, journal: int, day: str, amount: str, currency: str = "USD", *, company: str = "TWO",
         kind: str = "month", broadcast: bool = False) -> None:
    """A GL entry posted on ``day``, routed by an archiving rule."""
    store.enqueue(source="gp", company=company, entity="gl_journal", items=[NewDelivery(
        record_key=f"{journal}|1", version="v1", channel=CHANNEL, status="pending", cursor=day,
        fields={"journal": journal, "entry": 1, "account": "000-1100-00", "amount": amount, "currency": currency,
                "posting_date": day, "period": f"{day[:4]}/{int(day[5:7])}"},
        archive=period_of(day, kind, "Europe/London"), broadcast=broadcast)])


def drain(store: Store, sim, **kw) -> None:
    settings = DrainSettings(time_scale=sim.sim.time_scale, reconcile_after=0.2, **kw)
    Drainer(store, SlackGateway(sim.token, base_url=sim.url, timeout=5), ENTITIES, settings=settings).drain()


def parents(sim) -> list[dict]:
    return [m for m in sim.sim.posted(CHANNEL) if m["metadata"]["event_type"] == "erp_archive_thread_opened"]


def thread(sim, ts: str) -> list[dict]:
    return [m for m in sim.sim.posted(CHANNEL) if m.get("thread_ts") == ts and m["ts"] != ts]


def sum_of(replies: list[dict], store: Store) -> dict[str, Decimal]:
    by_uid = {r["uid"]: json.loads(r["fields"]) for r in store.deliveries()}
    sums: dict[str, Decimal] = {}
    for m in replies:
        for uid in m["metadata"]["event_payload"]["deliveries"]:
            f = by_uid[uid]
            sums[f["currency"]] = sums.get(f["currency"], Decimal(0)) + Decimal(f["amount"])
    return sums


def test_a_month_of_postings_ends_with_one_parent_per_period_whose_totals_are_its_replies(store, slack_sim):
    # November's postings, one back-dated into October, then a late October posting after October
    # closed, and a December one (the current month on this machine's calendar may differ: the
    # test only needs December 2026 to be open at the time the drainer looks, so it uses 2099).
    for i, (day, amount, cur) in enumerate([("2026-11-02", "100.00", "USD"), ("2026-11-15", "250.50", "USD"),
                                            ("2026-10-30", "75.25", "USD"), ("2026-11-30", "40.00", "EUR")]):
        post(store, 1000 + i, day, amount, cur)
    drain(store, slack_sim)
    post(store, 2000, "2026-10-12", "10.00")  # late: October has ended
    post(store, 2001, "2099-06-01", "5.00")  # a period still open
    drain(store, slack_sim)

    by_label = {m["blocks"][0]["text"]["text"]: m for m in parents(slack_sim)}
    assert sorted(by_label) == ["GL journal entries · June 2099 · TWO", "GL journal entries · November 2026 · TWO",
                                "GL journal entries · October 2026 · TWO"]
    expect = {"November 2026": (3, {"USD": Decimal("350.50"), "EUR": Decimal("40.00")}),
              "October 2026": (2, {"USD": Decimal("85.25")}), "June 2099": (1, {"USD": Decimal("5.00")})}
    for title, parent in by_label.items():
        label = title.split(" · ")[1]
        replies = thread(slack_sim, parent["ts"])
        count, sums = expect[label]
        assert len(replies) == count and sum_of(replies, store) == sums
        shown = parent["blocks"][1]["text"]["text"]
        assert shown.startswith(f"*GL journal entries*: {count}"), shown
        for cur, total in sums.items():
            assert f"{cur} {total:,.2f}" in shown, shown
        closing = parent["blocks"][2]["elements"][0]["text"]
        assert ("Closed" in closing) == (label != "June 2099"), closing
    # Every record once, each as a reply (none in the channel itself).
    rows = store.deliveries()
    assert {r["status"] for r in rows} == {"sent"}
    assert all(r["thread_ts"] for r in rows) and len(slack_sim.sim.posted(CHANNEL)) == 3 + len(rows)
    # A quiet drain changes nothing.
    edits = slack_sim.sim.call_counts()["chat.update"]
    drain(store, slack_sim)
    assert slack_sim.sim.call_counts()["chat.update"] == edits


def test_each_company_and_each_week_has_its_own_thread_and_replies_can_show_in_the_channel(store, slack_sim):
    post(store, 1, "2026-11-23", "1.00", company="TWO", kind="week", broadcast=True)
    post(store, 2, "2026-11-29", "2.00", company="TWO", kind="week", broadcast=True)  # Sunday: same ISO week
    post(store, 3, "2026-11-30", "3.00", company="TWO", kind="week", broadcast=True)  # Monday: the next
    post(store, 4, "2026-11-24", "4.00", company="FOUR", kind="week")
    drain(store, slack_sim)
    titles = sorted(m["blocks"][0]["text"]["text"] for m in parents(slack_sim))
    assert titles == ["GL journal entries · Week 48, 2026 (23 Nov – 29 Nov) · FOUR",
                      "GL journal entries · Week 48, 2026 (23 Nov – 29 Nov) · TWO",
                      "GL journal entries · Week 49, 2026 (30 Nov – 6 Dec) · TWO"]
    # Three parents and four replies, each posted once (a post answered 429 under load is retried).
    calls = [c for c in slack_sim.sim.calls if c.method == "chat.postMessage" and not c.rate_limited]
    assert len(calls) == 3 + 4


def test_a_parent_posted_but_not_recorded_is_found_not_posted_twice(store, slack_sim):
    post(store, 1, "2026-11-02", "100.00")
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True)  # the parent's answer is lost
    drain(store, slack_sim)
    drain(store, slack_sim)
    (parent,) = parents(slack_sim)
    assert len(thread(slack_sim, parent["ts"])) == 1
    assert "USD 100.00" in parent["blocks"][1]["text"]["text"]
    assert [a["message"] for a in store.audit_rows("reconciled")] == ["archive parent found in channel history"]


def test_the_period_comes_from_the_documents_own_date_in_the_companys_time_zone():
    assert period_of("2026-11-30", "month").key == "month:2026-11"
    assert period_of(date(2026, 12, 1), "month").label == "December 2026"
    # 23:30 UTC on 31 October is already 1 November in Auckland, still 31 October in London.
    late = datetime(2026, 10, 31, 23, 30, tzinfo=timezone.utc)
    assert period_of(late, "month", "Pacific/Auckland").key == "month:2026-11"
    assert period_of(late, "month", "Europe/London").key == "month:2026-10"
    nov = period_of("2026-11-15", "month", "Europe/London")
    assert nov.ends_at == datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
    assert period_of("2027-01-01", "week").key == "week:2026-W53"  # ISO weeks cross years


def test_an_archiving_rule_places_a_record_in_its_period_and_bad_settings_are_refused():
    from pydantic import ValidationError

    from erp_slack.model import Record

    rule = Rule(entity="gl_journal", channel=CHANNEL, archive="month", archive_timezone="America/Chicago",
                archive_in_channel=True)
    decision = route(Record(source="gp", company="TWO", entity="gl_journal", key="1|1", version="v",
                            cursor="c", fields={"posting_date": date(2026, 11, 3)}), JOURNAL, [rule])
    assert (decision.archive, decision.archive_timezone, decision.archive_in_channel) == \
        ("month", "America/Chicago", True)
    with pytest.raises(ValidationError, match="time zone"):
        Rule(entity="gl_journal", channel=CHANNEL, archive="month", archive_timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        Rule(entity="gl_journal", channel=CHANNEL, archive="year")
