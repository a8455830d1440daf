"""Ops alerts: one per failure streak — but only an alert that reached the ops channel counts."""

from __future__ import annotations

from erp_slack.alerts import alert_open, clear_alert, raise_alert
from erp_slack.slack.gateway import SlackGateway


def _gateway(slack_sim) -> SlackGateway:
    return SlackGateway(slack_sim.token, base_url=slack_sim.url, timeout=5)


def test_an_alert_that_failed_to_post_is_raised_again_on_the_next_failure(store, slack_sim_factory):
    slack_sim = slack_sim_factory(rate_limits=False)
    gw = _gateway(slack_sim)
    slack_sim.sim.inject("chat.postMessage", "internal_error", status=500, times=1)
    assert raise_alert(store, gw, "#finance-alerts", source="gp", company="TWO", problem="GP down",
                       advice="start it") is False
    assert not alert_open(store, "gp", "TWO")
    assert [r["kind"] for r in store.audit_rows() if r["kind"].startswith("alert")] == ["alert_failed"]
    assert raise_alert(store, gw, "#finance-alerts", source="gp", company="TWO", problem="GP still down",
                       advice="start it") is True
    assert len(slack_sim.sim.posted("#finance-alerts")) == 1
    # The streak is open now: the next failure says nothing more.
    assert raise_alert(store, gw, "#finance-alerts", source="gp", company="TWO", problem="again", advice="x") is False
    assert len(slack_sim.sim.posted("#finance-alerts")) == 1


def test_a_recovery_notice_that_failed_to_post_is_sent_by_the_next_good_run(store, slack_sim_factory):
    slack_sim = slack_sim_factory(rate_limits=False)
    gw = _gateway(slack_sim)
    raise_alert(store, gw, "#finance-alerts", source="gp", company="TWO", problem="GP down", advice="start it")
    slack_sim.sim.inject("chat.postMessage", "internal_error", status=500, times=1)
    assert clear_alert(store, gw, "#finance-alerts", source="gp", company="TWO") is False
    assert alert_open(store, "gp", "TWO")
    assert clear_alert(store, gw, "#finance-alerts", source="gp", company="TWO") is True
    assert not alert_open(store, "gp", "TWO")
    assert ["working again" in str(m) for m in slack_sim.sim.posted("#finance-alerts")] == [False, True]


# --- what a live run watches beside its own success ---------------------------------------------

OPS = "#finance-alerts"


class _Quiet:
    """A source with nothing new: the run only drains and checks."""

    source, company = "syspro", "EDU1"

    def pages(self, entity, **kw):
        return iter(())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _run(store, slack_sim, watch, entities=()):
    from erp_slack.cycle import SlackOut, run_cycle
    from erp_slack.slack.send import DrainSettings

    out = SlackOut(_gateway(slack_sim), DrainSettings(time_scale=slack_sim.sim.time_scale), ops_channel=OPS)
    return run_cycle(lambda audit: _Quiet(), list(entities), store, out, source="syspro", company="EDU1", watch=watch)


def _age_rows(store, **delta):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from erp_slack.schema import deliveries

    with store.engine.begin() as conn:
        conn.execute(update(deliveries).values(created_at=datetime.now(timezone.utc) - timedelta(**delta)))


def _queue(store, key):
    from erp_slack.store import NewDelivery

    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[NewDelivery(
        record_key=key, version="v1", channel="#ap-invoices", status="pending", fields={"invoice": key}, cursor="1")])


def test_records_waiting_too_long_for_slack_alert_once_and_clear_when_they_are_out(store, slack_sim_factory):
    from datetime import timedelta

    from erp_slack.cycle import Watch

    slack_sim = slack_sim_factory(rate_limits=False)
    watch = Watch(max_waiting=timedelta(minutes=30))
    _queue(store, "INV-1")
    store.claim("#ap-invoices", 1, worker="a-stuck-run")  # another run holds it, within its lease
    _age_rows(store, hours=2)
    _run(store, slack_sim, watch)
    _run(store, slack_sim, watch)  # still waiting: nothing more is said
    alerts = slack_sim.sim.posted(OPS)
    assert len(alerts) == 1 and "1 record(s) have not reached Slack" in str(alerts[0])
    assert alert_open(store, "syspro", "EDU1", "waiting") and not alert_open(store, "syspro", "EDU1")

    store.release([d["id"] for d in store.deliveries()], worker="a-stuck-run", error="gave up", retry_at=None)
    _run(store, slack_sim, watch)  # delivers it, then says so
    assert store.counts() == {"sent": 1}
    assert "back to normal" in str(slack_sim.sim.posted(OPS)[-1]) and not alert_open(store, "syspro", "EDU1", "waiting")


