"""The scheduled summaries as a flow: `erp-slack config apply` gives its deployment one schedule
per summary time, and each run posts the summaries that are due (each once per slot)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger, runtime

from blocks import AuditDatabase, SlackBot
from erp_slack.errors import DeliveryFailed
from erp_slack.slack.summary import channel_wait, post_summaries
from erp_slack.sources import all_entities


@flow(name="erp-slack-summaries", log_prints=True, timeout_seconds=900, retries=2, retry_delay_seconds=60)
def erp_summaries(slack_block: str = "slack", audit_block: str = "audit") -> list[dict[str, Any]]:
    """Post the scheduled summaries ([[slack.summaries]]) that are due and not yet posted.

    Args:
        slack_block: Name of the ERP Slack Bot block (it holds the summaries).
        audit_block: Name of the ERP Slack Audit Database block.
    """
    log = get_run_logger()
    # A worker starts scheduled runs a few seconds early (its prefetch): the 09:00 run must post
    # 09:00's summary even when it begins at 08:59:55.
    scheduled = runtime.flow_run.scheduled_start_time
    now = max(datetime.now(timezone.utc), scheduled) if scheduled else None
    bot = SlackBot.load(slack_block)
    store = AuditDatabase.load(audit_block).get_store()
    try:
        settings = bot.drain_settings()
        outcomes = post_summaries(
            store, bot.get_client(), [s.to_core() for s in bot.summaries], all_entities(),
            now=now, currency_codes=bot.currency_codes, ops_channel=bot.ops_channel,
            flow_run_id=str(runtime.flow_run.id) if runtime.flow_run.id else None,
            wait=channel_wait(store, rate_per_channel=settings.rate_per_channel * settings.time_scale,
                              burst=settings.channel_burst, pacer=bot.pacer()),
        )
    finally:
        store.dispose()
    for o in outcomes:
        log.info("%s: %s%s", o.summary, o.status, f" ({o.documents} documents)" if o.status == "posted" else "")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        # Visibly not green: Prefect retries the run, and the ops channel has been told.
        raise DeliveryFailed("summary not posted: " + "; ".join(f"{o.summary}: {o.error}" for o in failed),
                             advice="check that the channel exists and the bot may post there (channel_not_found: "
                                    "fix the summary's channel; not_in_channel: invite the bot)")
    return [{"summary": o.summary, "slot": o.slot.isoformat() if o.slot else None, "status": o.status,
             "documents": o.documents} for o in outcomes]
