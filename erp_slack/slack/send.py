"""Draining the outbox to Slack: a lane per channel, under one workspace-wide token bucket.

Each channel is a lane paced at ``rate_per_channel`` (Slack allows about one message a second per
channel); lanes run in parallel on a few threads. A lane with a deep backlog sends digests
(several records in one message) instead of queueing for minutes. What to do after each post
is the pure send policy (``policy.py``); every message carries metadata naming its batch, so
after an ambiguous failure the lane looks for it in the channel's history before posting
again (``reconcile.py``): a record reaches Slack once.
"""

from __future__ import annotations

import heapq
import itertools
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from erp_slack.errors import DeliveryAmbiguous, SlackRateLimited, SlackRejected, SlackUnavailable
from erp_slack.model import Entity
from erp_slack.schema import DeliveryStatus
from erp_slack.slack import policy as P
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.pacing import Clock, RealClock, TokenBucket
from erp_slack.slack.quiet import QuietHours, quiet_until
from erp_slack.slack.reconcile import batch_age, first_attempt, reconcile_stale
from erp_slack.slack.render import (
    DIGEST_MAX,
    Message,
    coded,
    fallback,
    render,
    render_archive,
    render_one,
    render_reply,
)
from erp_slack.store import Delivery, Store, utcnow

__all__ = ["DrainSettings", "LaneStats", "DrainReport", "Drainer"]

# What Slack answers when it will not edit a message any more (deleted, too old for the
# workspace's edit window, not ours): the change goes out as a new message instead.
_EDIT_REFUSED = {"message_not_found", "cant_update_message", "edit_window_closed", "thread_not_found"}


@dataclass(frozen=True)
class DrainSettings:
    """How the outbox is drained.

    Attributes:
        rate_per_channel: Messages per second per channel (Slack: about 1).
        workspace_per_minute: Messages per minute across all channels.
        digest_threshold: A lane with more pending records than this sends digests.
        digest_max: Records per digest message.
        max_workers: Threads posting in parallel (lanes, not records, are parallel).
        lease: A ``sending`` row older than this is presumed abandoned and is reconciled.
        time_scale: Speeds every rate and wait up; only for simulators and benchmarks.
        max_seconds: Budget for one drain; what is left stays pending for the next run.
        reconcile_after: Seconds to wait after an ambiguous failure before searching history.
        verify_for: How long a possibly posted batch whose channel history Slack refuses to
            show (a missing scope, a private channel) stays claimed before it is marked
            ``failed`` as unverifiable, visibly, instead of waiting forever.
        channel_burst: Posts a channel may take at once when a lane is behind its schedule
            (after a pause or a slow write): Slack allows short bursts but publishes no size, so
            keep it small; 1 never catches up.
        headroom: Fraction of the rates actually used, so network jitter between our clock and
            Slack's does not turn exact pacing into 429s.
        quiet: Quiet hours: a channel inside one gets only urgent records; the rest are held in
            the outbox and go out as a digest when the window ends.
        edits_per_minute: ``chat.update`` calls per minute (living messages), across channels.
        currency_codes: ERP currency id → the ISO code messages show (the outbox keeps the id).
    """

    rate_per_channel: float = 1.0
    workspace_per_minute: float = 300.0
    digest_threshold: int = 5
    digest_max: int = 20
    max_workers: int = 8
    lease: timedelta = timedelta(minutes=2)
    time_scale: float = 1.0
    max_seconds: float = 600.0
    reconcile_after: float = 2.0
    verify_for: timedelta = timedelta(minutes=30)
    channel_burst: int = 2
    headroom: float = 0.99
    quiet: tuple[QuietHours, ...] = ()
    edits_per_minute: float = 50.0
    currency_codes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.digest_max <= DIGEST_MAX:
            raise ValueError(f"digest_max must be between 1 and {DIGEST_MAX}")
        if self.rate_per_channel <= 0 or self.workspace_per_minute <= 0:
            raise ValueError("rates must be positive")
        if self.channel_burst < 1:
            raise ValueError("channel_burst must be at least 1")


