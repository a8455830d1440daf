"""The sender against the loopback Slack simulator: exactly once, paced, resilient."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

from erp_slack.model import Cursor, Entity
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.store import NewDelivery, Store

INVOICE = Entity(
    source="syspro", name="ap_invoice", title="Supplier invoice", table="ApInvoice", key=("Supplier", "Invoice"),
    cursor=Cursor("TimeStamp", "rowversion"),
    fields={"supplier": "Supplier", "invoice": "Invoice", "supplier_name": "SupplierName", "amount": "OrigInvValue",
            "ts": "TimeStamp"},
    types={"amount": "decimal", "ts": "int"}, template="supplier_invoice", default_currency="USD",
)
ENTITIES = {("syspro", "ap_invoice"): INVOICE}
CHANNELS = ["#ap-invoices", "#purchasing", "#warehouse", "#gl-postings"]


def seed(store: Store, n: int, channels=CHANNELS, name: str = "Acme Bearings", prefix: str = "INV") -> None:
    items = [
        NewDelivery(record_key=f"{prefix}-{i:05d}", version="v1", channel=channels[i % len(channels)], status="pending",
                    fields={"invoice": f"{prefix}-{i:05d}", "supplier": "ACME", "supplier_name": name, "amount": "100.00"},
                    cursor=str(i))
        for i in range(n)
    ]
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=items)


def drainer(store: Store, sim, **kw) -> Drainer:
    settings = DrainSettings(time_scale=sim.sim.time_scale, reconcile_after=0.5, **kw)
    return Drainer(store, SlackGateway(sim.token, base_url=sim.url, timeout=5), ENTITIES, settings=settings)


def delivered_uids(sim) -> Counter:
    uids: Counter = Counter()
    for m in sim.sim.posted():
        for uid in ((m.get("metadata") or {}).get("event_payload") or {}).get("deliveries", []):
            uids[uid] += 1
    return uids


def assert_exactly_once(store: Store, sim) -> None:
    rows = store.deliveries()
    counts = delivered_uids(sim)
    assert {r["status"] for r in rows} == {"sent"}
    assert set(counts) == {r["uid"] for r in rows}
    assert max(counts.values()) == 1, "a record was posted twice"


def test_2000_records_over_4_channels_exactly_once_and_never_over_the_rate(store, slack_sim):
    seed(store, 2000)
    report = drainer(store, slack_sim).drain()
    assert report.records == 2000 and report.halted is None
    assert_exactly_once(store, slack_sim)
    assert slack_sim.sim.rate_violations() == []
    # Deep backlogs go out as digests: far fewer messages than records.
    assert report.messages < 2000 / 10
    for ch in CHANNELS:
        assert report.lanes[ch].records == 500
    # Every sent row knows where it landed.
    row = store.deliveries()[0]
    assert row["slack_ts"] and row["permalink"].startswith("https://acme-bearings.slack.com/archives/")


def test_small_backlog_posts_one_message_per_record(store, slack_sim):
    seed(store, 3, channels=["#ap-invoices"])
    report = drainer(store, slack_sim).drain()
    assert report.messages == 3
    assert [m["metadata"]["event_payload"]["deliveries"].__len__() for m in slack_sim.sim.posted()] == [1, 1, 1]


def test_429_is_honoured_while_other_channels_keep_flowing(store, slack_sim):
    seed(store, 40, channels=["#ap-invoices", "#purchasing"])
    slack_sim.sim.inject("chat.postMessage", retry_after=20, channel="#ap-invoices")  # 1 s at scale 20
    report = drainer(store, slack_sim, digest_threshold=1000).drain()
    assert_exactly_once(store, slack_sim)
    # The injected 429 was met; under CPU load the strict simulator (burst 1) may refuse a
    # jittered post or two more, which the lane also waits out.
    assert report.lanes["#ap-invoices"].rate_limited >= 1
    calls = [c for c in slack_sim.sim.calls if c.method == "chat.postMessage"]
    refused = next(c for c in calls if c.status == 429 and c.injected)
    ok = [c for c in calls if c.status == 200]
    after = [c.t for c in ok if c.channel == refused.channel and c.t > refused.t]
    # The lane waited Retry-After (20 simulated s = 1 real s) before resending…
    assert after and after[0] - refused.t >= 20 / slack_sim.sim.time_scale * 0.95
    # …while the other channel kept posting inside that wait.
    other = [c.t for c in ok if c.channel != refused.channel and refused.t < c.t < after[0]]
    assert len(other) >= 5
    assert len(store.audit_rows("rate_limited")) == report.rate_limited


def test_stored_then_failed_is_reconciled_without_a_duplicate(store, slack_sim):
    seed(store, 3, channels=["#ap-invoices"])
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True)
    drainer(store, slack_sim).drain()
    assert_exactly_once(store, slack_sim)
    assert len(slack_sim.sim.posted()) == 3
    assert [r["message"] for r in store.audit_rows("reconciled")] == ["HTTP 500: found in channel history"]


def test_dropped_connection_after_storing_is_reconciled(store, slack_sim):
    seed(store, 2, channels=["#purchasing"])
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True, drop=True)
    drainer(store, slack_sim).drain()
    assert_exactly_once(store, slack_sim)


def test_server_error_without_storing_is_retried_once_found_missing(store, slack_sim):
    seed(store, 1, channels=["#purchasing"])
    slack_sim.sim.inject("chat.postMessage", status=503)
    drainer(store, slack_sim).drain()
    assert_exactly_once(store, slack_sim)
    assert slack_sim.sim.call_counts()["chat.postMessage"] == 2


def test_not_in_channel_recovers_by_joining(store, slack_sim):
    slack_sim.sim.kick_bot("#warehouse")
    seed(store, 2, channels=["#warehouse"])
    drainer(store, slack_sim).drain()
    assert_exactly_once(store, slack_sim)
    assert slack_sim.sim.call_counts()["conversations.join"] == 1
    assert len(store.audit_rows("channel_joined")) == 1


def test_revoked_token_loses_nothing(store, slack_sim):
    seed(store, 5, channels=["#ap-invoices"])
    slack_sim.sim.revoke_token(slack_sim.token)
    report = drainer(store, slack_sim).drain()
    assert report.halted and "token_revoked" in report.halted
    assert store.counts() == {"pending": 5}
    assert slack_sim.sim.posted() == []
    assert store.audit_rows("slack_auth_failed")


def test_token_revoked_mid_drain_halts_all_lanes_and_keeps_rows(store, slack_sim):
    seed(store, 10, channels=["#ap-invoices", "#purchasing"])
    slack_sim.sim.inject("chat.postMessage", "token_revoked", times=100)
    report = drainer(store, slack_sim).drain()
    assert report.halted == "token_revoked"
    assert store.counts() == {"pending": 10}


def test_missing_or_archived_channel_fails_rows_with_reason(store, slack_sim):
    seed(store, 2, channels=["#does-not-exist"])
    seed(store, 2, channels=["#old-ap"], prefix="ARC")
    seed(store, 2, channels=["#ap-invoices"], prefix="OK")
    drainer(store, slack_sim).drain()
    rows = {r["record_key"]: r for r in store.deliveries()}
    assert {rows[k]["status"] for k in ("INV-00000", "INV-00001")} == {"failed"}
    assert rows["INV-00000"]["last_error"] == "channel_not_found"
    assert {rows[k]["last_error"] for k in ("ARC-00000", "ARC-00001")} == {"is_archived"}
    assert {rows[k]["status"] for k in ("OK-00000", "OK-00001")} == {"sent"}
    assert len(store.audit_rows("delivery_failed")) == 4


def test_hostile_erp_text_arrives_escaped(store, slack_sim):
    seed(store, 1, channels=["#ap-invoices"], name="ACME <!channel> <@U123> <https://evil|click>")
    drainer(store, slack_sim).drain()
    (msg,) = slack_sim.sim.posted()
    import json

    blob = json.dumps(msg["blocks"]) + msg["text"]
    assert "ACME &lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|click&gt;" in blob
    assert "<!channel>" not in blob and "<@U123>" not in blob and "<https://evil" not in blob


def test_a_crashed_drainers_claim_is_reconciled_not_reposted(store, slack_sim):
    seed(store, 2, channels=["#ap-invoices"])
    d = drainer(store, slack_sim, lease=timedelta(0))
    # Simulate a drainer that posted and died before recording the ts.
    rows = store.claim("#ap-invoices", 1, worker="dead-worker")
    from erp_slack.slack.render import render

    msg = render(rows, ENTITIES, batch_uid=rows[0].batch_uid)
    slack_sim.client().chat_postMessage(channel="#ap-invoices", **msg.as_kwargs())
    report = d.drain()
    assert report.reconciled == 1
    assert_exactly_once(store, slack_sim)


def test_bad_payload_in_a_digest_is_split_and_only_the_bad_record_dead_letters(store, slack_sim):
    seed(store, 8, channels=["#ap-invoices"])
    slack_sim.sim.inject("chat.postMessage", "invalid_blocks", times=1)
    drainer(store, slack_sim, digest_threshold=2).drain()
    assert store.counts() == {"sent": 8}


def test_reconciliation_never_reposts_when_history_is_too_long_to_search(store, slack_sim_factory, monkeypatch):
    import erp_slack.slack.gateway as gateway

    sim = slack_sim_factory(rate_limits=False)
    seed(store, 1, channels=["#ap-invoices"])
    rows = store.claim("#ap-invoices", 1, worker="dead-worker")  # posted, then the worker died
    from erp_slack.slack.render import render

    client = sim.client()
    client.chat_postMessage(channel="#ap-invoices", **render(rows, ENTITIES, batch_uid=rows[0].batch_uid).as_kwargs())
    for i in range(450):  # busy channel: the lost post is now three pages deep
        client.chat_postMessage(channel="#ap-invoices", text=f"other traffic {i}")
    monkeypatch.setattr(gateway, "_HISTORY_PAGES", 2)
    report = drainer(store, sim, lease=timedelta(0)).drain()
    assert report.reconciled == 0
    assert store.counts() == {"sending": 1}  # kept claimed, not re-posted
    assert "too long" in store.audit_rows("reconcile_deferred")[0]["message"]
    monkeypatch.setattr(gateway, "_HISTORY_PAGES", 100)
    drainer(store, sim, lease=timedelta(0)).drain()
    assert_exactly_once(store, sim)


def test_a_possibly_posted_batch_whose_history_cannot_be_read_ends_visibly_failed(store, slack_sim):
    seed(store, 3, channels=["#ap-invoices"])
    rows = store.claim("#ap-invoices", 3, worker="dead-worker")  # posted or not, then the worker died
    slack_sim.sim.inject("conversations.history", "missing_scope", times=100)
    # Within the verification window the claim is kept: a second post could duplicate.
    kept = drainer(store, slack_sim, lease=timedelta(0)).drain()
    assert kept.unverifiable == 0 and store.counts() == {"sending": 3}
    # Past it, the rows leave `sending` for a state a person sees, with the reason and what to do.
    report = drainer(store, slack_sim, lease=timedelta(0), verify_for=timedelta(0)).drain()
    assert report.unverifiable == 3 and store.counts() == {"failed": 3}
    failed = store.deliveries(status="failed")
    assert all(r["last_error"].startswith("unverifiable") and "history" in r["last_error"] for r in failed)
    assert len(store.audit_rows("unverifiable")) == 1
    assert {r.id for r in rows} == {r["id"] for r in failed}
    # `erp-slack requeue` acts on them, with a fresh attempt clock.
    assert store.requeue(status="failed") == 3
    assert all(r["attempts"] == 0 and r["first_attempt_at"] is None and r["batch_uid"] is None
               for r in store.deliveries())


def test_a_failed_lane_with_a_huge_backlog_is_marked_in_one_statement(store, slack_sim):
    n = 70_000
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice",
                  items=[NewDelivery(record_key=f"K{i}", version="v", channel="#no-such-channel", status="pending",
                                     fields={"invoice": f"K{i}"}, cursor="1") for i in range(n)])
    report = drainer(store, slack_sim).drain()
    assert report.lanes["#no-such-channel"].failed == n
    assert store.counts() == {"failed": n}
    assert len(store.audit_rows("delivery_failed")) == n


def test_a_run_reports_what_another_drainer_still_holds_and_the_lease_is_a_setting(store, slack_sim, tmp_path):
    from erp_slack.config import parse_config
    from erp_slack.cycle import SlackOut, run_cycle

    seed(store, 3, channels=["#ap-invoices"])
    store.claim("#ap-invoices", 2, worker="other-run")  # another run is posting these right now
    cfg = parse_config({"syspro": {"base_url": "http://x", "operator": "O", "operator_password": "p",
                                   "company_id": "EDU1"},
                        "slack": {"token": "xoxb-1", "claim_lease": "10m"}})
    assert cfg.slack.claim_lease == timedelta(minutes=10)

    class NoSource:
        source, company = "syspro", "EDU1"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    settings = DrainSettings(time_scale=slack_sim.sim.time_scale, lease=cfg.slack.claim_lease)
    gateway = SlackGateway(slack_sim.token, base_url=slack_sim.url, timeout=5)
    summary = run_cycle(lambda audit: NoSource(), [], store, SlackOut(gateway, settings), source="syspro",
                        company="EDU1")
    # Within the lease the other run's two rows are left alone, and the summary says so.
    assert summary.delivered_records == 1
    assert summary.in_flight == 2 and summary.in_flight_age is not None
    assert summary.in_flight_age < timedelta(minutes=1)
    assert summary.as_dict()["in_flight"] == 2
    from erp_slack.report import summary_markdown

    assert "**Still sending:** 2 record(s) under a claim" in summary_markdown(summary.as_dict(), store)


def test_two_drainers_on_one_database_keep_one_channel_at_its_pace(store, slack_sim_factory):
    # A SYSPRO run and a GP run (or a backfill) drain the same channel at the same time. Slack
    # allows short bursts; two messages of slack absorb the two threads' scheduling jitter at
    # twenty times real speed, never a second drainer's whole pace.
    slack_sim = slack_sim_factory(channel_burst=2)
    seed(store, 16, channels=["#ap-invoices"])
    drainers = [drainer(store, slack_sim, digest_threshold=1000) for _ in range(2)]
    reports: list = []
    threads = [threading.Thread(target=lambda d=d: reports.append(d.drain())) for d in drainers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert store.counts() == {"sent": 16}
    assert sum(r.rate_limited for r in reports) == 0
    assert all(r.messages > 0 for r in reports)  # both really posted
    assert slack_sim.sim.rate_violations("#ap-invoices") == []
    assert_exactly_once(store, slack_sim)


def test_a_channel_s_slots_follow_a_schedule_and_catch_up_within_the_burst(store):
    # The next slot is the last slot plus the interval, whenever the drainer asks for it.
    assert store.reserve_slot("#ap", 1.0, now=100.0, burst=2) == 100.0
    assert store.reserve_slot("#ap", 1.0, now=100.3, burst=2) == 101.0  # early: waits for its slot
    # A pause of 1.6 s: the slot it missed is handed out in the past, so it posts at once and
    # the following one keeps the schedule: the pause is made up.
    assert store.reserve_slot("#ap", 1.0, now=102.6, burst=2) == 102.0
    assert store.reserve_slot("#ap", 1.0, now=102.61, burst=2) == 103.0
    # Never more than the burst: after a long quiet spell at most one slot lies in the past.
    assert store.reserve_slot("#ap", 1.0, now=200.0, burst=2) == 199.0
    assert store.reserve_slot("#ap", 1.0, now=200.0, burst=2) == 200.0
    assert store.reserve_slot("#ap", 1.0, now=200.0, burst=2) == 201.0
    # Burst 1 never catches up: a slot is never earlier than now.
    assert store.reserve_slot("#gl", 1.0, now=10.0, burst=1) == 10.0
    assert store.reserve_slot("#gl", 1.0, now=12.5, burst=1) == 12.5


def test_a_paused_drainer_makes_up_the_lost_time_without_breaking_the_burst(store, slack_sim_factory):
    # Every fifth post, recording the attempt pauses for most of an interval (a garbage
    # collection, a slow disk). A drainer that paced from "now" would lose a sixth of its rate;
    # one that keeps the schedule and may use a burst of 2 makes the pause up.
    slack_sim = slack_sim_factory(time_scale=5, channel_burst=2)
    seed(store, 31, channels=["#ap-invoices"])
    interval = 1 / (5 * DrainSettings().headroom)
    mark_attempt, calls = store.mark_attempt, []

    def slow_mark_attempt(*args, **kw):
        calls.append(1)
        if len(calls) % 5 == 0:
            time.sleep(0.8 * interval)
        return mark_attempt(*args, **kw)

    store.mark_attempt = slow_mark_attempt
    report = drainer(store, slack_sim, digest_threshold=1000, channel_burst=2).drain()
    assert report.messages == 31 and report.rate_limited == 0
    times = [p.t for p in slack_sim.sim.post_log if p.accepted]
    rate = (len(times) - 1) / (times[-1] - times[0]) / 5
    assert rate >= 0.98, f"{rate:.3f} of the channel's rate"
    assert slack_sim.sim.rate_violations("#ap-invoices", burst=2) == []


@pytest.mark.parametrize("slack_burst", [1, 2, 3])
def test_the_drainer_keeps_to_whatever_burst_slack_allows(store, slack_sim_factory, slack_burst):
    # Slack publishes no burst size. A drainer configured for no more than Slack's burst
    # delivers everything once; with a strict Slack (burst 1) it keeps to the rate itself.
    slack_sim = slack_sim_factory(time_scale=10, channel_burst=slack_burst)
    seed(store, 24, channels=["#ap-invoices", "#purchasing"])
    report = drainer(store, slack_sim, digest_threshold=1000, channel_burst=min(slack_burst, 2)).drain()
    assert report.messages == 24
    assert_exactly_once(store, slack_sim)
    assert report.rate_limited <= 2, f"{report.rate_limited} x 429 in 24 posts"
