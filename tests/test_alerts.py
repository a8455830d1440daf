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