@dataclass
class LaneStats:
    messages: int = 0
    records: int = 0
    rate_limited: int = 0
    reconciled: int = 0
    failed: int = 0
    dead: int = 0
    first_post: float | None = None


@dataclass
class DrainReport:
    """What one drain did, per channel and in total."""

    lanes: dict[str, LaneStats] = field(default_factory=dict)
    halted: str | None = None
    reconciled: int = 0
    unverifiable: int = 0  # records given up as "may or may not be in Slack" (now failed)

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.lanes.values())

    @property
    def records(self) -> int:
        return sum(s.records for s in self.lanes.values())

    @property
    def rate_limited(self) -> int:
        return sum(s.rate_limited for s in self.lanes.values())


@dataclass
class _Lane:
    channel: str
    channel_id: str | None = None
    held: list[Delivery] | None = None  # a claimed batch being retried (sent as the same batch)
    attempt: int = 0
    joined: bool = False
    simplified: bool = False
    split: bool = False
    reconcile: str | None = None  # why the held batch must be looked for in Slack before resending
    thread_ts: str | None = None  # the living message the held batch was last posted under
    digesting: bool = False  # the lane has sent digests in this drain
    post_at: float | None = None  # earliest start of the next post (set by a successful post)
    lead: float = 0.0  # how long the last paced step took to get ready to post (claim, render)
    stats: LaneStats = field(default_factory=LaneStats)


