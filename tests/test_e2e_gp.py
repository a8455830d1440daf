"""Dynamics GP end to end: simulator → GpClient → pipeline → SQL outbox → drainer → Slack simulator.

Everything here is real: HTTP on loopback with the real NTLM handshake (pyspnego as acceptor,
requests-ntlm as initiator), TLS with a trustme CA, SQLite or PostgreSQL through the ``store``
fixture, and slack_sdk talking to the Slack simulator. No Prefect: ``_gp_cycle`` does what
``flows/pipeline.run_source`` does around the core (audit hook into the store, alert on a failed
poll, clear the alert after a good one), so these tests complement the flow test in
``tests/test_flows.py`` instead of repeating it.

What is proven (the "Must show" of the GP issue):

* the NTLM challenge really happens, a wrong password is a final 401 that skips the cycle, is
  audited, moves nothing and alerts ops once; the fixed password catches up with nothing lost;
* new invoices, PO status changes, GL postings and voids, receipts and vendor changes reach the
  channel ``DEFAULT_ROUTES`` names, each exactly once, and a quiet run posts nothing;
* unposted drafts only with ``include_unposted=True``;
* every envelope, list shape and paging style delivers the same set;
* TLS works with the simulator's CA and an unknown certificate is refused, naming the setting;
* a 503 or dropped connection mid-read gives up after bounded retries and loses nothing.

"Exactly once" is checked on Slack's side: every delivery row's ``uid`` must appear exactly once
in the ``metadata.event_payload.deliveries`` of the messages the simulator stored, in the
channel the row was routed to.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest
import trustme

from erp_slack.cycle import make_audit_hook
from erp_slack.errors import SourceAuthFailed, SourceUnavailable
from erp_slack.model import normalise
from erp_slack.sources.gp.entities import ENTITIES
from erp_slack.sources.http import RetryPolicy
from erp_slack.store import Store
from tests._cycle import Cycle, run_cycle

OPS = "#finance-alerts"
NEW_PASSWORD = "Rotated-2024!"

# The simulator's clock is pinned a little after the seed data (March 2024), so every stamp,
# voucher, journal year and receipt date below is known in advance. Stamps still increase:
# the simulator adds a millisecond per change when the clock stands still (DEX_ROW_TS).
_NOW = datetime(2024, 4, 2, 9, 0, tzinfo=timezone.utc)


def _clock() -> datetime:
    return _NOW


# What the Fabrikam seed delivers on a first run, as (entity, record key, event, channel).
# Left out on purpose: the unposted invoice 655 (work), the payment 602 (not an invoice) and
# the unposted GL entry 3418 (work, announced only with include_unposted).
SEEDED = [
    ("payables_invoice", "Invoice|00000000000000598", "created", "#ap-invoices"),
    ("payables_invoice", "Invoice|00000000000000641", "created", "#ap-invoices"),
    ("payables_invoice", "Invoice|00000000000000644", "created", "#ap-invoices"),
    ("payables_invoice", "Invoice|00000000000000650", "created", "#ap-invoices"),
    ("purchase_order", "PO2088", "created", "#purchasing"),
    ("purchase_order", "PO2107", "created", "#purchasing"),
    ("purchase_order", "PO2109", "created", "#purchasing"),
    ("goods_receipt", "RCT1102|16384", "created", "#warehouse"),
    ("goods_receipt", "RCT1102|32768", "created", "#warehouse"),
    ("goods_receipt", "RCT1187|16384", "created", "#warehouse"),
    ("gl_journal", "2911|2023|16384", "created", "#gl-postings"),
    ("gl_journal", "2911|2023|32768", "created", "#gl-postings"),
    ("gl_journal", "3390|2024|16384", "created", "#gl-postings"),
    ("gl_journal", "3390|2024|32768", "created", "#gl-postings"),
    ("gl_journal", "3390|2024|49152", "created", "#gl-postings"),
    *[("vendor", v, "created", "#ap-invoices") for v in (
        "ACETRAVE0001", "ADVANCED0001", "ASSOCIAT0001", "CENTRALC0001", "NORDICSU0001", "OLDPRINT0001",
        "SMITHSON0001",
    )],
]


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def slack(slack_sim_factory):
    # Pacing is not the subject here: no 429s, and the drainer's pacing runs 1000 times faster.
    return slack_sim_factory(rate_limits=False, time_scale=1000.0)


@pytest.fixture(params=["sba", "webservices"])
def gp(gp_sim_factory, request):
    """The simulator, read over either transport: what reaches Slack must not depend on it."""
    return gp_sim_factory(clock=_clock, transport=request.param)


@pytest.fixture
def gp_rest(gp_sim_factory):
    return gp_sim_factory(clock=_clock)


def _gp_cycle(gp, store: Store, slack, *, client: Any = None, **client_kw: Any) -> Cycle:
    """One run as the flow does it (the core cycle, minus Prefect): the client's audit hook
    writes to the store, a failure raises the ops alert after delivering what is queued, a good
    run clears an open alert."""
    if client is None:
        client = gp.client(audit=make_audit_hook(store, source="gp", company=gp.company), **client_kw)
    return run_cycle(client, ENTITIES, store, slack, ops_channel=OPS)


def _rows(store: Store, after_id: int = 0) -> list[tuple[str, str, str, str]]:
    """(entity, record key, event, channel) of the delivery rows after ``after_id``, sorted."""
    return sorted(
        (r["entity"], r["record_key"], r["event"], r["channel"]) for r in store.deliveries() if r["id"] > after_id
    )


def _last_id(store: Store) -> int:
    rows = store.deliveries()
    return rows[-1]["id"] if rows else 0


def _watermarks(store: Store, company: str) -> dict[str, Any]:
    return {e.name: store.watermark("gp", company, e.name) for e in ENTITIES}


def _erp_posts(slack) -> list[dict[str, Any]]:
    """Messages the drainer posted (alerts in the ops channel are counted apart)."""
    return [m for m in slack.sim.posted() if m["channel_name"] != OPS.lstrip("#")]


def _assert_each_row_posted_once(store: Store, slack) -> None:
    """Every delivery row is sent, and its uid is in exactly one Slack message, in its channel."""
    rows = store.deliveries()
    assert rows, "nothing was enqueued"
    assert Counter(r["status"] for r in rows) == {"sent": len(rows)}
    where: dict[str, list[str]] = {}
    for m in _erp_posts(slack):
        for uid in ((m["metadata"] or {}).get("event_payload") or {}).get("deliveries", []):
            where.setdefault(uid, []).append("#" + m["channel_name"])
    assert {uid: chans for uid, chans in where.items() if len(chans) != 1} == {}, "posted more than once"
    assert {r["uid"]: [r["channel"]] for r in rows} == where


def _message_with(slack, uid: str) -> dict[str, Any]:
    found = [m for m in _erp_posts(slack) if uid in m["metadata"]["event_payload"]["deliveries"]]
    assert len(found) == 1
    return found[0]


def _post_changes(sim) -> list[tuple[str, str, str, str]]:
    """Post a batch (a small and a large invoice), move two POs, receive one, post and void GL
    entries and change vendors; returns the delivery rows this must produce."""
    sim.add_invoice("ADVANCED0001", "E2E-SMALL", "1250.00", batch="AP-E2E")  # voucher 700
    sim.add_invoice("SMITHSON0001", "E2E-LARGE", "75000.00", batch="AP-E2E")  # voucher 701
    sim.post_batch("AP-E2E")
    sim.set_po_status("PO2109", "Released")
    sim.receive_po("PO2107")  # RCT1188, and PO2107 becomes Received
    sim.post_gl_entry([("000-6170-00", "250.00", 0), ("000-2100-00", 0, "250.00")], reference="E2E accrual")  # 3419
    sim.void_gl_entry(3390)  # reversing entry 3420; 3390's lines become Voided
    sim.add_vendor("E2EVENDR0001", "E2E Components & Co")
    sim.update_vendor("CENTRALC0001", on_hold=True)
    return sorted([
        ("payables_invoice", "Invoice|00000000000000700", "created", "#ap-invoices"),
        ("payables_invoice", "Invoice|00000000000000701", "created", "#ap-large"),
        ("purchase_order", "PO2107", "status_change", "#purchasing"),
        ("purchase_order", "PO2109", "status_change", "#purchasing"),
        ("goods_receipt", "RCT1188|16384", "created", "#warehouse"),
        ("gl_journal", "3390|2024|16384", "status_change", "#gl-postings"),
        ("gl_journal", "3390|2024|32768", "status_change", "#gl-postings"),
        ("gl_journal", "3390|2024|49152", "status_change", "#gl-postings"),
        ("gl_journal", "3419|2024|16384", "created", "#gl-postings"),
        ("gl_journal", "3419|2024|32768", "created", "#gl-postings"),
        ("gl_journal", "3420|2024|16384", "created", "#gl-postings"),
        ("gl_journal", "3420|2024|32768", "created", "#gl-postings"),
        ("gl_journal", "3420|2024|49152", "created", "#gl-postings"),
        ("vendor", "CENTRALC0001", "updated", "#ap-invoices"),
        ("vendor", "E2EVENDR0001", "created", "#ap-invoices"),
    ])


class _FaultAfterFirstPage:
    """A client that arms a simulator fault once the first page of one entity has been read.

    ``GpClient.pages`` fetches lazily, so the fault hits the *next* page request of the same read:
    a real outage in the middle of a paged poll, after the pipeline committed page one.
    """

    source = "gp"

    def __init__(self, client: Any, sim: Any, entity: str, fault: str, path: str, times: int) -> None:
        self._client, self._sim = client, sim
        self._entity, self._fault, self._path, self._times = entity, fault, path, times
        self.company = client.company
        self.armed = False

    def pages(self, entity, **kw: Any) -> Iterator[Any]:
        for page in self._client.pages(entity, **kw):
            yield page
            if entity.name == self._entity and not self.armed:
                kind, status = ("status", 503) if self._fault == "503" else (self._fault, 503)
                self._sim.inject(kind, status=status, times=self._times, path=self._path)
                self.armed = True

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "_FaultAfterFirstPage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- NTLM, a wrong password, the alert and the catch-up ------------------------------------------


def test_ntlm_handshake_wrong_password_alerts_once_moves_nothing_and_recovery_catches_up(gp_rest, store, slack):
    gp = gp_rest  # the request log below is the REST service's
    first = _gp_cycle(gp, store, slack)
    assert _rows(store) == sorted(SEEDED)
    assert first.drain is not None and first.drain.records == len(SEEDED)

    # The handshake is real: challenge, NTLM type 1 → challenge, type 3 → 200, all on one
    # keep-alive connection, which then serves every other resource without a header.
    log = gp.sim.requests()
    assert [(r["status"], r["authorization"] is not None) for r in log[:3]] == [(401, False), (401, True), (200, True)]
    assert len({r["conn"] for r in log}) == 1
    assert all(r["status"] == 200 and r["authorization"] is None for r in log[3:])
    assert len(log) == 3 + len(ENTITIES) - 1 + 1  # and the currency setup, once per run
    counters = gp.sim.counters()
    assert (counters["challenges"], counters["logons"], counters.get("auth_failures", 0)) == (1, 1, 0)
    assert len(store.audit_rows("logon")) == 1

    # The service account's password is rotated on the Windows side while GP keeps working:
    # documents keep arriving that the poller cannot see until its password is fixed.
    gp.sim.set_password(gp.username, NEW_PASSWORD)
    changes = _post_changes(gp.sim)
    marks, rows_before = _watermarks(store, gp.company), store.deliveries()
    posts_before, polls_before = len(_erp_posts(slack)), len(store.audit_rows("poll"))

    for n in (1, 2):
        gp.sim.reset_counters()
        with pytest.raises(SourceAuthFailed, match="refused the Windows credentials after the NTLM handshake") as ei:
            _gp_cycle(gp, store, slack)  # still the old password
        assert ei.value.status == 401
        # The final 401 answers the last NTLM leg on the same connection; no resource was served.
        log = gp.sim.requests()
        assert [(r["status"], r["authorization"] is not None) for r in log] == [(401, False), (401, True), (401, True)]
        assert len({r["conn"] for r in log}) == 1
        assert gp.sim.counters()["auth_failures"] == 1
        failures = store.audit_rows("auth_failed")
        assert len(failures) == n and failures[-1]["details"]["status"] == 401

    # The cycle was skipped: nothing polled, nothing enqueued, no watermark moved, nothing posted.
    assert _watermarks(store, gp.company) == marks
    assert store.deliveries() == rows_before
    assert len(store.audit_rows("poll")) == polls_before
    assert len(_erp_posts(slack)) == posts_before
    alerts = slack.sim.posted(OPS)
    assert len(alerts) == 1 and "needs attention" in alerts[0]["text"]
    leaks = json.dumps(alerts) + json.dumps(store.audit_rows(), default=str)
    assert gp.password not in leaks and NEW_PASSWORD not in leaks

    # Fixed: the next cycle logs on again and catches up with everything that arrived meanwhile.
    gp.sim.reset_counters()
    recovered = _gp_cycle(gp, store, slack, password=NEW_PASSWORD)
    assert gp.sim.counters()["logons"] == 1
    assert recovered.new + recovered.updated == len(changes)
    assert _rows(store) == sorted(SEEDED + changes)
    _assert_each_row_posted_once(store, slack)
    alerts = slack.sim.posted(OPS)
    assert len(alerts) == 2 and "working again" in alerts[1]["text"]


# --- routing of every kind of change, exactly once; a quiet run posts nothing --------------------


def test_each_change_reaches_its_channel_once_and_a_quiet_run_posts_nothing(gp, store, slack):
    _gp_cycle(gp, store, slack)
    baseline = _last_id(store)
    expected = _post_changes(gp.sim)

    second = _gp_cycle(gp, store, slack)
    assert _rows(store, baseline) == expected
    _assert_each_row_posted_once(store, slack)
    assert second.drain is not None and second.drain.records == len(expected)

    new = {(r["entity"], r["record_key"]): r for r in store.deliveries() if r["id"] > baseline}
    # A PO status change says what changed, in the outbox and in the Slack message.
    po = new[("purchase_order", "PO2109")]
    assert ["status", "New", "Released"] in json.loads(po["changes"])
    blocks = json.dumps(_message_with(slack, po["uid"])["blocks"], ensure_ascii=False)
    assert re.search(r"New\s*(→|->)\s*Released", blocks), blocks
    assert ["status", "Released", "Received"] in json.loads(new[("purchase_order", "PO2107")]["changes"])
    # A void is a new reversing entry pointing at the original, plus the original flagged Voided.
    reversal = json.loads(new[("gl_journal", "3420|2024|16384")]["fields"])
    assert str(reversal["reverses"]) == "3390"
    for line in ("16384", "32768", "49152"):
        voided = new[("gl_journal", f"3390|2024|{line}")]
        assert ["status", "Posted", "Voided"] in json.loads(voided["changes"])
    # The large invoice went to #ap-large only, by the amount rule above the general one.
    assert json.loads(new[("payables_invoice", "Invoice|00000000000000701")]["fields"])["amount"] == "75000.00"

    # Nothing changed since: every row re-read inside the lookback is a duplicate, nothing posts.
    posts = slack.sim.call_counts()["chat.postMessage"]
    last = _last_id(store)
    quiet = _gp_cycle(gp, store, slack)
    assert (quiet.new, quiet.updated, quiet.bad) == (0, 0, 0)
    assert sum(p.duplicates for p in quiet.polls) > 0  # the lookback really re-read rows
    assert _last_id(store) == last
    assert slack.sim.call_counts()["chat.postMessage"] == posts


# --- unposted drafts -----------------------------------------------------------------------------


def test_unposted_drafts_are_delivered_only_with_include_unposted(gp, store, slack):
    drafts = gp.sim.add_drafts(3)  # vouchers 700-702, work documents pending approval
    gp.sim.receive_po("PO2107", posted=False)  # an unposted receipt, RCT1188
    _gp_cycle(gp, store, slack)
    # PO2107 is now Received, but neither the drafts, the seeded draft 655, the receipt nor the
    # unposted GL entry 3418 show.
    assert _rows(store) == sorted(SEEDED)

    baseline = _last_id(store)
    _gp_cycle(gp, store, slack, include_unposted=True)
    assert _rows(store, baseline) == sorted(
        [("payables_invoice", f"Invoice|{v}", "created", "#ap-invoices") for v in ("00000000000000655", *drafts)]
        + [("goods_receipt", "RCT1188|16384", "created", "#warehouse")]
        + [("gl_journal", f"3418|2024|{line}", "created", "#gl-postings") for line in ("16384", "32768")]
    )
    statuses = {json.loads(r["fields"])["status"] for r in store.deliveries() if r["id"] > baseline}
    assert statuses == {"Unposted"}
    _assert_each_row_posted_once(store, slack)


# --- envelopes, list shapes and paging -----------------------------------------------------------


@pytest.mark.parametrize("page_size", [None, 2], ids=["unpaged", "paged"])
@pytest.mark.parametrize("list_shape", ["array", "object"])
@pytest.mark.parametrize("envelope", ["payload", "bare"])
def test_every_envelope_list_shape_and_paging_delivers_the_same_set(
    gp_sim_factory, store, slack, envelope, list_shape, page_size
):
    gp = gp_sim_factory(clock=_clock, envelope=envelope, list_shape=list_shape, page_size=page_size)
    _gp_cycle(gp, store, slack)
    # Paging really happened: 7 vendors in pages of 2 are 4 requests, unpaged one.
    assert gp.sim.counters()["GET Purchasing/Vendors"] == (4 if page_size else 1)
    expected = _post_changes(gp.sim)
    _gp_cycle(gp, store, slack)
    assert _rows(store) == sorted(SEEDED + expected)
    _assert_each_row_posted_once(store, slack)

    # Same content too: the last version delivered per document equals what a plain read
    # (payload envelope, array, unpaged) of the same simulator gives now.
    gp.sim.configure(envelope="payload", list_shape="array", page_size=None)
    with gp.client() as client:
        plain = {
            (e.name, rec.key): rec.version
            for e in ENTITIES for page in client.pages(e, since=None) for rec in
            (normalise(e, gp.company, row) for row in page.rows)
        }
    latest = {(r["entity"], r["record_key"]): r["version"] for r in store.deliveries()}
    assert latest == plain


# --- TLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["system", "other_ca"])
def test_tls_needs_the_simulator_ca_and_an_unknown_certificate_moves_nothing(gp_sim_factory, store, slack, tmp_path, trust):
    gp = gp_sim_factory(tls=True, clock=_clock)
    assert gp.url.startswith("https://")
    if trust == "system":
        verify: Any = True  # the system store has never heard of the simulator's CA
    else:
        verify = str(tmp_path / "other-ca.pem")
        trustme.CA().cert_pem.write_to_path(verify)

    with pytest.raises(SourceUnavailable, match=r"not trusted: set the GP connection's CA bundle \(verify="):
        _gp_cycle(gp, store, slack, verify=verify)
    # Refused during the TLS handshake: no HTTP request reached the service, nothing advanced.
    assert gp.sim.counters().get("requests", 0) == 0
    assert _watermarks(store, gp.company) == {e.name: None for e in ENTITIES}
    assert store.deliveries() == []
    assert _erp_posts(slack) == []
    assert len(slack.sim.posted(OPS)) == 1

    _gp_cycle(gp, store, slack)  # verify = the simulator's CA bundle path
    assert _rows(store) == sorted(SEEDED)
    _assert_each_row_posted_once(store, slack)
    assert "working again" in slack.sim.posted(OPS)[-1]["text"]


# --- an outage in the middle of a paged read -----------------------------------------------------


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_outage_mid_poll_gives_up_after_bounded_retries_and_the_next_cycle_catches_up_once(
    gp_sim_factory, store, slack, fault
):
    gp = gp_sim_factory(clock=_clock, page_size=2)
    _gp_cycle(gp, store, slack)
    baseline = _last_id(store)
    marks = _watermarks(store, gp.company)

    gp.sim.add_invoice("ADVANCED0001", "E2E-OUTAGE", "640.00", batch="AP-OUT")
    gp.sim.post_batch("AP-OUT")  # voucher 700
    gp.sim.set_po_status("PO2109", "Released")
    for item in ("A", "B", "C"):  # PO2110-PO2112
        gp.sim.add_po("ACETRAVE0001", [(f"E2E-{item}", "Spare part", 1, "10.00")])
    # Changed POs in key order: (PO2088 PO2107 — nothing new) | PO2109 PO2110 | PO2111 PO2112.
    # The first page left empty by the watermark is never handed out, so the fault is armed after
    # PO2109/PO2110 were enqueued and hits the request for PO2111/PO2112.
    waits: list[float] = []

    def audit(kind: str, details: Any) -> None:
        store.audit(kind, source="gp", company=gp.company, details=dict(details))

    client = gp.client(audit=audit, sleep=waits.append, retry=RetryPolicy(attempts=3, timeout=30.0))
    faulty = _FaultAfterFirstPage(client, gp.sim, "purchase_order", fault, "Purchasing/Transactions", times=3)
    posts = len(_erp_posts(slack))
    with pytest.raises(SourceUnavailable, match="gave up after 3 attempts") as ei:
        _gp_cycle(gp, store, slack, client=faulty)
    assert ei.value.status == (503 if fault == "503" else None)

    assert faulty.armed
    assert gp.sim.counters()[f"fault_{fault}"] == 3  # three real tries, then no more
    assert waits == [0.5, 1.0]  # the client's backoff, recorded instead of slept
    assert len(store.audit_rows("retry")) == 2
    # Progress so far is kept (payables finished; PO page one is in the outbox), but the PO
    # watermark stays where it was (the entities after it had nothing new).
    after = _watermarks(store, gp.company)
    assert after["payables_invoice"] != marks["payables_invoice"]
    assert {k: v for k, v in after.items() if k != "payables_invoice"} == {
        k: v for k, v in marks.items() if k != "payables_invoice"
    }
    assert [(r[0], r[1], r[2]) for r in _rows(store, baseline)] == [
        ("payables_invoice", "Invoice|00000000000000700", "created"),
        ("purchase_order", "PO2109", "status_change"),
        ("purchase_order", "PO2110", "created"),
    ]
    # What was queued before the outage is still delivered by the failed run, once.
    assert {r["status"] for r in store.deliveries() if r["id"] > baseline} == {"sent"}
    assert len(_erp_posts(slack)) - posts <= 3
    assert len(slack.sim.posted(OPS)) == 1

    # The outage is over; a change arrives meanwhile. The next cycle re-reads from the old PO
    # watermark: page one is recognised as already queued, the rest is new, nothing is lost.
    gp.sim.update_vendor("CENTRALC0001", on_hold=True)
    recovered = _gp_cycle(gp, store, slack)
    assert [p.duplicates for p in recovered.polls if p.entity == "purchase_order"] == [2]  # PO2109, PO2110
    assert _rows(store, baseline) == sorted([
        ("payables_invoice", "Invoice|00000000000000700", "created", "#ap-invoices"),
        ("purchase_order", "PO2109", "status_change", "#purchasing"),
        ("purchase_order", "PO2110", "created", "#purchasing"),
        ("purchase_order", "PO2111", "created", "#purchasing"),
        ("purchase_order", "PO2112", "created", "#purchasing"),
        ("vendor", "CENTRALC0001", "updated", "#ap-invoices"),
    ])
    _assert_each_row_posted_once(store, slack)
    assert "working again" in slack.sim.posted(OPS)[-1]["text"]


def test_a_far_future_modified_date_is_delivered_but_never_drags_the_watermark(gp_sim_factory, store):
    # A row stamped 2999 must not move the watermark past everything entered from today on.
    from datetime import datetime, timezone

    from erp_slack.pipeline import poll_entity
    from erp_slack.routing import DEFAULT_ROUTES
    from erp_slack.sources.gp.entities import VENDOR

    now = {"t": datetime.now(timezone.utc)}
    served = gp_sim_factory(clock=lambda: now["t"])
    now["t"] = datetime(2999, 1, 1, tzinfo=timezone.utc)
    served.sim.add_vendor("FUTURE01", name="Time Traveller Ltd")
    now["t"] = datetime.now(timezone.utc)
    with served.client() as client:
        res = poll_entity(client, VENDOR, store, DEFAULT_ROUTES, first_run="post")
    assert res.watermark_after is not None and not res.watermark_after.startswith("2999")
    assert any(r["record_key"] == "FUTURE01" for r in store.deliveries())
    assert [a["record_key"] for a in store.audit_rows("future_cursor")] == ["FUTURE01"]


def test_an_invoice_put_on_hold_again_is_announced_again(gp_sim, store, slack_sim_factory):
    from erp_slack.sources.gp.entities import PAYABLES_INVOICE

    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    from tests._cycle import run_cycle

    voucher = gp_sim.sim.add_invoice("ACETRAVE0001", "HOLD-AGAIN-1", "640.00", posted=True)
    run_cycle(gp_sim.client(), [PAYABLES_INVOICE], store, slack)  # the first run posts what is there
    for hold in (True, False, True):
        gp_sim.sim.update_invoice(voucher, on_hold=hold)
        run_cycle(gp_sim.client(), [PAYABLES_INVOICE], store, slack)
    rows = [r for r in store.deliveries(entity="payables_invoice") if r["record_key"].endswith(voucher)]
    assert [r["status"] for r in rows] == ["sent"] * 4
    assert len({r["version"] for r in rows}) == 2  # two states, the first of them announced twice more


# --- living messages -----------------------------------------------------------------------------


def test_a_po_created_released_received_and_closed_is_one_message_showing_closed_with_three_replies(gp, store, slack):
    _gp_cycle(gp, store, slack)
    po = gp.sim.add_po("ADVANCED0001", [("128 SDRAM", "128 meg SDRAM", 10, "45.00"), ("HDWR-SRG-0001", "Surge", 2, "12.50")])
    _gp_cycle(gp, store, slack)
    gp.sim.set_po_status(po, "Released")
    _gp_cycle(gp, store, slack)
    gp.sim.receive_po(po)
    _gp_cycle(gp, store, slack)
    gp.sim.set_po_status(po, "Closed")
    _gp_cycle(gp, store, slack)

    rows = [r for r in store.deliveries() if r["record_key"] == po]
    assert [json.loads(r["fields"])["status"] for r in rows] == ["New", "Released", "Received", "Closed"]
    in_channel = [m for m in slack.sim.posted("#purchasing") if m.get("thread_ts") in (None, m["ts"])
                  and rows[0]["uid"] in m["metadata"]["event_payload"]["deliveries"]]
    (message,) = in_channel
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    assert f"Purchase order {po}" in shown and "Closed" in shown and "Released" not in shown
    assert len(message["edits"]) == 3
    thread = [m for m in slack.sim.posted("#purchasing") if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]]
    said = [m["blocks"][0]["text"]["text"] for m in thread]
    assert len(said) == 3
    for words, line in zip(["New → Released", "Released → Received", "Received → Closed"], said):
        assert words in line, said
    # Nothing else about this order reached the channel, and every row names the message it is in.
    about = [m for m in slack.sim.posted("#purchasing") if f"{po}" in json.dumps(m["blocks"])]
    assert len(about) == 1
    assert [r["slack_ts"] for r in rows] == [message["ts"], *(m["ts"] for m in thread)]
    _assert_each_row_posted_once(store, slack)


def test_gl_postings_of_an_archiving_rule_are_replies_in_their_months_threads(gp, store, slack):
    from erp_slack.routing import DEFAULT_ROUTES, Rule

    rules = [Rule(name="GL archive", entity="gl_journal", channel="#gl-postings", archive="month"),
             *DEFAULT_ROUTES]
    client = gp.client(audit=make_audit_hook(store, source="gp", company=gp.company))
    run_cycle(client, ENTITIES, store, slack, rules=rules, ops_channel=OPS)

    posted = slack.sim.posted("#gl-postings")
    parents = {m["ts"]: m for m in posted if m["metadata"]["event_type"] == "erp_archive_thread_opened"}
    titles = sorted(m["blocks"][0]["text"]["text"].split(" · ")[1] for m in parents.values())
    # The seeded entries: journal 2911 of 2023 and 3390 of 2024, by their own transaction dates.
    dates = {json.loads(r["fields"])["posting_date"][:7] for r in store.deliveries(entity="gl_journal")}
    assert len(titles) == len(dates) and all(" 20" in t for t in titles)
    rows = store.deliveries(entity="gl_journal")
    assert rows and {r["status"] for r in rows} == {"sent"} and {r["thread_ts"] for r in rows} <= set(parents)
    for ts, parent in parents.items():
        replies = [m for m in posted if m.get("thread_ts") == ts and m["ts"] != ts]
        records = sum(len(m["metadata"]["event_payload"]["deliveries"]) for m in replies)
        assert f"*GL journal entries*: {records}" in parent["blocks"][1]["text"]["text"]
    _assert_each_row_posted_once(store, slack)


# --- currencies ----------------------------------------------------------------------------------


def _invoice_texts(slack) -> str:
    return json.dumps([m["blocks"] for m in slack.sim.posted("#ap-invoices")])


@pytest.mark.parametrize("iso_field", ["ISOCode", "IsoCurrencyCode"])
def test_amounts_carry_the_iso_code_gp_currency_setup_names(gp_sim_factory, store, slack, iso_field):
    # How the currency setup names its ISO code is not documented: any field saying ISO is read.
    gp = gp_sim_factory(clock=_clock, currency_iso_field=iso_field)
    _gp_cycle(gp, store, slack)
    assert store.currency_codes()[("gp", gp.company)] == {"Z-US$": "USD", "Z-C$": "CAD", "Z-EURO": "EUR",
                                                          "Z-UK": "GBP"}
    text = _invoice_texts(slack)
    assert "USD " in text and "EUR " in text and "Z-US$" not in text and "Z-EURO" not in text
    kept = {json.loads(r["fields"]).get("currency") for r in store.deliveries() if r["entity"] == "payables_invoice"}
    assert kept == {"Z-US$", "Z-EURO"}  # the audit trail keeps GP's own ids


@pytest.mark.parametrize("setup", [dict(expose_currencies=False), dict(currency_iso_field=None)])
def test_without_a_readable_currency_setup_the_configured_codes_apply(gp_sim_factory, store, slack, setup):
    gp = gp_sim_factory(clock=_clock, **setup)
    _gp_cycle(gp, store, slack)
    assert store.currency_codes() == {}
    assert "Z-US$" in _invoice_texts(slack)  # GP's own id: nothing says otherwise
    if not setup.get("expose_currencies", True):
        assert any((r["details"] or {}).get("entity") == "currencies" for r in store.audit_rows("skipped"))

    other = gp_sim_factory(clock=_clock, companies=("Contoso Ltd.",), **setup)
    mapped = run_cycle(other.client(audit=make_audit_hook(store, source="gp", company=other.company)), ENTITIES,
                       store, slack, ops_channel=OPS, currency_codes={"Z-US$": "USD"})
    assert mapped.delivered_records > 0
    fresh = [m for m in slack.sim.posted("#ap-invoices") if "Contoso" in json.dumps(m["blocks"])]
    assert fresh and all("Z-US$" not in json.dumps(m["blocks"]) for m in fresh)


def test_the_configured_codes_win_over_gp_currency_setup(gp_sim_factory, store, slack):
    gp = gp_sim_factory(clock=_clock)
    run_cycle(gp.client(audit=make_audit_hook(store, source="gp", company=gp.company)), ENTITIES, store, slack,
              ops_channel=OPS, currency_codes={"Z-US$": "USN"})
    text = _invoice_texts(slack)
    assert "USN " in text and "USD " not in text
