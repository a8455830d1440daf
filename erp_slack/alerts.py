"""Operational alerts: one message per failure streak, and one when it recovers.

The streak lives in the audit trail (``alert_raised`` / ``alert_cleared`` rows per source and
company), so it survives restarts and is visible to anyone querying the audit table. A run's
failure is one streak; what a run notices beside it has a ``topic`` of its own (recorded in the
audit row's ``entity`` column): ``waiting`` for records Slack has not had for too long, and an
entity's name for an entity that has gone quiet, so each is raised and cleared on its own.
"""

from __future__ import annotations

from sqlalchemy import select

from erp_slack.errors import SlackError
from erp_slack.schema import audit_events
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.render import SOURCE_NAMES, render_alert
from erp_slack.store import Store

__all__ = ["raise_alert", "clear_alert", "alert_open"]


def alert_open(store: Store, source: str, company: str, topic: str | None = None) -> bool:
    """Whether the last alert of (source, company) reached the ops channel and is still open.

    Only alerts that were really posted count: one that failed to reach Slack (or had no
    channel to go to) is recorded as ``alert_failed`` and raised again on the next failure.
    """
    q = (
        select(audit_events.c.kind)
        .where(audit_events.c.kind.in_(("alert_raised", "alert_cleared")), audit_events.c.source == source,
               audit_events.c.company == company,
               audit_events.c.entity.is_(None) if topic is None else audit_events.c.entity == topic)
        .order_by(audit_events.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        return conn.execute(q).scalar() == "alert_raised"


def raise_alert(
    store: Store, gateway: SlackGateway | None, channel: str | None, *, source: str, company: str, problem: str,
    advice: str, flow_run_id: str | None = None, topic: str | None = None,
) -> bool:
    """Alert the ops channel unless this streak was already announced; True if posted."""
    if alert_open(store, source, company, topic):
        return False
    name = SOURCE_NAMES.get(source, source)
    posted = _post(gateway, channel, f"{name} ({company}) needs attention", f"{problem}\nWhat to do: {advice}", ok=False)
    # An alert nobody saw opens no streak: the next failure tries again.
    store.audit("alert_raised" if posted else "alert_failed", source=source, company=company, entity=topic,
                channel=channel, message=problem, details={"posted": posted, "advice": advice},
                flow_run_id=flow_run_id)
    return posted


def clear_alert(
    store: Store, gateway: SlackGateway | None, channel: str | None, *, source: str, company: str,
    flow_run_id: str | None = None, topic: str | None = None, news: str = "The last run completed normally.",
) -> bool:
    """Say the source recovered, if an alert is open; True if posted."""
    if not alert_open(store, source, company, topic):
        return False
    name = SOURCE_NAMES.get(source, source)
    title = f"{name} ({company}) is working again" if topic is None else f"{name} ({company}): back to normal"
    posted = _post(gateway, channel, title, news, ok=True)
    if posted:  # otherwise the streak stays open and the next good run says it again
        store.audit("alert_cleared", source=source, company=company, entity=topic, channel=channel,
                    details={"posted": posted}, flow_run_id=flow_run_id)
    return posted


def _post(gateway: SlackGateway | None, channel: str | None, title: str, body: str, *, ok: bool) -> bool:
    if gateway is None or not channel:
        return False
    try:
        gateway.post(channel, render_alert(title, body, ok=ok))
    except SlackError:
        return False  # the audit row still records the alert; Slack being down is not our failure
    return True


def runs_resumed(
    store: Store, gateway: SlackGateway | None, channel: str | None, *, source: str, company: str, gap: str,
    late_after: str, flow_run_id: str | None = None,
) -> bool:
    """Say runs complete again after a gap longer than ``late_after``. The Prefect server
    announced the gap itself (no run of ours was there to); this closes it."""
    name = SOURCE_NAMES.get(source, source)
    posted = _post(gateway, channel, f"{name} ({company}): runs are completing again",
                   f"The run before this one completed {gap} ago (more than {late_after}). This run read "
                   "everything since from where the last one stopped: nothing was missed.", ok=True)
    store.audit("alert_cleared", source=source, company=company, entity="runs", channel=channel,
                message=f"runs resumed after {gap}", details={"posted": posted}, flow_run_id=flow_run_id)
    return posted