class Drainer:
    """Posts pending deliveries to Slack, lane by lane, until the outbox is empty or time is up."""

    def __init__(
        self,
        store: Store,
        gateway: SlackGateway,
        entities: Mapping[tuple[str, str], Entity],
        *,
        settings: DrainSettings = DrainSettings(),
        policy: P.SendPolicy = P.SendPolicy(),
        clock: Clock | None = None,
        pacer: Callable[[str], None] | None = None,
        worker: str | None = None,
        flow_run_id: str | None = None,
        rng: random.Random | None = None,
    ):
        self.store, self.gateway, self.entities = store, gateway, entities
        self.settings, self.policy = settings, policy
        self.clock = clock or RealClock()
        self.pacer = pacer  # e.g. a Prefect global concurrency limit shared by every worker
        self.worker = worker or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.flow_run_id = flow_run_id
        self.rng = rng or random.Random()
        scale = settings.time_scale
        self._interval = 1.0 / (settings.rate_per_channel * scale * settings.headroom)
        self._bucket = TokenBucket(settings.workspace_per_minute * scale * settings.headroom / 60.0, max(1.0, settings.workspace_per_minute / 60.0), self.clock)
        # chat.update has its own limit (Slack's tier 3, about 50 a minute), apart from posting.
        self._edits = TokenBucket(settings.edits_per_minute * scale * settings.headroom / 60.0, 1.0, self.clock)
        self._heap: list[tuple[float, int, _Lane]] = []
        self._names: dict[tuple[str, str], str] | None = None
        self._currencies: dict[tuple[str, str], dict[str, str]] | None = None
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._busy = 0
        self._halt: str | None = None
        self._deadline = 0.0

    # --- public ---------------------------------------------------------------------------

    def drain(self, channels: Sequence[str] | None = None) -> DrainReport:
        """Deliver what is pending (optionally only some channels); returns per-lane figures."""
        report = DrainReport()
        start = self.clock.now()
        self._deadline = start + self.settings.max_seconds
        try:
            self.gateway.auth_test()
        except (SlackRejected, SlackUnavailable, DeliveryAmbiguous, SlackRateLimited) as exc:
            self._audit("slack_auth_failed" if isinstance(exc, SlackRejected) else "slack_unavailable", message=str(exc))
            report.halted = str(exc)
            return report
        report.reconciled, report.unverifiable = reconcile_stale(
            self.store, self.gateway, worker=self.worker, lease=self.settings.lease,
            verify_for=self.settings.verify_for, audit=self._audit,
        )
        self._refresh_archives()  # parents behind their replies (a crash) or whose period has ended
        pending = self.store.pending_by_channel()
        lanes = [_Lane(ch) for ch in sorted(pending) if channels is None or ch in channels]
        report.lanes = {lane.channel: lane.stats for lane in lanes}
        for lane in lanes:
            self._push(lane, start)
        threads = [
            threading.Thread(target=self._work, name=f"slack-lane-{i}", daemon=True)
            for i in range(max(1, min(self.settings.max_workers, len(lanes))))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report.halted = self._halt
        return report

    # --- scheduling -----------------------------------------------------------------------

    def _push(self, lane: _Lane, ready_at: float) -> None:
        with self._cv:
            heapq.heappush(self._heap, (ready_at, next(self._seq), lane))
            self._cv.notify()

    def _next(self) -> tuple[_Lane, float] | None:
        with self._cv:
            while not self._heap:
                if self._busy == 0 or self._halt:
                    self._cv.notify_all()
                    return None
                self._cv.wait()
            if self._halt:
                self._heap.clear()
                self._cv.notify_all()
                return None
            ready_at, _, lane = heapq.heappop(self._heap)
            self._busy += 1
            return lane, ready_at

    def _done(self, lane: _Lane, ready_at: float | None) -> None:
        with self._cv:
            self._busy -= 1
            if ready_at is not None and not self._halt:
                heapq.heappush(self._heap, (ready_at, next(self._seq), lane))
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            nxt = self._next()
            if nxt is None:
                return
            lane, ready_at = nxt
            again: float | None = None
            try:
                self.clock.sleep(ready_at - self.clock.now())
                if self.clock.now() > self._deadline:
                    self._give_back(lane, "drain time budget used up")
                else:
                    again = self._step(lane)
            except Exception as exc:  # unexpected: stop this lane and tell the operator
                # The held rows stay claimed ("sending"): the failure may have come after Slack
                # stored the post (say, recording its ts failed), so only reconciliation after
                # the lease may decide whether to send them again.
                lane.held = None
                self._audit("drain_error", channel=lane.channel, message=f"{type(exc).__name__}: {exc}")
            finally:
                self._done(lane, again)

    def _give_back(self, lane: _Lane, why: str) -> None:
        """Hand the held batch back when the drain's time is up."""
        if not lane.held:
            return
        if lane.reconcile is not None:
            # It may be in Slack already: keep the claim; after the lease a drain looks first.
            self._audit("reconcile_deferred", channel=lane.channel, message=f"{lane.reconcile}; {why}")
        else:
            self.store.release([d.id for d in lane.held], worker=self.worker, error=why, retry_at=None)
            self._audit("delivery_deferred", channel=lane.channel, message=why, details={"rows": len(lane.held)})
        lane.held = None

    # --- one lane step --------------------------------------------------------------------

    def _step(self, lane: _Lane) -> float | None:
        """Post one message for ``lane``; return when the lane may post again, or None if done."""
        entered = self.clock.now()
        post_at, lane.post_at = lane.post_at, None
        if lane.channel_id is None:
            try:
                lane.channel_id = self.gateway.resolve(lane.channel)
            except SlackRejected as exc:
                rows = self.store.claim(lane.channel, 10_000, worker=self.worker)
                return self._apply(lane, rows, P.Fail(exc.code))
        if self.pacer is not None:
            # Before claiming: if the shared limit cannot be had, nothing is left claimed.
            self.pacer(lane.channel)
        if lane.held is None:
            self._hold_if_quiet(lane.channel)
            backlog = self.store.pending_count(lane.channel)
            # A lane that went to digests stays with them for its tail: five single messages
            # after a digest would take five more seconds than one short digest. What quiet hours
            # held goes out together too, once the window is over.
            deep = (backlog > self.settings.digest_threshold or (lane.digesting and backlog > 1)
                    or self.store.held(lane.channel, ready=True) > 1)
            size = self.settings.digest_max if deep and not lane.split else 1
            lane.digesting = lane.digesting or size > 1
            lane.held = self.store.claim(lane.channel, size, worker=self.worker) or None
            lane.attempt, lane.simplified = 0, False
            if lane.held is None:
                return None
            lane.held = self._one_thread(lane.held)
        rows = lane.held
        batch_uid = rows[0].batch_uid or uuid.uuid4().hex
        if lane.reconcile is not None:
            why, lane.reconcile = lane.reconcile, None
            age = batch_age(rows)
            return self._reconcile_lane(lane, rows, batch_uid, why, self.clock.now(), age)
        try:
            message, thread_ts = self._compose(lane, rows, batch_uid)
        except (SlackRateLimited, SlackUnavailable, DeliveryAmbiguous, SlackRejected) as exc:
            # The living message's edit failed. Nothing was posted, and an edit repeated shows the
            # same message, so even an ambiguous failure is simply tried again.
            lane.attempt += 1
            if isinstance(exc, DeliveryAmbiguous):
                exc = SlackUnavailable(exc.reason, method="chat.update")
            return self._refused(lane, rows, exc, self.clock.now(), batch_age(rows))
        if post_at is not None:
            # After a post the lane is woken ``lead`` early, so the claim and render above
            # happen inside the interval instead of lengthening it.
            lane.lead = min(self.clock.now() - entered, self._interval / 4)
        self._bucket.take()
        if not self.store.mark_attempt([d.id for d in rows], worker=self.worker, thread_ts=thread_ts):
            # Our claim lapsed (a long wait) and another drainer took the batch over: theirs now.
            self._audit("claim_lost", channel=lane.channel, details={"batch": batch_uid})
            lane.held, lane.post_at = None, post_at  # the channel's pacing still holds
            return self.clock.now()
        lane.attempt += 1
        lane.thread_ts = thread_ts
        # The channel's slot comes from the store, shared by every drainer on this database, and
        # is taken after the attempt is recorded, just before the request goes out: the next slot
        # is the last one plus the interval, so neither a slow write nor a second drainer
        # (another source's run, a backfill) changes the channel's pace.
        slot = self._wait_for_slot(lane.channel)
        started = self.clock.now()
        age = batch_age(rows)
        try:
            try:
                posted = self.gateway.post(lane.channel_id, message, thread_ts=thread_ts,
                                           broadcast=rows[0].archive is not None and rows[0].broadcast)
            finally:
                if self.settings.channel_burst == 1:
                    # No burst to absorb a post that went late or travelled slowly: the next one
                    # waits a whole interval after this one's answer, so Slack never sees two
                    # closer than the interval.
                    self.store.push_slot(lane.channel, time.time() + self._interval)
        except (SlackRateLimited, SlackUnavailable, DeliveryAmbiguous, SlackRejected) as exc:
            return self._refused(lane, rows, exc, started, age)
        self._sent(lane, rows, posted.channel_id, posted.ts, message, batch_uid)
        if rows[0].archive is not None:
            self._refresh_archives(rows[0])
        # The lane's next post is due one interval after its slot, not after this post ended.
        lane.post_at = slot + self._interval
        return lane.post_at - lane.lead

    def _wait_for_slot(self, channel: str) -> float:
        """Reserve the channel's next slot in the store (shared by every drainer on this
        database) and wait for it; returns the slot on this drainer's clock."""
        wall = time.time()
        slot = self.clock.now() + self.store.reserve_slot(
            channel, self._interval, now=wall, burst=self.settings.channel_burst) - wall
        self.clock.sleep(slot - self.clock.now())
        return slot

    def _refused(self, lane: _Lane, rows: Sequence[Delivery], exc: Exception, started: float, age: timedelta) -> float | None:
        """What the send policy says to do after Slack did not take a call."""
        if isinstance(exc, SlackRateLimited):
            lane.stats.rate_limited += 1
            self._audit("rate_limited", channel=lane.channel, message=str(exc), details={"retry_after": exc.retry_after})
            decision = self.policy.decide(P.Outcome.RATE_LIMITED, attempt=lane.attempt, age=age, retry_after=exc.retry_after)
        elif isinstance(exc, SlackUnavailable):
            decision = self.policy.decide(P.Outcome.NOT_SENT, attempt=lane.attempt, age=age, code=exc.reason, rand=self.rng.random())
        elif isinstance(exc, DeliveryAmbiguous):
            decision = self.policy.decide(P.Outcome.MAYBE_SENT, attempt=lane.attempt, age=age, code=exc.reason)
        else:
            assert isinstance(exc, SlackRejected)
            decision = self.policy.decide(
                P.classify_code(exc.code), attempt=lane.attempt, age=age, code=exc.code, batch_size=len(rows),
                simplified=lane.simplified, joined=lane.joined,
            )
        return self._apply(lane, rows, decision, started)

    def _compose(self, lane: _Lane, rows: Sequence[Delivery], batch_uid: str) -> tuple[Message, str | None]:
        """The message to post for a batch, and the thread to post it in (None: the channel).

        A later change of a document that has a living message in this channel edits that
        message (``living``) and is posted as a thread reply saying what changed; when Slack
        will no longer edit the message, it is posted as a new message that links the old one
        and becomes the document's living message.
        """
        rows = [self._coded(d) for d in rows]
        if rows[0].archive is not None:
            parent = self._archive_parent(lane, rows[0])
            if parent is not None:
                return self._render(rows, batch_uid, simplified=lane.simplified), parent
        threads: dict[str, str] = {}
        if len(rows) > 1:
            for d in rows:
                live = self.store.living(d) if d.style != "new-message" else None
                link = live and self.gateway.permalink(live.channel_id, live.ts)
                if link:
                    threads[d.uid] = link  # the digest line says where the document's thread is
            return self._render(rows, batch_uid, simplified=lane.simplified, threads=threads), None
        d = rows[0]
        live = self.store.living(d) if d.style != "new-message" else None
        if live is None:
            return self._render(rows, batch_uid, simplified=lane.simplified), None
        entity = self.entities.get((d.source, d.entity))
        if d.style == "living" and d.id > live.delivery_id:
            edit = render_one(d, entity, batch_uid=batch_uid, names=self._company_names(), living=True)
            self._edits.take()
            try:
                self.gateway.update(live.channel_id, live.ts, fallback(edit) if lane.simplified else edit)
            except SlackRejected as exc:
                if exc.code not in _EDIT_REFUSED:
                    raise
                earlier = self.gateway.permalink(live.channel_id, live.ts)
                self._audit("living_replaced", channel=lane.channel, delivery_id=d.id, source=d.source,
                            company=d.company, entity=d.entity, record_key=d.record_key,
                            message=f"Slack would not edit the document's message ({exc.code}); posted a new one",
                            details={"ts": live.ts})
                return self._render(rows, batch_uid, simplified=lane.simplified, earlier=earlier), None
            self.store.living_edited(d)
        reply = render_reply(d, entity, batch_uid=batch_uid)
        return (fallback(reply) if lane.simplified else reply), live.ts

    # --- archive threads ----------------------------------------------------------------------

    def _one_thread(self, rows: list[Delivery]) -> list[Delivery]:
        """A batch goes to one place: one period's archive thread, or the channel. Rows of
        another thread (or none) go back to the lane for the next batch."""
        head = rows[0]
        if len(rows) == 1 or not any(d.archive for d in rows):
            return rows
        if head.archive is None:
            keep = [d for d in rows if d.archive is None]
        else:
            keep = [d for d in rows if (d.archive, d.source, d.company) == (head.archive, head.source, head.company)]
        kept = {d.id for d in keep}
        self.store.release([d.id for d in rows if d.id not in kept], worker=self.worker, error=None, retry_at=None)
        return keep

    def _archive_parent(self, lane: _Lane, d: Delivery) -> str | None:
        """The ``ts`` of ``d``'s period thread, posting its parent first if it has none. A parent
        whose post was attempted and not recorded is looked for in the channel before posting."""
        thread = self.store.archive_thread(d)
        if thread is None:
            return None  # a row revived by a backfill before its thread existed: posted in the channel
        if thread.ts is not None:
            return thread.ts
        channel_id = lane.channel_id or lane.channel
        if thread.attempted_at is not None:
            ts = self.gateway.find_batch(channel_id, thread.uid, since=thread.attempted_at)
            if ts is not None:
                self.store.archive_posted(thread, channel_id, ts)
                self._audit("reconciled", channel=lane.channel, message="archive parent found in channel history",
                            details={"period": thread.period, "ts": ts})
                return ts
        self.store.archive_attempt(thread)
        message = render_archive(source=thread.source, company=thread.company, label=thread.label, uid=thread.uid,
                                 replies=[], entities=self.entities, closed=False, names=self._company_names())
        self._bucket.take()
        self._wait_for_slot(lane.channel)
        posted = self.gateway.post(channel_id, message)
        self.store.archive_posted(thread, posted.channel_id, posted.ts)
        self._audit("archive_opened", channel=lane.channel, source=thread.source, company=thread.company,
                    message=f"{thread.label}: archive thread opened", details={"period": thread.period, "ts": posted.ts})
        return posted.ts

    def _refresh_archives(self, only: Delivery | None = None) -> None:
        """Bring period parents up to date with their replies, and mark ended periods closed. A
        failure is audited and left for the next drain: the parent is behind, nothing is lost."""
        now = utcnow()
        for t in self.store.archive_due(now):
            if only is not None and (t.channel, t.source, t.company, t.period) != (
                    only.channel, only.source, only.company, only.archive):
                continue
            closed = t.ends_at <= now
            replies = [self._coded(d) for d in self.store.archive_replies(t)]
            message = render_archive(source=t.source, company=t.company, label=t.label, uid=t.uid, replies=replies,
                                     entities=self.entities, closed=closed, names=self._company_names())
            try:
                self._edits.take()
                self.gateway.update(t.channel_id or t.channel, t.ts or "", message)
            except (SlackRejected, SlackUnavailable, DeliveryAmbiguous, SlackRateLimited) as exc:
                self._audit("archive_refresh_failed", channel=t.channel, message=str(exc),
                            details={"period": t.period})
                continue
            self.store.archive_shown(t, t.version, closed)

    def _coded(self, d: Delivery) -> Delivery:
        if self._currencies is None:  # read once per drain, like the company names
            self._currencies = self.store.currency_codes()
        codes = {**self._currencies.get((d.source, d.company), {}), **self.settings.currency_codes}
        return coded(d, self.entities.get((d.source, d.entity)), codes)

    def _hold_if_quiet(self, channel: str) -> None:
        if not self.settings.quiet:
            return
        until = quiet_until(self.settings.quiet, channel, datetime.now(timezone.utc))
        if until is not None:
            held = self.store.hold(channel, until)
            if held:
                self._audit("held", channel=channel, message=f"quiet hours until {until.isoformat(timespec='minutes')}",
                            details={"rows": held, "until": until.isoformat()})

    def _company_names(self) -> Mapping[tuple[str, str], str]:
        if self._names is None:  # read once per drain: the runs of each company keep it
            self._names = self.store.company_names()
        return self._names

    def _render(self, rows: Sequence[Delivery], batch_uid: str, *, simplified: bool,
                threads: Mapping[str, str] | None = None, earlier: str | None = None) -> Message:
        message = render(rows, self.entities, batch_uid=batch_uid, names=self._company_names(),
                         threads=threads or {}, earlier=earlier)
        # Slack refused the blocks: fall back to plain escaped text (still carrying the metadata).
        return fallback(message) if simplified else message

    def _sent(self, lane: _Lane, rows: Sequence[Delivery], channel_id: str, ts: str, message: Message | None, batch_uid: str) -> None:
        payload = None if message is None else {"text": message.text, "blocks": message.blocks}
        self.store.mark_sent(
            [d.id for d in rows], worker=self.worker, channel_id=channel_id, ts=ts, permalink=self.gateway.permalink(channel_id, ts),
            payload=payload, batch_uid=batch_uid,
        )
        now = self.clock.now()
        lane.stats.messages += 1
        lane.stats.records += len(rows)
        lane.stats.first_post = lane.stats.first_post if lane.stats.first_post is not None else now
        lane.held = None

    def _apply(self, lane: _Lane, rows: Sequence[Delivery], decision: P.Decision, started: float | None = None) -> float | None:
        ids = [d.id for d in rows]
        now = self.clock.now()
        scale = self.settings.time_scale
        if isinstance(decision, P.RetryIn):
            # A wait longer than the lease lets another drainer take the batch over; the
            # ownership check before the next post (still_mine) then stops us posting it too.
            self.store.renew(ids, worker=self.worker)
            return now + decision.seconds / scale
        if isinstance(decision, P.Join):
            lane.joined = True
            try:
                self.gateway.join(lane.channel_id or lane.channel)
            except SlackRejected as exc:
                return self._apply(lane, rows, P.Fail(f"not_in_channel; join failed: {exc.code}"))
            self._audit("channel_joined", channel=lane.channel)
            return now
        if isinstance(decision, P.Split):
            # Send the batch's records one by one so only the offending one is dead-lettered.
            self.store.release(ids, worker=self.worker, error=decision.reason, retry_at=None)
            lane.held, lane.split = None, True
            return now
        if isinstance(decision, P.Reconcile):
            # Give Slack a moment to finish storing a message whose reply we lost, then look.
            lane.reconcile = decision.reason
            self.store.renew(ids, worker=self.worker)
            return now + self.settings.reconcile_after / scale
        if isinstance(decision, P.Simplify):
            lane.simplified = True
            return now
        if isinstance(decision, P.Defer):
            retry_at = utcnow() + timedelta(seconds=decision.seconds)
            self.store.release(ids, worker=self.worker, error=decision.reason, retry_at=retry_at)
            # The pause is the channel's, not only this batch's (a long Retry-After, a quota).
            self.store.defer_channel(lane.channel, until=retry_at)
            self._audit("delivery_deferred", channel=lane.channel, message=decision.reason, details={"rows": len(ids)})
            lane.held = None
            return None
        if isinstance(decision, P.Halt):
            self.store.release(ids, worker=self.worker, error=decision.reason, retry_at=None)
            lane.held = None
            with self._cv:
                self._halt = decision.reason
            self._audit("slack_auth_failed", channel=lane.channel, message=f"Slack refused the token: {decision.reason}")
            return None
        status = DeliveryStatus.FAILED if isinstance(decision, P.Fail) else DeliveryStatus.DEAD
        rows = list(rows)
        self.store.finish([d.id for d in rows], worker=self.worker, status=status, error=decision.reason)
        if status == DeliveryStatus.FAILED:
            # A broken destination takes the whole lane down: the rest would fail the same way.
            rows += self.store.fail_channel(lane.channel, error=decision.reason)
        setattr(lane.stats, status, getattr(lane.stats, status) + len(rows))
        kind = "dead_letter" if status == DeliveryStatus.DEAD else "delivery_failed"
        self.store.audit_many([
            dict(kind=kind, channel=lane.channel, delivery_id=d.id, source=d.source, company=d.company,
                 entity=d.entity, record_key=d.record_key, message=decision.reason)
            for d in rows
        ], flow_run_id=self.flow_run_id)
        lane.held = None
        return None if status == DeliveryStatus.FAILED else (started or now) + self._interval

    # --- reconciliation -------------------------------------------------------------------

    def _reconcile_lane(self, lane: _Lane, rows: Sequence[Delivery], batch_uid: str, why: str, started: float, age: timedelta) -> float | None:
        """After an ambiguous post: was it stored? If so record it; if not, retry the same batch."""
        try:
            since = first_attempt(rows)
            ts = self.gateway.find_batch(lane.channel_id or lane.channel, batch_uid, since=since,
                                         thread_ts=lane.thread_ts)
        except (SlackRejected, SlackUnavailable, DeliveryAmbiguous, SlackRateLimited) as exc:
            # Cannot tell: keep the batch claimed; the lease makes a later drain reconcile it.
            self._audit("reconcile_deferred", channel=lane.channel, message=f"{why}; history unavailable: {exc}")
            lane.held = None
            return None
        if ts is not None:
            lane.stats.reconciled += 1
            self._audit("reconciled", channel=lane.channel, message=f"{why}: found in channel history",
                        details={"batch": batch_uid, "ts": ts, "rows": len(rows)})
            self._sent(lane, rows, lane.channel_id or lane.channel, ts, None, batch_uid)
            return started + self._interval
        decision = self.policy.decide(P.Outcome.NOT_SENT, attempt=lane.attempt, age=age, code=why, rand=self.rng.random())
        return self._apply(lane, rows, decision, started)

    def _audit(self, kind: str, **kw: Any) -> None:
        self.store.audit(kind, flow_run_id=self.flow_run_id, **kw)