def test_an_entity_quiet_for_longer_than_usual_is_reported_and_its_return_said(store, slack_sim_factory):
    from datetime import timedelta

    from erp_slack.cycle import Watch
    from erp_slack.sources.syspro.entities import ENTITIES_ENET

    slack_sim = slack_sim_factory(rate_limits=False)
    watch = Watch(silence_after={"ap_invoice": timedelta(days=1), "purchase_order": timedelta(days=1)})
    _run(store, slack_sim, watch, ENTITIES_ENET)
    assert slack_sim.sim.posted(OPS) == []  # no invoice ever seen: there is no normal to miss

    _queue(store, "INV-1")
    _run(store, slack_sim, watch, ENTITIES_ENET)
    _age_rows(store, days=3)  # and nothing since
    _run(store, slack_sim, watch, ENTITIES_ENET)
    (alert,) = slack_sim.sim.posted(OPS)
    assert "No new or changed supplier invoice for 3 days" in str(alert)
    assert alert_open(store, "syspro", "EDU1", "ap_invoice")

    _queue(store, "INV-2")
    _run(store, slack_sim, watch, ENTITIES_ENET)
    assert "changes are coming in again" in str(slack_sim.sim.posted(OPS)[-1])
    assert not alert_open(store, "syspro", "EDU1", "ap_invoice")


def test_the_first_run_after_a_gap_longer_than_late_after_says_runs_are_back_once(store, slack_sim_factory):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from erp_slack.cycle import Watch
    from erp_slack.schema import audit_events
    from erp_slack.sources.syspro.entities import ENTITIES_ENET

    slack_sim = slack_sim_factory(rate_limits=False)
    watch = Watch(late_after=timedelta(minutes=15))
    _run(store, slack_sim, watch, ENTITIES_ENET[:1])  # the very first run: no gap to speak of
    _run(store, slack_sim, watch, ENTITIES_ENET[:1])  # a minute later, as scheduled
    assert slack_sim.sim.posted(OPS) == []
    with store.engine.begin() as conn:  # then the worker was down for two hours
        conn.execute(update(audit_events).values(at=datetime.now(timezone.utc) - timedelta(hours=2)))
    _run(store, slack_sim, watch, ENTITIES_ENET[:1])
    _run(store, slack_sim, watch, ENTITIES_ENET[:1])
    (back,) = slack_sim.sim.posted(OPS)
    assert "runs are completing again" in str(back) and "2 h ago (more than 15 min)" in str(back)
    assert [a["entity"] for a in store.audit_rows("alert_cleared")] == ["runs"]
    # A backfill or a dry run is no sign of the schedule: it says nothing either way.
    with store.engine.begin() as conn:
        conn.execute(update(audit_events).values(at=datetime.now(timezone.utc) - timedelta(hours=2)))
    from erp_slack.cycle import SlackOut, run_cycle
    from erp_slack.slack.send import DrainSettings

    out = SlackOut(_gateway(slack_sim), DrainSettings(time_scale=slack_sim.sim.time_scale), ops_channel=OPS)
    run_cycle(lambda audit: _Quiet(), list(ENTITIES_ENET[:1]), store, out, source="syspro", company="EDU1",
              watch=watch, dry_run=True)
    assert len(slack_sim.sim.posted(OPS)) == 1


def _two_runs_after_a_gap(store, slack_sim_factory, late_after, hold_for: float = 0.0):
    """A first run, then a gap of two hours, then two runs let out at once that take the source
    lock in turn (the first keeping it ``hold_for`` seconds after its work); returns the ops
    messages saying runs are back."""
    import threading
    import time
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from erp_slack.cycle import SlackOut, Watch, run_cycle
    from erp_slack.schema import audit_events
    from erp_slack.slack.send import DrainSettings
    from erp_slack.sources.syspro.entities import ENTITIES_ENET

    slack_sim = slack_sim_factory(rate_limits=False)
    watch = Watch(late_after=late_after)
    _run(store, slack_sim, watch, ENTITIES_ENET[:1])
    with store.engine.begin() as conn:
        conn.execute(update(audit_events).values(at=datetime.now(timezone.utc) - timedelta(hours=2)))
    both_started, source_lock = threading.Barrier(2), threading.Lock()

    class SourceLock:
        def __enter__(self):
            both_started.wait(10)  # both runs are under way before either holds the source
            source_lock.acquire()

        def __exit__(self, *exc):
            time.sleep(hold_for)
            source_lock.release()

    def one_run():
        out = SlackOut(_gateway(slack_sim), DrainSettings(time_scale=slack_sim.sim.time_scale), ops_channel=OPS)
        run_cycle(lambda audit: _Quiet(), list(ENTITIES_ENET[:1]), store, out, source="syspro", company="EDU1",
                  watch=watch, lock=SourceLock())

    runs = [threading.Thread(target=one_run) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(30)
    return [m for m in slack_sim.sim.posted(OPS) if "runs are completing again" in str(m)]


def test_two_runs_let_out_together_after_a_gap_say_runs_are_back_once(store, slack_sim_factory):
    """A worker back after a gap may start a late scheduled run and a manual one at once: the
    source lock serialises them, and only the first finds the gap."""
    from datetime import timedelta

    back = _two_runs_after_a_gap(store, slack_sim_factory, timedelta(minutes=15))
    assert len(back) == 1, back
    assert [a["entity"] for a in store.audit_rows("alert_cleared")] == ["runs"]


def test_a_run_that_waited_behind_another_for_the_source_does_not_say_runs_are_back_again(store, slack_sim_factory):
    # The second run waits for the source while the first works longer than late_after (its drain
    # and checks outlast it): waiting behind a run is not a gap without runs.
    from datetime import timedelta

    back = _two_runs_after_a_gap(store, slack_sim_factory, timedelta(seconds=1), hold_for=1.5)
    assert len(back) == 1, back
