"""Was a batch posted? Looking for it in the channel's history before sending it again.

A post whose outcome is unknown (a timeout, a 5xx after sending, a crash between the post and
its database write) is looked up by the batch id its metadata carries, from the batch's first
attempt on: found means sent, not found means send again, and history that cannot be read
keeps the claim until the lease, then until ``verify_for``, after which the rows fail visibly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Sequence

from erp_slack.errors import DeliveryAmbiguous, SlackRateLimited, SlackRejected, SlackUnavailable
from erp_slack.schema import DeliveryStatus
from erp_slack.slack.gateway import SlackGateway
from erp_slack.store import Delivery, Store, utcnow

__all__ = ["reconcile_stale", "first_attempt", "batch_age"]


def first_attempt(rows: Sequence[Delivery]) -> datetime | None:
    """When the batch was first sent towards Slack: no copy of it can be older."""
    times = [d.first_attempt_at or d.created_at for d in rows]
    return min(times) if times else None


def batch_age(rows: Sequence[Delivery]) -> timedelta:
    """How long the batch has been trying to reach Slack (zero before its first attempt)."""
    now = utcnow()
    return now - min((d.first_attempt_at or now) for d in rows)


def reconcile_stale(
    store: Store, gateway: SlackGateway, *, worker: str, lease: timedelta, verify_for: timedelta,
    audit: Callable[..., None],
) -> tuple[int, int]:
    """Batches left ``sending`` by a crashed or stuck drainer: posted or not? Returns the
    batches found in Slack and the records given up as unverifiable."""
    found = given_up = 0
    for batch_uid, stale in store.stale_batches(older_than=lease).items():
        claimed = first_attempt(stale)
        rows = store.take_stale(batch_uid, worker=worker, older_than=lease)
        if not rows:
            continue  # another drainer took it
        channel = rows[0].channel
        try:
            channel_id = gateway.resolve(channel)
            ts = gateway.find_batch(channel_id, batch_uid, since=claimed, thread_ts=rows[0].thread_ts)
        except SlackRejected as exc:
            # History cannot be read (a missing scope, a private channel): the post may be
            # there, so keep the claim rather than risk a second one — for a while. Past
            # `verify_for` the rows become visibly `failed`, with an alert, for a person.
            if claimed is not None and utcnow() - claimed >= verify_for:
                error = (f"unverifiable: may or may not be in {channel}; Slack refused to show its history "
                         f"({exc.code}). Give the bot the history scope (channels:history, groups:history "
                         "for private channels) and requeue, or check the channel and requeue only what is "
                         "missing (a requeue may post it twice)")
                store.finish([d.id for d in rows], worker=worker, status=DeliveryStatus.FAILED, error=error)
                given_up += len(rows)
                audit("unverifiable", channel=channel, message=error, details={"batch": batch_uid, "rows": len(rows)})
                continue
            audit("reconcile_deferred", channel=channel, message=f"cannot verify a possibly posted batch: {exc.code}",
                  details={"batch": batch_uid})
            continue
        except (SlackUnavailable, DeliveryAmbiguous, SlackRateLimited) as exc:
            audit("reconcile_deferred", channel=channel, message=str(exc))
            continue  # still claimed: a later drain tries again
        if ts is None:
            store.release([d.id for d in rows], worker=worker, error="abandoned claim; not found in Slack", retry_at=None)
        else:
            found += 1
            store.mark_sent([d.id for d in rows], worker=worker, channel_id=channel_id, ts=ts,
                            permalink=gateway.permalink(channel_id, ts), payload=None, batch_uid=batch_uid)
        audit("reconciled", channel=channel,
              message="stale claim " + ("found in Slack" if ts else "not in Slack; requeued"),
              details={"batch": batch_uid, "ts": ts, "rows": len(rows)})
    return found, given_up

