"""End to end against SYSPRO: seeded company → poll → SQL outbox → drain → Slack, over real loopback HTTP.

Every test runs once per SYSPRO transport ("enet": e.net REST + COMFND with the ``TimeStamp``
rowversion cursor; "odata": OData v4 with a date cursor and a 3-day lookback) and once per store
(SQLite, plus PostgreSQL when ``ERP_SLACK_TEST_PG_URL`` is set). The simulators are the real
apps on ``127.0.0.1:0``; situations are made with the SYSPRO simulator's control methods
(``insert_invoice``, ``set_po_status``, ``evict``, ``advance``, ``inject``, ``set_password`` …).

What the suite proves (the "Must show" of the SYSPRO issue):

* a seeded company gives one Slack message per routed record, in the channel the default routes
  name, and every outbox row reaches Slack exactly once (checked through the delivery uids each
  message carries in its metadata, which also holds when deep lanes are sent as digests);
* a run with no changes posts nothing; an invoice inserted between runs posts once and shows
  what a person needs (number, supplier name, amount, dates);
* a PO status change posts a ``status_change`` on e.net; on OData a change is seen only inside
  the lookback window (date cursors cannot see updates, reference);
* back-dated invoices and 50 invoices on one date post once each across several cycles;
* a lost e.net session costs exactly one re-logon, audited in SQL, and loses nothing;
* wrong credentials fail the run with a clear ``SourceAuthFailed`` that holds no password, and
  nothing advances;
* bad rows are quarantined with a reason (or rendered safely) while the rest of the page flows;
* the e.net session is logged off after every run, also one that fails half-way.

Nothing sleeps for real: SYSPRO clients get a recording ``sleep``, the simulator's clock is
advanced, and the Slack simulator runs its rate model 1,000 times faster with limits off (pacing
is not the subject here; ``test_send.py`` covers it).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable

import httpx
import pytest

from erp_slack.errors import SourceAuthFailed, SourceUnavailable
from erp_slack.model import Entity
from erp_slack.store import Store
from simulators.syspro import SysproSimulator
from tests._cycle import Cycle, run_cycle
from tests._fixtures_slack import SlackSimServer
from tests._fixtures_syspro import ClientFactory, SysproServed

BOTH = pytest.mark.parametrize("transport", ["enet", "odata"])
# Sessions, logon and re-logon exist only on e.net; OData is stateless Basic auth (reference).
ENET_ONLY = pytest.mark.parametrize("transport", ["enet"])

# DEFAULT_ROUTES as the issue states them, written out independently of routing.py so that a
# change to the defaults is caught here.
CHANNEL = {
    "ap_invoice": "#ap-invoices",
    "purchase_order": "#purchasing",
    "goods_receipt": "#warehouse",
    "ap_journal": "#gl-postings",
    "gl_journal": "#gl-postings",
    "sales_order": "#sales",
}
LARGE_CHANNEL = "#ap-large"
LARGE_AMOUNT = Decimal("50000")
LIVE = ("pending", "sending", "sent")  # delivery statuses that mean "this goes to Slack"


# --- test rig ---------------------------------------------------------------------------------


class _Tap(httpx.HTTPTransport):
    """A real HTTP transport with two test hooks: act before a request leaves, rewrite a reply.

    ``before`` lets a test change the simulator at an exact point of a run (evict the session
    between two pages, expire it between two entities, make the server fail half-way).
    ``rewrite`` edits reply bytes, for values SQL-typed simulator columns cannot hold (an
    amount or date that does not parse).
    """

    def __init__(self, *, before: Callable[[httpx.Request], None] | None = None,
                 rewrite: Callable[[bytes], bytes] | None = None) -> None:
        super().__init__()
        self.before = before
        self.rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.before is not None:
            self.before(request)
        response = super().handle_request(request)
        if self.rewrite is None:
            return response
        body = response.read()
        response.close()
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=self.rewrite(body),
                              request=request, extensions=response.extensions)


def _table_of(request: httpx.Request) -> str | None:
    """The SYSPRO table a read asks for (COMFND ``TableName`` on e.net, the path on OData)."""
    m = re.search(r"<TableName>(\w+)</TableName>", request.url.params.get("XmlIn", ""))
    if m:
        return m.group(1)
    if "/SYSPROOData/" in request.url.path:
        return request.url.path.rsplit("/", 1)[-1]
    return None


@dataclass
class Rig:
    """One SYSPRO simulator, one store and one Slack simulator, wired the way a flow wires them."""

    transport: str
    served: SysproServed
    store: Store
    slack: SlackSimServer
    make_client: ClientFactory
    runs_logged_on: int = 0  # runs that opened an e.net session, each of which must log off once

    @property
    def sim(self) -> SysproSimulator:
        return self.served.sim

    def audit(self, kind: str, details: Any) -> None:
        # The same hook flows/pipeline.py passes to clients: every client event becomes a SQL row.
        self.store.audit(kind, source="syspro", company=self.served.company, details=dict(details))

    def client(self, **overrides: Any) -> Any:
        overrides.setdefault("audit", self.audit)
        return self.make_client(self.transport, **overrides)

    def run(self, *, drain: dict[str, Any] | None = None, **overrides: Any) -> Cycle:
        """One poll-and-deliver cycle; ``overrides`` go to the client, ``drain`` to DrainSettings."""
        client = self.client(**overrides)
        logons = len(self.audits("logon"))  # successful logons only; a refused one opens nothing
        try:
            return run_cycle(client, client.entities, self.store, self.slack, **(drain or {}))
        finally:
            self.runs_logged_on += len(self.audits("logon")) > logons

    @property
    def entities(self) -> tuple[Entity, ...]:
        from erp_slack.sources.syspro.entities import entities_for

        return entities_for(self.transport)

    # -- what happened, read back from SQL and from Slack --

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        return [r for r in self.store.deliveries(dry_run=False, **where) if r["status"] in LIVE]

    def keys(self, entity: str) -> list[str]:
        return [r["record_key"] for r in self.rows(entity=entity)]

    def watermarks(self) -> dict[str, Any]:
        return {e.name: self.store.watermark("syspro", self.served.company, e.name) for e in self.entities}

    def audits(self, kind: str) -> list[dict[str, Any]]:
        return self.store.audit_rows(kind)

    def message_for(self, uid: str) -> dict[str, Any]:
        found = [m for m in self.slack.sim.posted() if uid in _uids(m)]
        assert len(found) == 1, f"delivery {uid} is in {len(found)} Slack messages"
        return found[0]


def _uids(message: dict[str, Any]) -> list[str]:
    return list(((message.get("metadata") or {}).get("event_payload") or {}).get("deliveries") or [])


def _text(message: dict[str, Any]) -> str:
    """Everything a person can read in a posted message: fallback text plus every block text."""
    out = [message.get("text") or ""]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(message.get("blocks") or [])
    return "\n".join(out)


@pytest.fixture
def rig(transport: str, syspro_sim: SysproServed, syspro_client: ClientFactory, store: Store,
        slack_sim_factory: Callable[..., SlackSimServer]) -> Rig:
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    return Rig(transport, syspro_sim, store, slack, syspro_client)


# --- oracles ----------------------------------------------------------------------------------


def _key(entity: Entity, row: dict[str, Any]) -> str:
    # SQL Server char keys carry trailing spaces; the record key is the trimmed parts joined by "|".
    return "|".join(str(row[c]).strip() for c in entity.key)


def expected_routes(rig: Rig, *, skip: Iterable[tuple[str, str]] = ()) -> dict[tuple[str, str], str]:
    """(entity, key) -> channel for every row the simulator holds, from the routes as specified."""
    skipped = set(skip)
    out: dict[tuple[str, str], str] = {}
    for e in rig.entities:
        for row in rig.sim.rows(e.table):
            k = (e.name, _key(e, row))
            if k in skipped:
                continue
            big = e.name == "ap_invoice" and row["OrigInvValue"] is not None and row["OrigInvValue"] >= LARGE_AMOUNT
            out[k] = LARGE_CHANNEL if big else CHANNEL[e.name]
    return out


def assert_routed(rig: Rig, expected: dict[tuple[str, str], str]) -> None:
    """The outbox holds exactly one live row per expected record, in the expected channel."""
    got = Counter((r["entity"], r["record_key"], r["channel"]) for r in rig.rows())
    want = Counter((e, k, ch) for (e, k), ch in expected.items())
    assert got == want


def assert_each_posted_once(rig: Rig) -> None:
    """Every live outbox row was sent, and its uid is in exactly one Slack message, in its channel."""
    rows = rig.rows()
    assert [r for r in rows if r["status"] != "sent"] == []
    seen: Counter[str] = Counter()
    channel_of: dict[str, str] = {}
    for m in rig.slack.sim.posted():
        for uid in _uids(m):
            seen[uid] += 1
            channel_of[uid] = "#" + m["channel_name"]
    assert seen == Counter({r["uid"]: 1 for r in rows})
    assert {r["uid"]: r["channel"] for r in rows} == channel_of


def assert_logged_off(rig: Rig) -> None:
    """No e.net session is left holding a licence (reference)."""
    assert rig.sim.sessions() == []
    if rig.transport == "enet":
        # One Logoff per run that logged on, however many re-logons it needed.
        assert rig.sim.counters["Logoff"] == rig.runs_logged_on > 0
    else:
        assert rig.sim.counters["Logon"] == 0  # OData never opens an e.net session


def _posts(rig: Rig) -> int:
    return rig.slack.sim.call_counts()["chat.postMessage"]


# --- the happy path -----------------------------------------------------------------------------


@BOTH
def test_seeded_company_posts_each_routed_record_once(rig: Rig) -> None:
    # The seed has no invoice of 50,000 or more; add one so the severity route is exercised.
    large = rig.sim.insert_invoice(supplier="0000003", amount="75000.00")
    expected = expected_routes(rig)
    assert expected[("ap_invoice", f"0000003|{large['Invoice']}")] == LARGE_CHANNEL

    # No digests here: the issue asks for one message per record (digests are checked elsewhere).
    cycle = rig.run(drain={"digest_threshold": 1000})

    assert_routed(rig, expected)
    assert_each_posted_once(rig)
    assert [len(_uids(m)) for m in rig.slack.sim.posted()] == [1] * len(expected)
    assert {r["event"] for r in rig.rows()} == {"created"}
    assert cycle.bad == 0 and cycle.new == len(expected)
    # Every routed channel got something, and nothing went anywhere else.
    assert {m["channel_name"] for m in rig.slack.sim.posted()} == {c.lstrip("#") for c in expected.values()}
    assert {c.lstrip("#") for c in expected.values()} == {"ap-invoices", "ap-large", "purchasing", "warehouse",
                                                          "gl-postings", "sales"}
    # Supplier names come from ApSupplier (a lookup the client makes), not the codes.
    text = "\n".join(_text(m) for m in rig.slack.sim.posted())
    for name in ("Bike Parts Wholesale Ltd", "Eurotube GmbH", "Müller Wälzlager GmbH", "Bearings &amp; Seals Ltd"):
        assert name in text
    assert_logged_off(rig)
    assert len(rig.audits("logon")) == (1 if rig.transport == "enet" else 0)


@BOTH
def test_second_run_without_changes_posts_nothing(rig: Rig) -> None:
    rig.run()
    rows_before, posts_before, marks_before = rig.store.deliveries(), _posts(rig), rig.watermarks()
    assert posts_before > 0 and all(v is not None for v in marks_before.values())

    again = rig.run()

    assert again.new == 0 and again.updated == 0
    assert rig.store.deliveries() == rows_before
    assert _posts(rig) == posts_before
    assert rig.watermarks() == marks_before
    if rig.transport == "odata":
        # OData re-reads 3 days: rows were read again and dropped by the outbox's (key, version)
        # uniqueness, which is what this test is about.
        assert sum(p.duplicates for p in again.polls) > 0
    else:
        # Every rowversion is used once: a quiet e.net poll starts after the last one and reads nothing.
        assert sum(p.rows_seen for p in again.polls) == 0
    assert_logged_off(rig)


@BOTH
def test_invoice_inserted_between_runs_posts_once_with_its_details(rig: Rig) -> None:
    rig.run()
    inv = rig.sim.insert_invoice(supplier="0000003", amount="4321.09", invoice_date="2024-05-29",
                                 due_date="2024-06-28")
    key = f"0000003|{inv['Invoice']}"

    second = rig.run()
    third = rig.run()

    assert rig.keys("ap_invoice").count(key) == 1
    assert second.new == 2  # the invoice and its AP journal entry (insert_invoice posts both)
    assert third.new == 0
    assert_routed(rig, expected_routes(rig))
    assert_each_posted_once(rig)
    (row,) = rig.rows(entity="ap_invoice", record_key=key)
    text = _text(rig.message_for(row["uid"]))
    for shown in (inv["Invoice"], "Eurotube GmbH", "EUR 4,321.09", "2024-05-29", "2024-06-28"):
        assert shown in text
    assert_logged_off(rig)


@BOTH
def test_an_invoice_of_a_supplier_on_hold_stands_out_and_one_of_a_supplier_not_on_hold_does_not(rig: Rig) -> None:
    rig.run()
    held = rig.sim.insert_invoice(supplier="0000006", amount="880.00")  # Nordic Roller: OnHold = Y
    free = rig.sim.insert_invoice(supplier="0000003", amount="12.00")
    rig.run()
    (row,) = rig.rows(entity="ap_invoice", record_key=f"0000006|{held['Invoice']}")
    message = rig.message_for(row["uid"])
    assert "on hold" in message["text"].lower() and "*Hold*\nYes" in _text(message)
    (other,) = rig.rows(entity="ap_invoice", record_key=f"0000003|{free['Invoice']}")
    assert "on hold" not in rig.message_for(other["uid"])["text"].lower()
    assert "*Hold*\nNo" in _text(rig.message_for(other["uid"]))


@BOTH
def test_po_status_change_posts_an_update(rig: Rig) -> None:
    rig.run()
    # 000419 was entered on 2024-05-02, long before the last poll; 000423 on 2024-05-27, the
    # newest order date and so inside OData's 3-day lookback.
    rig.sim.set_po_status("000419", "9")
    rig.sim.set_po_status("000423", "4")

    cycle = rig.run()

    changes = {r["record_key"]: r for r in rig.rows(entity="purchase_order", event="status_change")}
    if rig.transport == "enet":
        # The TimeStamp rowversion moves on every update, so both changes are seen.
        assert set(changes) == {"000419", "000423"}
    else:
        # Reference: a date cursor sees inserts, not updates. The OData transport re-reads
        # only [watermark − 3 days, …), so 000423's change is caught and 000419's is invisible
        # by design — no row, no message, nothing in error.
        assert set(changes) == {"000423"}
        assert rig.keys("purchase_order").count("000419") == 1
    assert cycle.updated == len(changes)
    assert [r for r in rig.rows(entity="purchase_order") if r["event"] == "updated"] == []
    said = {"000419": "Order printed → Completed", "000423": "In process → Order printed"}
    for po, row in changes.items():
        # The order's first message now shows the new status, and a reply in its thread says
        # what changed (a living message: one place per document).
        reply = rig.message_for(row["uid"])
        first = rig.message_for(next(r["uid"] for r in rig.rows(entity="purchase_order", record_key=po)
                                     if r["event"] == "created"))
        assert reply["thread_ts"] == first["ts"] == row["thread_ts"] and said[po] in _text(reply)
        assert said[po].split(" → ")[1] in _text(first) and len(first["edits"]) == 1
    assert_each_posted_once(rig)
    assert_logged_off(rig)


@BOTH
def test_backdated_and_same_date_invoices_post_once(rig: Rig) -> None:
    sim = rig.sim
    today = sim.business_date
    rig.run(page_size=20)
    # 50 invoices on one posting date, arriving in two batches: the second batch shares its
    # cursor value with the watermark the first one left (a same-date tie across runs).
    first = sim.insert_invoices_on(today, 25, supplier="0000002", amount="10.00")
    rig.run(page_size=20)
    second = sim.insert_invoices_on(today, 25, supplier="0000002", amount="20.00")
    # Back-dated: the supplier's document date only (the usual case), and a posting date two days
    # back (inside the lookback), and ten days back (outside it).
    doc_date_only = sim.insert_backdated_invoice(10, supplier="0000001", journal_date=today)
    two_days = sim.insert_backdated_invoice(2, supplier="0000001")
    ten_days = sim.insert_backdated_invoice(10, supplier="0000005")
    rig.run(page_size=20)
    last = rig.run(page_size=20)

    keys = Counter(rig.keys("ap_invoice"))
    for inv in [*first, *second, doc_date_only, two_days]:
        assert keys[f"{inv['Supplier']}|{inv['Invoice']}"] == 1
    ten_key = f"0000005|{ten_days['Invoice']}"
    if rig.transport == "enet":
        assert keys[ten_key] == 1
        assert_routed(rig, expected_routes(rig))
    else:
        # Posted ten days back is below watermark − lookback: a date cursor cannot see it
        # (reference: use the overlap and accept its bound). Neither is its AP journal.
        assert keys[ten_key] == 0
        posted_on = ten_days["JournalDate"]
        jnl = f"{posted_on.year}|{posted_on.month}|{ten_days['Journal']}|1"
        assert_routed(rig, expected_routes(rig, skip={("ap_invoice", ten_key), ("ap_journal", jnl)}))
    assert last.new == 0
    assert_each_posted_once(rig)
    assert_logged_off(rig)


# --- sessions and credentials -----------------------------------------------------------------


@ENET_ONLY
@pytest.mark.parametrize("loss", ["evicted_between_pages", "expired_between_entities"])
def test_lost_session_relogs_on_once_and_loses_nothing(rig: Rig, loss: str) -> None:
    sim = rig.sim
    seen: Counter[str] = Counter()
    fired: list[str] = []

    def before(request: httpx.Request) -> None:
        table = _table_of(request)
        if table is None:
            return
        seen[table] += 1
        if fired:
            return
        if loss == "evicted_between_pages" and table == "ApInvoice" and seen[table] == 2:
            # A person logs on at the desktop as our operator: SYSPRO drops our session.
            sim.evict(rig.served.operator)
            fired.append(loss)
        elif loss == "expired_between_entities" and table == "PorMasterHdr":
            sim.advance(sim.idle_timeout_seconds + 1)  # idle timeout, without sleeping
            fired.append(loss)

    cycle = rig.run(page_size=2, http_transport=_Tap(before=before))

    assert fired == [loss]
    if loss == "evicted_between_pages":
        # Two rows a page: the session died inside the invoice scan, not at its start.
        assert next(p for p in cycle.polls if p.entity == "ap_invoice").pages > 2
    (relogon,) = rig.audits("relogon")
    assert (relogon["source"], relogon["company"]) == ("syspro", rig.served.company)
    assert "session invalid" in relogon["details"]["reason"]
    assert len(rig.audits("logon")) == 2
    assert sim.counters["Logon"] == 2
    assert cycle.bad == 0
    assert_routed(rig, expected_routes(rig))
    assert_each_posted_once(rig)
    assert_logged_off(rig)


@BOTH
def test_wrong_credentials_fail_the_run_and_nothing_advances(rig: Rig) -> None:
    rig.run()
    marks, rows, posts = rig.watermarks(), rig.store.deliveries(), _posts(rig)
    waiting = rig.sim.insert_invoice(supplier="0000004", amount="99.00")
    wrong = "Wr0ng-Passw0rd"
    creds = {"operator_password": wrong} if rig.transport == "enet" else {"odata_password": wrong}

    with pytest.raises(SourceAuthFailed) as info:
        rig.run(**creds)

    message = str(info.value)
    expected = r"Invalid operator password" if rig.transport == "enet" else r"refused the credentials \(HTTP 401\)"
    assert re.search(expected, message)
    for secret in (wrong, rig.served.password, rig.served.odata_password):
        assert secret not in message and secret not in info.value.url
        # …nor anywhere in the audit trail people query.
        assert not [a for a in rig.store.audit_rows() if secret in json.dumps(a, default=str)]
    assert [a["details"]["operator"] for a in rig.audits("auth_failed")] == [rig.served.operator]
    assert rig.watermarks() == marks
    assert rig.store.deliveries() == rows
    assert _posts(rig) == posts
    assert_logged_off(rig)

    # Put the right password back: the invoice that waited is posted once.
    rig.run()
    assert rig.keys("ap_invoice").count(f"0000004|{waiting['Invoice']}") == 1
    assert_routed(rig, expected_routes(rig))
    assert_each_posted_once(rig)


@BOTH
def test_run_failing_half_way_still_logs_off_and_resumes(rig: Rig) -> None:
    sim = rig.sim
    armed = [True]

    def before(request: httpx.Request) -> None:
        if armed[0] and _table_of(request) == "PorMasterHdr":
            # The server goes away while the second entity is read: every try of this read
            # (three, the client's retry cap) has its connection dropped.
            sim.inject("drop", times=3)
            armed[0] = False

    with pytest.raises(SourceUnavailable, match=rf"SYSPRO {rig.transport} request failed"):
        rig.run(http_transport=_Tap(before=before))

    assert not armed[0]
    assert len(rig.make_client.slept) == 2  # three tries, two (recorded, not real) waits
    assert_logged_off(rig)
    if rig.transport == "enet":
        assert len(rig.audits("logoff")) == 1
    marks = rig.watermarks()
    # Only the entity that failed keeps its old watermark; the others were read and delivered.
    assert [n for n, v in marks.items() if v is None] == ["purchase_order"]
    posted = rig.slack.sim.posted()
    assert posted and not any("Purchase order" in str(m) for m in posted)
    assert [a["entity"] for a in rig.audits("entity_failed")] == ["purchase_order"]

    rig.run()
    assert_routed(rig, expected_routes(rig))
    assert_each_posted_once(rig)
    assert_logged_off(rig)


# --- bad data ---------------------------------------------------------------------------------


@BOTH
def test_bad_rows_are_quarantined_or_rendered_safely_and_the_page_flows(rig: Rig) -> None:
    sim = rig.sim
    # A first run first, so the second one's lanes are short and each record gets its own
    # message (a digest would not show the long remark).
    rig.run()

    # Interleave bad and good rows so the bad ones sit in the middle of one page.
    sim.upsert("ApSupplier", {"Supplier": "0000009", "SupplierName": "Société “Zürich” – € <!channel> & Co",
                              "Currency": "$", "TermsCode": "30", "Branch": "10"})
    cp1252 = sim.insert_invoice(supplier="0000009", amount="12.50", post_journal=False)
    out_of_range = sim.insert_invoice(supplier="0000001", amount="1000000000000000.00", post_journal=False)
    unknown_supplier = sim.insert_invoice(supplier="0000077", amount="33.00", post_journal=False)
    padded = sim.insert_invoice(supplier="0000001   ", invoice="PAD-0042   ", amount="55.00", post_journal=False)
    # SQL cannot hold "77x.77" in a decimal column or 2023-13-17 in a date one; the reply is
    # edited on the wire instead (a view, a proxy or a locale setting could do it).
    garbled_amount = sim.insert_invoice(supplier="0000002", amount="777.77", post_journal=False)
    garbled_date = sim.insert_invoice(supplier="0000002", amount="66.00", invoice_date="2023-01-17",
                                      post_journal=False)
    sim.upsert("PorMasterHdr", {"PurchaseOrder": "000430", "Supplier": "", "OrderEntryDate": sim.business_date,
                                "OrderStatus": "0", "Currency": "$"})
    remark = "Long remark. " * 4000  # ~52 KB in one GL comment
    gl = sim.insert_gl_journal([("20-2400", "10.00", remark), ("20-2100", "-10.00", "Counter entry")])

    if rig.transport == "enet":
        garble = {b"<OrigInvValue>777.77<": b"<OrigInvValue>77x.77<",
                  b"<InvoiceDate>2023-01-17<": b"<InvoiceDate>2023-13-17<"}
    else:
        garble = {b'"OrigInvValue":777.77': b'"OrigInvValue":"77x.77"', b'"2023-01-17T': b'"2023-13-17T'}

    def rewrite(body: bytes) -> bytes:
        for old, new in garble.items():
            body = body.replace(old, new)
        return body

    cycle = rig.run(http_transport=_Tap(rewrite=rewrite))

    def inv_key(row: dict[str, Any]) -> str:
        return f"{row['Supplier'].strip()}|{row['Invoice'].strip()}"

    bad = {
        ("ap_invoice", inv_key(out_of_range)): r"amount \(OrigInvValue\).*out of range",
        ("ap_invoice", inv_key(garbled_amount)): r"amount \(OrigInvValue\).*not a number",
        ("ap_invoice", inv_key(garbled_date)): r"invoice_date \(InvoiceDate\).*invalid date",
        ("purchase_order", "000430"): r"supplier \(Supplier\) is missing",
    }
    quarantined = {(a["entity"], a["record_key"]): a for a in rig.audits("bad_record")}
    assert set(quarantined) == set(bad)
    for k, reason in bad.items():
        assert re.search(reason, quarantined[k]["message"]), quarantined[k]["message"]
        assert quarantined[k]["details"]["url"]  # where it came from, for whoever fixes the data
    assert cycle.bad == len(bad)
    by_entity = {p.entity: p for p in cycle.polls}
    # The good rows of the same reply went on: 3 invoices (the cp1252 supplier, the unknown
    # supplier, the padded keys), 2 GL lines, and nothing else new.
    assert by_entity["ap_invoice"].pages == 1 and by_entity["ap_invoice"].new == 3
    assert by_entity["gl_journal"].new == 2 and by_entity["purchase_order"].new == 0
    assert_routed(rig, expected_routes(rig, skip=bad))
    assert_each_posted_once(rig)

    def message(entity: str, key: str) -> str:
        (row,) = rig.rows(entity=entity, record_key=key)
        return _text(rig.message_for(row["uid"]))

    # Windows-1252 text arrives intact, and ERP text can never ping a channel.
    shown = message("ap_invoice", inv_key(cp1252))
    assert "Société “Zürich” – € &lt;!channel&gt; &amp; Co" in shown
    assert all("<!channel>" not in _text(m) for m in rig.slack.sim.posted())
    # An unknown supplier code is shown as the code, without a name.
    assert "0000077" in message("ap_invoice", inv_key(unknown_supplier))
    # Padded keys (SQL char columns) are trimmed, and the padded supplier code still finds its name.
    assert (padded["Supplier"], padded["Invoice"]) == ("0000001   ", "PAD-0042   ")
    assert "Bike Parts Wholesale Ltd" in message("ap_invoice", "0000001|PAD-0042")
    # The 52 KB remark is cut to a section field's 2,000 characters, and Slack accepted it.
    long_key = f"{gl[0]['GlYear']}|{gl[0]['GlPeriod']}|{gl[0]['Journal']}|1"
    (row,) = rig.rows(entity="gl_journal", record_key=long_key)
    fields = [f["text"] for b in rig.message_for(row["uid"])["blocks"] for f in b.get("fields") or []]
    (description,) = [f for f in fields if f.startswith("*Description*")]
    assert description.startswith("*Description*\nLong remark. Long remark.")
    assert description.endswith("…") and len(description) <= 2000

    # A second run reads the same rows again (the lookback, or the closed cursor bound) and
    # neither re-posts nor re-reports them.
    audit_count = len(rig.store.audit_rows("bad_record"))
    again = rig.run(http_transport=_Tap(rewrite=rewrite))
    assert again.new == 0 and again.updated == 0
    assert len(rig.store.audit_rows("bad_record")) == audit_count
    assert_each_posted_once(rig)
    assert_logged_off(rig)


@ENET_ONLY
def test_a_rule_that_notifies_mentions_its_people_and_no_other_message_does(rig: Rig) -> None:
    from erp_slack.routing import DEFAULT_ROUTES, Rule

    urgent = Rule(name="urgent invoices", entity="ap_invoice", min_amount=Decimal("50000"), channel="#ap-large",
                  notify=["@here", "S0614TZR7"])
    rig.sim.insert_invoice(invoice="BIG-1", amount="75000.00")
    client = rig.client()
    run_cycle(client, client.entities, rig.store, rig.slack, rules=[urgent, *DEFAULT_ROUTES])
    large = rig.slack.sim.posted("#ap-large")
    assert large and all(m["text"].startswith("<!here> <!subteam^S0614TZR7> ") for m in large)
    assert any("BIG-1" in _text(m) for m in large)
    others = [m for m in rig.slack.sim.posted() if m["channel_name"] != "ap-large"]
    assert others and not any("<!here>" in _text(m) or "subteam" in _text(m) for m in others)
    assert {r["mentions"] for r in rig.store.deliveries() if r["channel"] == "#ap-large"} == {
        '["@here", "S0614TZR7"]'}
