"""Generated Slack histories for living messages and archive threads (Hypothesis stateful testing).

Purchase orders move between statuses, GL entries are posted into past, closed and open months,
and Slack misbehaves the ways it may: a post or an edit stored and its answer lost, an answer
lost before anything was stored, a rate limit, a message that can no longer be edited (deleted,
past the edit window), a drainer that dies with rows claimed. After every settled drain the
channel is held against what the store says happened:

- every delivery is carried by exactly one Slack message (a post or a reply; edits carry none);
- each order's newest message shows its newest status, and every change after the first is a
  thread reply, or a new message when Slack refused the edit (audited ``living_replaced``);
- each period has one archive parent, whose count is the number of entries in its thread, marked
  closed once its period has ended.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from erp_slack.slack.archive import period_of
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.render import ARCHIVE_EVENT
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.sources import all_entities
from erp_slack.store import NewDelivery, Store
from simulators._http import serve_on_loopback
from simulators.slack import SlackSimulator
from tests._history_model import PROFILE  # noqa: F401  (loads the ci or deep Hypothesis profile)

pytestmark = pytest.mark.slow

ORDERS = ["PO1", "PO2", "PO3"]
STATUSES = ["New", "Released", "Change Order", "Received", "Closed"]
# Ended months (a late posting after the close among them) and one still open for decades.
DAYS = ["2026-10-03", "2026-10-30", "2026-11-02", "2026-11-30", "2099-01-15"]
PURCHASING, GL = "#purchasing", "#gl-postings"
FAULTS = {
    "stored, answer lost": dict(stored_then_failed=True),
    "lost before stored": dict(status=503),
    "rate limited": dict(retry_after=0.5),
}


class SlackHistory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = contextlib.ExitStack()
        self.status: dict[str, str] = {}
        self.journal = 0

    @initialize(burst=st.sampled_from([1, 2]))
    def start(self, burst: int) -> None:
        self.slack = SlackSimulator(time_scale=50.0, channels=["purchasing", "gl-postings"])
        self.url = self.stack.enter_context(serve_on_loopback(self.slack)).url + "/api/"
        folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        self.store = Store(f"sqlite:///{folder / 'audit.db'}")
        self.stack.callback(lambda: self.store.dispose())
        self.burst = burst

    def teardown(self) -> None:
        self.stack.close()

    # --- the ERP --------------------------------------------------------------------------------

    @rule(po=st.sampled_from(ORDERS), status=st.sampled_from(STATUSES))
    def order_changes(self, po: str, status: str) -> None:
        self.store.enqueue(source="gp", company="TWO", entity="purchase_order", items=[NewDelivery(
            record_key=po, version=status, channel=PURCHASING, status="pending", cursor=status,
            fields={"po": po, "supplier": "ACME", "supplier_name": "Acme Bearings", "status": status,
                    "total": "1200.00", "currency": "USD"},
            status_field="status", watch=("status",), style="living")])
        self.status[po] = status

    @rule(day=st.sampled_from(DAYS), amount=st.integers(min_value=1, max_value=9999))
    def gl_entry_posted(self, day: str, amount: int) -> None:
        self.journal += 1
        self.store.enqueue(source="gp", company="TWO", entity="gl_journal", items=[NewDelivery(
            record_key=f"{self.journal}|1", version="v1", channel=GL, status="pending", cursor=day,
            fields={"journal": self.journal, "entry": 1, "account": "000-1100-00", "amount": f"{amount}.00",
                    "currency": "USD", "posting_date": day},
            archive=period_of(day, "month", "UTC"))])

    # --- Slack and the drainer ------------------------------------------------------------------

    @rule(method=st.sampled_from(["chat.postMessage", "chat.update"]), kind=st.sampled_from(sorted(FAULTS)))
    def slack_fails_once(self, method: str, kind: str) -> None:
        self.slack.inject(method, **FAULTS[kind])

    @rule()
    def edit_refused(self) -> None:
        # The message was deleted, or is past the workspace's edit window.
        self.slack.inject("chat.update", "message_not_found")

    @rule()
    def drain(self) -> None:
        self._drainer().drain()

    @rule()
    def drainer_dies_holding_a_claim(self) -> None:
        # A batch claimed and never finished: the next drainer (lease 0) checks Slack for it.
        rows = self.store.claim(PURCHASING, 1, worker="dead") + self.store.claim(GL, 1, worker="dead")
        if rows:
            self.store.mark_attempt([d.id for d in rows], worker="dead")

    def _drainer(self) -> Drainer:
        settings = DrainSettings(time_scale=50.0, reconcile_after=0.05, lease=timedelta(0), digest_threshold=1000,
                                 channel_burst=self.burst)
        return Drainer(self.store, SlackGateway(self.slack.token, base_url=self.url, timeout=5), all_entities(),
                       settings=settings)

    # --- what must hold once everything is out ---------------------------------------------------

    @invariant()
    def settled_slack_matches_the_store(self) -> None:
        if not hasattr(self, "store"):
            return
        for _ in range(12):  # injected faults are used up along the way
            self._drainer().drain()
            if not any(self.store.counts().get(s) for s in ("pending", "sending")):
                break
        # What a fault held back (a parent refresh Slack refused) the next run brings up to date.
        self.slack.clear_faults()
        self._drainer().drain()
        counts = self.store.counts()
        assert not any(counts.get(s) for s in ("pending", "sending", "failed", "dead")), counts
        rows = {r["uid"]: r for r in self.store.deliveries()}
        posted = self.slack.posted()
        carried = Counter(u for m in posted for u in (m["metadata"].get("event_payload") or {}).get("deliveries", []))
        assert carried == Counter({uid: 1 for uid in rows}), "each delivery in exactly one message"
        self._orders(rows, posted)
        self._archive(rows, posted)

    def _orders(self, rows: dict[str, dict[str, Any]], posted: list[dict[str, Any]]) -> None:
        replaced = Counter(r["record_key"] for r in self.store.audit_rows("living_replaced"))
        for po, status in self.status.items():
            mine = [r for r in rows.values() if r["record_key"] == po]
            tops = [m for m in posted if m["channel_name"] == "purchasing" and m.get("thread_ts") in (None, m["ts"])
                    and any(rows[u]["record_key"] == po for u in m["metadata"]["event_payload"]["deliveries"])]
            # One message per order, plus one for each edit Slack refused.
            assert len(tops) == 1 + replaced[po], (po, len(tops), replaced[po])
            assert _status_of(tops[-1]["blocks"]) == status, (po, status, tops[-1]["blocks"])
            replies = [m for m in posted if m.get("thread_ts") in {t["ts"] for t in tops} and m["ts"] != m["thread_ts"]]
            assert len(replies) + replaced[po] == len(mine) - 1, (po, len(replies), replaced[po], len(mine))

    def _archive(self, rows: dict[str, dict[str, Any]], posted: list[dict[str, Any]]) -> None:
        parents = [m for m in posted if m["metadata"]["event_type"] == ARCHIVE_EVENT]
        titles = [m["blocks"][0]["text"]["text"] for m in parents]
        assert len(titles) == len(set(titles)), titles
        entries = [r for r in rows.values() if r["entity"] == "gl_journal"]
        assert len(parents) == len({r["archive"] for r in entries})
        for parent in parents:
            thread = [m for m in posted if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]]
            uids = [u for m in thread for u in m["metadata"]["event_payload"]["deliveries"]]
            text = json.dumps(parent["blocks"])
            count = re.search(r"GL journal entr(?:y|ies)\*: (\d+)", text)
            assert count and int(count.group(1)) == len(uids), (titles, len(uids), text)
            assert ("Closed" in text) == ("2099" not in parent["blocks"][0]["text"]["text"]), text
        assert all(rows[u]["archive"] for m in posted if m.get("thread_ts") in {p["ts"] for p in parents}
                   and m["ts"] != m["thread_ts"] for u in m["metadata"]["event_payload"]["deliveries"])


def _status_of(blocks: list[dict[str, Any]]) -> str:
    for block in blocks:
        for f in block.get("fields") or []:
            if f["text"].startswith("*Status*\n"):
                return f["text"].split("\n", 1)[1]
    return ""


def test_slack_histories() -> None:
    run_state_machine_as_test(lambda: SlackHistory(), settings=settings())
