"""A corpus of hostile and malformed ERP data, through both sources, end to end.

Every case runs the real path: a simulator on loopback (SYSPRO over e.net or OData, Dynamics GP
over NTLM) → source client → ``poll_entity`` → SQL outbox → drainer → the Slack simulator, which
validates Block Kit the way Slack does. For each hostile row the suite proves:

* the row is either **quarantined** (an ``audit_events`` row of kind ``bad_record`` naming the
  entity, the key when there is one, and the reason) or **delivered safely** (escaped, cut to the
  Block Kit limits, control and bidi characters gone);
* **the rest of the page still flows**: two good rows written just before and just after the
  hostile one reach Slack exactly once (their delivery uids are each in exactly one message);
* a second cycle re-reads the same rows and neither re-posts nor re-reports them.

Malformed *replies* (truncated XML or JSON, an HTML error page with HTTP 200, a body of the wrong
type, a JSON body that is not UTF-8, ``ERROR:`` text carrying Slack syntax) fail the poll with
``SourceUnavailable``; nothing is enqueued, reported or advanced, the ops alert the flow would
post is safe, and the next good cycle catches up.

After every test, everything the Slack simulator received is scanned: no string in any text or
block may hold an unescaped ``<!``, ``<@``, ``<#``, ``<http`` or ``<mailto`` (so no message can
notify @channel/@here/@everyone or a user, or carry a link the connector did not build), no
control or bidi-override character, and no call may have been refused for its blocks.

The simulators keep typed columns (SYSPRO) or build JSON from typed arguments (GP), so values no
column can hold (an amount that is a word, 30 February, an object where a number belongs, a stray
Windows-1252 byte, a row GP would never send) are written into the reply bytes by ``Front``, a
thin app in front of the simulator, as a database view, a proxy or a broken service could.

The store is a SQLite file per test: these tests are about data, not about the database
(``test_store.py`` and the end-to-end suites run on PostgreSQL too).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import unquote

import pytest

from erp_slack.alerts import raise_alert
from erp_slack.errors import SourceUnavailable
from erp_slack.model import Entity
from erp_slack.slack.gateway import SlackGateway
from erp_slack.sources.gp.client import GpClient
from erp_slack.sources.gp.entities import ENTITIES as GP_ENTITIES
from erp_slack.sources.http import RetryPolicy
from erp_slack.sources.syspro.client import connect
from erp_slack.sources.syspro.entities import entities_for
from erp_slack.store import Store
from simulators._http import Request, Response, serve_on_loopback
from simulators.gp import GpSimulator
from simulators.slack import block_text_length, validate_blocks
from simulators.syspro import SysproSimulator
from tests._cycle import Cycle, run_cycle
from tests._fixtures_slack import SlackSimServer

OPS_CHANNEL = "#finance-alerts"
# Slack's control sequences: a special mention, a user, a channel, a link.
UNSAFE = re.compile(r"<\s*(?:[!@#]|https?:|mailto:)", re.IGNORECASE)
# What clean_text removes: C0 controls but tab and newline, DEL, zero-width and bidi controls.
INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# Slack's answers for a message whose content it refuses.
REFUSED_CONTENT = {"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long", "msg_too_long", "no_text",
                   "invalid_metadata_format"}
LIVE = ("pending", "sending", "sent")


# --- a hostile middle between client and simulator ---------------------------------------------


class Front:
    """Serves one simulator and edits its replies on the way out.

    ``edit`` registers a function ``(path, body) -> body`` applied to every successful API reply
    (control calls are made in-process and never pass here); ``reply`` replaces whole answers
    while it is set, for malformed-reply cases.
    """

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.edits: list[Callable[[str, bytes], bytes]] = []
        self.hits: list[int] = []  # replies each edit changed: an edit that never hits tests nothing
        self.reply: Callable[[Request, Response], Response] | None = None

    def edit(self, fn: Callable[[str, bytes], bytes]) -> None:
        self.edits.append(fn)
        self.hits.append(0)

    def handle(self, request: Request) -> Response:
        resp = self.sim.handle(request)
        if resp.status == 200 and not resp.drop:
            path = unquote(request.path)
            for i, edit in enumerate(self.edits):
                body = edit(path, resp.body)
                self.hits[i] += body != resp.body
                resp.body = body
        if self.reply is not None and resp.status == 200:
            resp = self.reply(request, resp)
        return resp

    def swap(self, old: bytes, new: bytes) -> None:
        """Replace ``old`` with ``new`` in every reply (a value no typed column can hold)."""
        self.edit(lambda path, body: body.replace(old, new))

    def splice(self, table: str, *items: str) -> None:
        """Add raw JSON items to every GP list reply of ``table`` (rows GP's own API would not build)."""
        raw = ",".join(items).encode("utf-8")

        def edit(path: str, body: bytes) -> bytes:
            head, found, tail = body.partition(b'"Payload":[')
            if not found or not path.endswith("/" + table):
                return body
            return head + found + raw + (b"" if tail.startswith(b"]") else b",") + tail

        self.edit(edit)


# --- the rig: one source, one store, one Slack --------------------------------------------------


@dataclass
class Rig:
    """One source simulator behind a ``Front``, one SQLite store and one Slack simulator."""

    source: str  # "enet", "odata" or "gp"
    sim: Any
    front: Front
    url: str
    store: Store
    slack: SlackSimServer
    entity: Entity
    good_rows: int = 0

    @property
    def system(self) -> str:
        return "gp" if self.source == "gp" else "syspro"

    @property
    def company(self) -> str:
        return self.sim.company if self.source == "gp" else "EDU1"

    def client(self) -> Any:
        if self.source == "gp":
            return GpClient(f"{self.url}/GPService", self.sim.tenant, self.sim.company, self.sim.username,
                            self.sim.password, timeout=5.0, sleep=lambda s: None,
                            retry=RetryPolicy(attempts=2, timeout=5.0))
        return connect(self.source, base_url=self.url, operator="ENET01", company="EDU1",
                       operator_password="secret", odata_password="odata-secret", timeout=5.0,
                       sleep=lambda s: None, retry=RetryPolicy(attempts=2, timeout=5.0))

    def cycle(self, *, digest_threshold: int = 50) -> Cycle:
        """Poll the entity into the outbox and drain it to Slack, one message per record unless
        ``digest_threshold`` is lowered."""
        return run_cycle(self.client(), [self.entity], self.store, self.slack, digest_threshold=digest_threshold)

    def good_row(self) -> list[str]:
        """Write one ordinary document of the entity; returns its record keys."""
        self.good_rows += 1
        n, sim = self.good_rows, self.sim
        name = self.entity.name
        if self.source != "gp" and name == "ap_invoice":
            sim.insert_invoice(supplier="0000002", invoice=f"GOOD-{n}", amount=f"{n}0.00", post_journal=False)
            return [f"0000002|GOOD-{n}"]
        if self.source != "gp" and name == "gl_journal":
            rows = sim.insert_gl_journal([("20-2400", f"{n}.00", f"Good line {n}"), ("20-2100", f"-{n}.00", "Good")])
            return ["|".join(str(row[c]).strip() for c in self.entity.key) for row in rows]
        if name == "vendor":
            sim.add_vendor(f"GOOD{n:04d}", f"Good Vendor {n}")
            return [f"GOOD{n:04d}"]
        if name == "payables_invoice":
            return ["Invoice|" + sim.add_invoice("ACETRAVE0001", f"GOOD-{n}", f"{n}0.00", posted=True)]
        if name == "purchase_order":
            return [sim.add_po("ACETRAVE0001", [("GOOD-ITEM", f"Good item {n}", 1, "10.00")])]
        if name == "gl_journal":
            today = datetime.now(timezone.utc).date()
            jid = sim.post_gl_entry([("000-6400-00", f"{n}.00", 0), ("000-2300-00", 0, f"{n}.00")], trx_date=today)
            return [f"{jid}|{today.year}|16384", f"{jid}|{today.year}|32768"]
        raise AssertionError(f"no good row for {self.source} {name}")

    # -- what happened, read back from SQL and from Slack --

    def deliveries(self, key: str | None = None) -> list[dict[str, Any]]:
        where: dict[str, Any] = {"dry_run": False, "entity": self.entity.name}
        if key is not None:
            where["record_key"] = key
        return self.store.deliveries(**where)

    def bad_records(self) -> list[dict[str, Any]]:
        return self.store.audit_rows("bad_record")

    def watermark(self) -> Any:
        return self.store.watermark(self.system, self.company, self.entity.name)

    def posts(self) -> int:
        return self.slack.sim.call_counts()["chat.postMessage"]

    def message_of(self, delivery: Mapping[str, Any]) -> dict[str, Any]:
        found = [m for m in self.slack.sim.posted() if delivery["uid"] in _uids(m)]
        assert len(found) == 1, f"delivery {delivery['record_key']!r} is in {len(found)} Slack messages"
        return found[0]


@pytest.fixture
def rigs(tmp_path: Path, slack_sim_factory: Callable[..., SlackSimServer]) -> Iterator[Callable[[str, str], Rig]]:
    """``rigs(source, entity)``: a fresh rig; everything is shut down when the test ends."""
    with contextlib.ExitStack() as stack:

        def make(source: str, entity: str) -> Rig:
            if source == "gp":
                sim: Any = stack.enter_context(GpSimulator())
                table = {e.name: e for e in GP_ENTITIES}
            else:
                sim = SysproSimulator()
                table = {e.name: e for e in entities_for(source)}
            front = Front(sim)
            served = stack.enter_context(serve_on_loopback(front))
            store = Store(f"sqlite:///{tmp_path / f'{source}-{entity}.db'}")
            stack.callback(store.dispose)
            # Pacing is not the subject here (test_send.py proves it); Block Kit validation is on.
            slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
            return Rig(source, sim, front, served.url, store, slack, table[entity])

        yield make


# --- reading Slack --------------------------------------------------------------------------------


def _uids(message: Mapping[str, Any]) -> list[str]:
    return list(((message.get("metadata") or {}).get("event_payload") or {}).get("deliveries") or [])


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _strings(v)


def _readable(message: Mapping[str, Any]) -> str:
    """Everything a person can read in a message: the fallback text and every block's strings."""
    return "\n".join([message.get("text") or "", *_strings(message.get("blocks") or [])])


def assert_slack_safe(slack: SlackSimServer) -> None:
    """Nothing Slack received can ping, link, hide text, or break a Block Kit limit."""
    sim = slack.sim
    refused = [(c.method, c.error) for c in sim.calls if c.error in REFUSED_CONTENT]
    assert refused == [], f"Slack refused message content: {refused}"
    sent = [c.args for c in sim.calls if c.method in ("chat.postMessage", "chat.update")]
    stored = sim.posted()
    for payload in [*sent, *stored]:
        content = {k: payload.get(k) for k in ("text", "blocks", "attachments")}
        for s in _strings(content):
            assert not UNSAFE.search(s), f"unescaped Slack control sequence in {s[:200]!r}"
            assert not INVISIBLE.search(s), f"control or bidi character in {s[:200]!r}"
    for m in stored:
        if m.get("blocks"):
            assert validate_blocks(m["blocks"]) == []
            assert block_text_length(m["blocks"]) <= sim.max_block_text


def assert_delivered_once(rig: Rig, key: str, *, versions: int = 1) -> list[dict[str, Any]]:
    """The record has ``versions`` live deliveries, all sent, each in exactly one Slack message."""
    rows = [r for r in rig.deliveries(key) if r["status"] in LIVE]
    assert len(rows) == versions, f"{key!r}: {len(rows)} deliveries, expected {versions}"
    assert [r["status"] for r in rows] == ["sent"] * versions, f"{key!r}: {[r['status'] for r in rows]}"
    for r in rows:
        rig.message_of(r)
    return rows


def assert_nothing_broke(rig: Rig) -> None:
    """No lane crashed, nothing failed or was dead-lettered, nothing is left pending."""
    trouble = [a for a in rig.store.audit_rows() if a["kind"] in ("drain_error", "dead_letter", "delivery_failed")]
    assert trouble == []
    counts = rig.store.counts()
    assert {k: v for k, v in counts.items() if k in ("pending", "sending", "failed", "dead")} == {}


# --- what a case expects --------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarantined:
    """The row goes to ``audit_events`` as ``bad_record``.

    ``key`` is a regular expression the audit row's ``record_key`` must match in full, or None
    for a row without a usable key (the audit row then names no key, or a ``#row-`` fingerprint
    of the row's content). ``reason`` is searched in the audit message; ``rows`` is how many such
    audit rows the planted data gives.
    """

    key: str | None
    reason: str
    rows: int = 1


@dataclass(frozen=True)
class Delivered:
    """The row reaches Slack, safely.

    ``shows`` are texts (in Slack's escaped form) its message must contain; ``hides`` texts no
    message may contain; ``versions`` how many deliveries the record gets; ``check`` a last look
    at the message.
    """

    key: str
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()
    channel: str | None = None
    versions: int = 1
    check: Callable[[dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class Either:
    """Placeholder values (1900-01-01, 9999-12-31) may be read as "no date" or refused."""

    quarantined: Quarantined
    delivered: Delivered


Outcome = Quarantined | Delivered | Either
Planted = Mapping[str, str]


@dataclass(frozen=True)
class Case:
    source: str
    entity: str
    plant: Callable[[Rig], Planted | None]
    expect: Outcome


# --- building hostile data ------------------------------------------------------------------------

NO_KEY = None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def syspro_invoice(invoice: str, *, supplier: str = "0000001", amount: Any = "10.00",
                   swaps: Sequence[tuple[bytes, bytes]] = (), **columns: Any) -> Callable[[Rig], None]:
    """An ApInvoice row; ``swaps`` edit the reply bytes; ``columns`` set any other column."""

    def plant(rig: Rig) -> None:
        rig.sim.insert_invoice(supplier=supplier, invoice=invoice, amount=amount, post_journal=False, **columns)
        for old, new in swaps:
            rig.front.swap(old, new)

    return plant


def syspro_named_supplier(name: str, invoice: str = "H-NAME") -> Callable[[Rig], None]:
    """A supplier called ``name`` (shown through the ApSupplier lookup) and one invoice from it."""

    def plant(rig: Rig) -> None:
        rig.sim.upsert("ApSupplier", {"Supplier": "0000090", "SupplierName": name, "Currency": "$",
                                      "TermsCode": "30", "Branch": "10"})
        rig.sim.insert_invoice(supplier="0000090", invoice=invoice, amount="42.00", post_journal=False)

    return plant


def syspro_padded_twin(invoice: str, padded: str) -> Callable[[Rig], None]:
    """The same invoice twice: once as ``invoice``, once with its key padded the SQL char way."""

    def plant(rig: Rig) -> None:
        row = rig.sim.insert_invoice(supplier="0000001", invoice=invoice, amount="12.00", post_journal=False)
        twin = {k: v for k, v in row.items() if k != "TimeStamp"}
        twin["Invoice"] = padded
        rig.sim.upsert("ApInvoice", twin)
        # SQL compares char keys ignoring trailing blanks only: the leading ones make a second row.
        assert sum(r["Invoice"].strip() == invoice for r in rig.sim.rows("ApInvoice")) == 2

    return plant


def syspro_duplicated_row(invoice: str) -> Callable[[Rig], None]:
    """An invoice whose ``<Row>`` the reply carries twice."""

    def plant(rig: Rig) -> None:
        rig.sim.insert_invoice(supplier="0000001", invoice=invoice, amount="13.00", post_journal=False)
        row = re.compile(rb"<Row>\n(?:(?!</Row>).)*?<Invoice>" + re.escape(invoice.encode()) + rb"</Invoice>.*?</Row>\n",
                         re.DOTALL)
        rig.front.edit(lambda path, body: row.sub(lambda m: m.group(0) * 2, body))

    return plant


def syspro_gl_remark(remark: str) -> Callable[[Rig], Planted]:
    """A GL journal whose first line carries ``remark`` as its comment; returns that line's key."""

    def plant(rig: Rig) -> Planted:
        rows = rig.sim.insert_gl_journal([("20-2400", "10.00", remark), ("20-2100", "-10.00", "Counter entry")],
                                         reference="REMARK")
        return {"line": "|".join(str(rows[0][c]).strip() for c in rig.entity.key)}

    return plant


def gp_items(table: str, *items: Mapping[str, Any] | str) -> Callable[[Rig], None]:
    """Raw items in GP's list reply; a mapping is dumped to JSON (``"{now}"`` becomes a fresh
    UTC ``ModifiedDate``), a string goes on the wire exactly as written."""

    def plant(rig: Rig) -> None:
        now = _now()
        raw = [i.replace("{now}", now) if isinstance(i, str)
               else json.dumps(i, ensure_ascii=False).replace("{now}", now) for i in items]
        rig.front.splice(table, *raw)

    return plant


VENDORS = "Purchasing/Vendors"
PAYABLES = "Purchasing/Payables/Transactions"
GL = "Financials/GeneralLedger/Transactions"


def gp_payable(voucher: str, **changes: Any) -> dict[str, Any]:
    """A posted payables invoice as GP's list reply carries it; ``changes`` override members."""
    item: dict[str, Any] = {
        "Key": {"Id": voucher}, "Type": "Invoice", "TransactionState": "Open",
        "VendorKey": {"Id": "ACETRAVE0001"}, "VendorName": "A Travel Company",
        "VendorDocumentNumber": f"DOC-{voucher}", "Date": "2024-03-20T00:00:00", "DueDate": "2024-04-19T00:00:00",
        "DocumentAmount": {"Value": 99.5, "Currency": "Z-US$"}, "CurrentTrxAmount": {"Value": 99.5, "Currency": "Z-US$"},
        "OnHold": False, "WorkflowStatus": "Approved", "PONumber": "", "BatchKey": {"Id": "AP-HOSTILE"},
        "ModifiedDate": "{now}",
    }
    item.update(changes)
    return item


def gp_payable_literal(voucher: str, amount: str) -> str:
    """A payables item whose amount is written as raw JSON number text (``1e400``, ``NaN``)."""
    text = json.dumps(gp_payable(voucher), ensure_ascii=False)
    return text.replace('"DocumentAmount": {"Value": 99.5', '"DocumentAmount": {"Value": ' + amount)


def gp_vendor(vendor_id: str, name: str, **kw: Any) -> Callable[[Rig], None]:
    def plant(rig: Rig) -> None:
        rig.sim.add_vendor(vendor_id, name, **kw)

    return plant


def gp_document_number(number: str) -> Callable[[Rig], Planted]:
    def plant(rig: Rig) -> Planted:
        return {"voucher": rig.sim.add_invoice("ACETRAVE0001", number, "64.00", posted=True)}

    return plant


def gp_buyer(buyer: str) -> Callable[[Rig], Planted]:
    def plant(rig: Rig) -> Planted:
        return {"po": rig.sim.add_po("ACETRAVE0001", [("HOSTILE", "Hostile item", 2, "5.00")], buyer=buyer)}

    return plant


def gp_gl_description(description: str) -> Callable[[Rig], Planted]:
    def plant(rig: Rig) -> Planted:
        today = datetime.now(timezone.utc).date()
        jid = rig.sim.post_gl_entry([("000-6400-00", "7.00", 0, description), ("000-2300-00", 0, "7.00", "Counter")],
                                    trx_date=today)
        return {"jid": str(jid), "year": str(today.year)}

    return plant


def _described(start: str) -> Callable[[dict[str, Any]], None]:
    """A check: the Description field holds the start of the long text, cut with an ellipsis
    within a section field's 2,000 characters."""

    def check(message: dict[str, Any]) -> None:
        fields = [f["text"] for b in message["blocks"] for f in b.get("fields") or []]
        (description,) = [f for f in fields if f.startswith("*Description*")]
        assert description.startswith(f"*Description*\n{start}")
        assert description.endswith("…") and len(description) <= 2000

    return check


def _short_header(message: dict[str, Any]) -> None:
    header = message["blocks"][0]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert header["text"]["text"].endswith("…")


LONG = "Long remark. " * 4000  # ~52 KB
WIN1252 = "Société “Zürich” – € naïve"

# --- the corpus -------------------------------------------------------------------------------------

CASES = [
    # Missing and null keys and values.
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-MISSING", swaps=[
        (b"<Invoice>H-MISSING</Invoice>", b"<Invoice/>")]),
        Quarantined(NO_KEY, r"key column Invoice is missing")), id="syspro-enet-missing-key"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-NULL", swaps=[
        (b'"Invoice":"H-NULL"', b'"Invoice":null')]),
        Quarantined(NO_KEY, r"key column Invoice is missing")), id="syspro-odata-null-key"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-NOAMOUNT", amount=None),
                      Quarantined(r"0000001\|H-NOAMOUNT", r"amount \(OrigInvValue\) is missing")),
                 id="syspro-enet-null-required-amount"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, {"Name": "Vendor without a key", "ModifiedDate": "{now}"}),
                      Quarantined(NO_KEY, r"key column Key\.Id is missing")), id="gp-vendor-missing-key"),
    pytest.param(Case("gp", "payables_invoice", gp_items(PAYABLES, gp_payable("V-NULLVEND", VendorKey={"Id": None})),
                      Quarantined(r"Invoice\|V-NULLVEND", r"supplier \(VendorKey\.Id\) is missing")),
                 id="gp-payables-null-vendor"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, {"Key": {"Id": "NOSTAMP1"}, "Name": "No ModifiedDate"}),
                      Quarantined(NO_KEY, r"ModifiedDate is missing")), id="gp-vendor-missing-cursor"),
    # Wrong types.
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-WORD", amount="12.34", swaps=[
        (b"<OrigInvValue>12.34</OrigInvValue>", b"<OrigInvValue>twelve</OrigInvValue>")]),
        Quarantined(r"0000001\|H-WORD", r"amount \(OrigInvValue\): not a number")), id="syspro-enet-amount-is-a-word"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-BOOL", amount="12.35", swaps=[
        (b'"OrigInvValue":12.35', b'"OrigInvValue":true')]),
        Quarantined(r"0000001\|H-BOOL", r"amount \(OrigInvValue\): a boolean is not an amount")),
        id="syspro-odata-amount-is-boolean"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-OBJECT", amount="12.36", swaps=[
        (b'"OrigInvValue":12.36', b'"OrigInvValue":{"Value":12.36}')]),
        Quarantined(NO_KEY, r"column OrigInvValue holds a nested value")), id="syspro-odata-amount-is-object"),
    pytest.param(Case("gp", "payables_invoice", gp_items(PAYABLES, gp_payable(
        "V-TEXTAMT", DocumentAmount={"Value": "12.50 EUR", "Currency": "Z-US$"})),
        Quarantined(r"Invoice\|V-TEXTAMT", r"amount \(DocumentAmount\.Value\): not a number")),
        id="gp-payables-amount-is-text"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, '"a string, not a vendor"', "null", "[1, 2]"),
                      Quarantined(NO_KEY, r"list item is not a JSON object", rows=3)), id="gp-vendor-items-not-objects"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, {"Key": {"Id": {"Inner": "X"}}, "Name": "Key is an object",
                                                         "ModifiedDate": "{now}"}),
                      Quarantined(NO_KEY, r"key column Key\.Id is missing")), id="gp-vendor-key-is-object"),
    pytest.param(Case("gp", "gl_journal", gp_items(GL, {
        "Key": {"JournalId": 9001, "Year": 2024}, "TransactionState": "Open", "Reference": "Lines is text",
        "TransactionDate": "2024-03-20T00:00:00", "Lines": "not a list", "ModifiedDate": "{now}"}),
        Quarantined(NO_KEY, r"Lines is not a list")), id="gp-gl-lines-not-a-list"),
    # Negative, huge and non-finite amounts.
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-NEGATIVE", amount="-1234.56"),
                      Delivered("0000001|H-NEGATIVE", shows=("-$1,234.56",))), id="syspro-enet-negative-amount"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-LARGEST", amount="999999999999999.99"),
                      Delivered("0000001|H-LARGEST", shows=("$999,999,999,999,999.99",), channel="#ap-large")),
                 id="syspro-enet-largest-amount-in-range"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-HUGE", amount="1000000000000000.00"),
                      Quarantined(r"0000001\|H-HUGE", r"amount \(OrigInvValue\): amount out of range")),
                 id="syspro-odata-amount-out-of-range"),
    pytest.param(Case("gp", "payables_invoice", gp_items(PAYABLES, gp_payable_literal("V-1E400", "1e400")),
                      Quarantined(r"Invoice\|V-1E400", r"amount \(DocumentAmount\.Value\): amount out of range")),
                 id="gp-payables-amount-1e400"),
    pytest.param(Case("gp", "payables_invoice", gp_items(PAYABLES, gp_payable_literal("V-NAN", "NaN")),
                      Quarantined(r"Invoice\|V-NAN", r"amount \(DocumentAmount\.Value\): not a finite number")),
                 id="gp-payables-amount-nan"),
    # Dates: 1900, 9999 and days that do not exist.
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-1900", invoice_date="1900-06-15"),
                      Quarantined(r"0000001\|H-1900", r"invoice_date \(InvoiceDate\): date out of range")),
                 id="syspro-enet-date-in-1900"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-EMPTYDATE", due_date="1900-01-01"),
                      Either(Quarantined(r"0000001\|H-EMPTYDATE", r"due_date \(DueDate\)"),
                             Delivered("0000001|H-EMPTYDATE", hides=("1900-01-01",)))),
                 id="syspro-enet-empty-date-1900-01-01"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-9999", due_date="9999-12-31"),
                      Either(Quarantined(r"0000001\|H-9999", r"due_date \(DueDate\)"),
                             Delivered("0000001|H-9999", hides=("9999-12-31",)))), id="syspro-odata-date-9999"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-FEB30", invoice_date="2023-03-17", swaps=[
        (b"<InvoiceDate>2023-03-17</InvoiceDate>", b"<InvoiceDate>2023-02-30</InvoiceDate>")]),
        Quarantined(r"0000001\|H-FEB30", r"invoice_date \(InvoiceDate\): invalid date")), id="syspro-enet-30-february"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-FEB30", invoice_date="2023-03-18", swaps=[
        (b'"InvoiceDate":"2023-03-18T00:00:00Z"', b'"InvoiceDate":"2023-02-30T00:00:00Z"')]),
        Quarantined(r"0000001\|H-FEB30", r"invoice_date \(InvoiceDate\): invalid date")), id="syspro-odata-30-february"),
    pytest.param(Case("gp", "payables_invoice", gp_items(PAYABLES, gp_payable("V-FEB30", Date="2024-02-30T00:00:00")),
                      Quarantined(r"Invoice\|V-FEB30", r"invoice_date \(Date\): invalid date")),
                 id="gp-payables-30-february"),
    pytest.param(Case("gp", "payables_invoice", gp_items(PAYABLES, gp_payable("V-EMPTYDUE", DueDate="1900-01-01T00:00:00")),
                      Either(Quarantined(r"Invoice\|V-EMPTYDUE", r"due_date \(DueDate\)"),
                             Delivered("Invoice|V-EMPTYDUE", hides=("1900-01-01",)))),
                 id="gp-payables-empty-date-1900-01-01"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, {"Key": {"Id": "STAMP9999"}, "Name": "Stamped in 9999",
                                                         "ModifiedDate": "9999-12-31T23:59:59Z"}),
                      Quarantined(NO_KEY, r"ModifiedDate: timestamp out of range")), id="gp-vendor-cursor-in-9999"),
    # Padded keys are the same document; so is a row a reply carries twice.
    pytest.param(Case("enet", "ap_invoice", syspro_padded_twin("000123", "  000123  "),
                      Delivered("0000001|000123")), id="syspro-enet-padded-key-is-the-same-document"),
    pytest.param(Case("odata", "ap_invoice", syspro_padded_twin("000124", "  000124  "),
                      Delivered("0000001|000124")), id="syspro-odata-padded-key-is-the-same-document"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, {"Key": {"Id": "  PAD0001  "}, "Name": "Padded Ltd",
                                                         "ModifiedDate": "2024-03-20T10:00:00.000Z"},
                                              {"Key": {"Id": "PAD0001"}, "Name": "Padded Ltd",
                                               "ModifiedDate": "2024-03-20T10:00:00.000Z"}),
                      Delivered("PAD0001", shows=("Padded Ltd",))), id="gp-vendor-padded-key-is-the-same-document"),
    pytest.param(Case("enet", "ap_invoice", syspro_duplicated_row("H-TWICE"), Delivered("0000001|H-TWICE")),
                 id="syspro-enet-row-twice-in-one-page"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, *[{"Key": {"Id": "DUP0001"}, "Name": "Twice Ltd",
                                                           "ModifiedDate": "2024-03-20T10:00:00.000Z"}] * 2),
                      Delivered("DUP0001", shows=("Twice Ltd",))), id="gp-vendor-row-twice-in-one-page"),
    pytest.param(Case("gp", "vendor", gp_items(VENDORS, {"Key": {"Id": "DUP0002"}, "Name": "First Name Ltd",
                                                         "ModifiedDate": "2024-03-20T10:00:00.000Z"},
                                              {"Key": {"Id": "DUP0002"}, "Name": "Second Name Ltd",
                                               "ModifiedDate": "2024-03-20T10:00:01.000Z"}),
                      Delivered("DUP0002", shows=("Second Name Ltd",), versions=2)),
                 id="gp-vendor-key-twice-with-different-values"),
    # Control characters, bidi overrides, emoji, Windows-1252.
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-CTRL", InvoiceStatus="A\x00B\x07C\x1b[31m"),
                      Quarantined(NO_KEY, r"row is not well-formed XML")), id="syspro-enet-control-chars-break-xml"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-CTRL", InvoiceStatus="A\x00B\x07C\x1b[31m"),
                      Delivered("0000001|H-CTRL", shows=("ABC[31m",))), id="syspro-odata-control-chars"),
    pytest.param(Case("enet", "ap_invoice", syspro_named_supplier("ACME \u202eexe.fdp\u202c Ltd\u200b"),
                      Delivered("0000090|H-NAME", shows=("ACME exe.fdp Ltd",))), id="syspro-enet-rtl-override"),
    pytest.param(Case("gp", "vendor", gp_vendor("RTL00001", "Pay\u2066\u202eyap\u2069 \u200fTrading"),
                      Delivered("RTL00001", shows=("Payyap Trading",))), id="gp-vendor-bidi-isolates"),
    pytest.param(Case("odata", "ap_invoice", syspro_named_supplier("Bike 🚲 Parts 👍🏽 & Co 🇿🇦"),
                      Delivered("0000090|H-NAME", shows=("Bike 🚲 Parts 👍🏽 &amp; Co 🇿🇦",))), id="syspro-odata-emoji"),
    pytest.param(Case("enet", "ap_invoice", syspro_named_supplier(WIN1252),
                      Delivered("0000090|H-NAME", shows=(WIN1252,))), id="syspro-enet-windows-1252-text"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-BYTE", InvoiceStatus="XSTATUSX", swaps=[
        (b"<InvoiceStatus>XSTATUSX</InvoiceStatus>", b"<InvoiceStatus>Pa\x81d \x8d</InvoiceStatus>")]),
        Delivered("0000001|H-BYTE", shows=("Pa\ufffdd \ufffd",))), id="syspro-enet-undefined-windows-1252-byte"),
    # Long text.
    pytest.param(Case("enet", "gl_journal", syspro_gl_remark(LONG),
                      Delivered("{line}", shows=("Long remark. Long remark.",), check=_described("Long remark. Long"))),
                 id="syspro-enet-50kb-gl-comment"),
    pytest.param(Case("odata", "ap_invoice", syspro_named_supplier("N" * 50_000),
                      Delivered("0000090|H-NAME", check=_short_header)), id="syspro-odata-50kb-supplier-name"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("K" * 50_000),
                      Quarantined(r"0000001\|K{52}…", r"key is longer than 200 characters")), id="syspro-enet-50kb-key"),
    pytest.param(Case("gp", "gl_journal", gp_gl_description("D" * 50_000),
                      Delivered("{jid}|{year}|16384", check=_described("DDDD"))), id="gp-gl-50kb-line-description"),
    # Slack mention and link syntax, everywhere ERP text is shown.
    pytest.param(Case("enet", "ap_invoice", syspro_named_supplier("<!channel> ACME & Sons"),
                      Delivered("0000090|H-NAME", shows=("&lt;!channel&gt; ACME &amp; Sons",))),
                 id="syspro-enet-channel-mention-in-supplier-name"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("<!here>-77"),
                      Delivered("0000001|<!here>-77", shows=("&lt;!here&gt;-77",))), id="syspro-odata-here-in-the-key"),
    pytest.param(Case("enet", "ap_invoice", syspro_invoice("H-EVERYONE", InvoiceStatus="<!everyone>"),
                      Delivered("0000001|H-EVERYONE", shows=("&lt;!everyone&gt;",))), id="syspro-enet-everyone-in-status"),
    pytest.param(Case("odata", "ap_invoice", syspro_invoice("H-USER", Currency="<@U123>"),
                      Delivered("0000001|H-USER", shows=("&lt;@U123&gt;",))), id="syspro-odata-user-mention-as-currency"),
    pytest.param(Case("gp", "vendor", gp_vendor("CHAN0001", "<#C123|general> Supplies"),
                      Delivered("CHAN0001", shows=("&lt;#C123|general&gt; Supplies",))), id="gp-vendor-channel-link-in-name"),
    pytest.param(Case("gp", "vendor", gp_vendor("TEAM0001", "Team Ltd", city="<!subteam^S1|@finance>"),
                      Delivered("TEAM0001", shows=("&lt;!subteam^S1|@finance&gt;",))), id="gp-vendor-subteam-in-city"),
    pytest.param(Case("gp", "payables_invoice", gp_document_number("<https://evil.example/pay|Click to approve>"),
                      Delivered("Invoice|{voucher}", shows=("&lt;https://evil.example/pay|Click to approve&gt;",))),
                 id="gp-payables-disguised-link-as-document-number"),
    pytest.param(Case("gp", "purchase_order", gp_buyer("<mailto:ceo@evil.example|CEO>"),
                      Delivered("{po}", shows=("&lt;mailto:ceo@evil.example|CEO&gt;",))), id="gp-po-mailto-as-buyer"),
    pytest.param(Case("gp", "vendor", gp_vendor("<!channel>", "Key is a mention"),
                      Delivered("<!channel>", shows=("&lt;!channel&gt;",))), id="gp-vendor-mention-as-the-key"),
    # Markdown and HTML injection, and entities smuggled in.
    pytest.param(Case("enet", "ap_invoice", syspro_named_supplier("*bold* _it_ ~gone~ `code` [x](http://evil.example)"),
                      Delivered("0000090|H-NAME", shows=("[x](http://evil.example)",))), id="syspro-enet-markdown-injection"),
    pytest.param(Case("gp", "vendor", gp_vendor("HTML0001", "<script>alert(1)</script><b>Bold</b>"),
                      Delivered("HTML0001", shows=("&lt;script&gt;alert(1)&lt;/script&gt;",))), id="gp-vendor-html-injection"),
    pytest.param(Case("odata", "ap_invoice", syspro_named_supplier("&lt;!channel&gt; &#60;@U1&#62; &amp;"),
                      Delivered("0000090|H-NAME", shows=("&amp;lt;!channel&amp;gt; &amp;#60;@U1&amp;#62; &amp;amp;",))),
                 id="syspro-odata-escaped-entities-stay-text"),
]


def _resolve(expect: Outcome, planted: Planted) -> Outcome:
    """Fill ``{name}`` placeholders in a delivered record's key from what the plant returned
    (voucher and PO numbers the simulator hands out). Quarantine keys are patterns, left alone."""
    if isinstance(expect, Either):
        return Either(expect.quarantined, _resolve(expect.delivered, planted))  # type: ignore[arg-type]
    if isinstance(expect, Delivered):
        return Delivered(expect.key.format(**planted), expect.shows, expect.hides, expect.channel, expect.versions,
                         expect.check)
    return expect


def _quarantine_rows(rig: Rig, since: int) -> list[dict[str, Any]]:
    return [a for a in rig.bad_records()[since:] if a["entity"] == rig.entity.name]


def _check_quarantined(rig: Rig, expect: Quarantined, rows: list[dict[str, Any]], cycle: Cycle) -> None:
    assert len(rows) == expect.rows, [(a["record_key"], a["message"]) for a in rows]
    for a in rows:
        assert (a["source"], a["company"], a["entity"]) == (rig.system, rig.company, rig.entity.name)
        assert re.search(expect.reason, a["message"]), a["message"]
        if expect.key is None:
            assert a["record_key"] is None or a["record_key"].startswith("#row-"), a["record_key"]
        else:
            assert re.fullmatch(expect.key, a["record_key"]), a["record_key"]
            assert rig.deliveries(a["record_key"]) == []
        assert "row" in a["details"] and a["details"]["url"], a["details"]
    assert cycle.bad == expect.rows


def _check_delivered(rig: Rig, expect: Delivered, cycle: Cycle) -> None:
    assert cycle.bad == 0, [(a["record_key"], a["message"]) for a in rig.bad_records()]
    rows = assert_delivered_once(rig, expect.key, versions=expect.versions)
    message = rig.message_of(rows[-1])
    shown = _readable(message)
    for text in expect.shows:
        assert text in shown, f"{text!r} not in {shown[:600]!r}"
    everything = "\n".join(_readable(m) for m in rig.slack.sim.posted())
    for text in expect.hides:
        assert text not in everything
    if expect.channel is not None:
        assert "#" + message["channel_name"] == expect.channel
    if expect.check is not None:
        expect.check(message)


@pytest.mark.parametrize("case", CASES)
def test_hostile_row_is_quarantined_or_rendered_safely_and_its_page_flows(case: Case, rigs: Callable[..., Rig]) -> None:
    rig = rigs(case.source, case.entity)
    rig.cycle()  # the seed goes out first, so the page under test is short and sent message by message
    audited = len(rig.bad_records())
    before = rig.good_row()
    planted = case.plant(rig) or {}
    after = rig.good_row()

    cycle = rig.cycle()
    assert all(rig.front.hits), f"a planted reply edit never matched: {rig.front.hits}"

    expect = _resolve(case.expect, planted)
    quarantined = _quarantine_rows(rig, audited)
    if isinstance(expect, Either):
        expect = expect.quarantined if quarantined else expect.delivered
    if isinstance(expect, Quarantined):
        _check_quarantined(rig, expect, quarantined, cycle)
    else:
        assert quarantined == []
        _check_delivered(rig, expect, cycle)
    # The rest of the page flowed: the good rows on either side were posted once each.
    for key in before + after:
        assert_delivered_once(rig, key)
    assert_nothing_broke(rig)

    # The next cycle re-reads the same rows (closed cursor bound, lookback) and does nothing new.
    posts, audit_rows = rig.posts(), len(rig.bad_records())
    again = rig.cycle()
    assert (again.new, again.updated) == (0, 0)
    assert rig.posts() == posts
    assert [a for a in rig.bad_records()[audit_rows:] if a["record_key"] is not None] == []
    assert_slack_safe(rig.slack)


def test_the_corpus_is_big_and_covers_both_sources() -> None:
    sources = Counter(p.values[0].source for p in CASES)
    assert len(CASES) >= 30 and sources["gp"] >= 10 and sources["enet"] >= 8 and sources["odata"] >= 8
    assert len({p.id for p in CASES}) == len(CASES)


# --- a page full of hostile rows goes out as digests ------------------------------------------------

MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C123>", "<!subteam^S1>", "<https://evil|click>",
            "<mailto:x@y|x>", "*bold*", "<script>", "[x](http://evil)", "\u202eevil", "a\x07b")


def _plant_everything(rig: Rig) -> None:
    for n, text in enumerate(MENTIONS):
        if rig.source == "gp":
            rig.sim.add_vendor(f"ALL{n:05d}", f"{text} vendor", city=text)
        else:
            code = f"00009{n:02d}"
            rig.sim.upsert("ApSupplier", {"Supplier": code, "SupplierName": f"{text} supplier", "Currency": "$"})
            rig.sim.insert_invoice(supplier=code, invoice=f"ALL-{n}-{text}", amount=f"{n + 1}.00", post_journal=False,
                                   InvoiceStatus=text)


@pytest.mark.parametrize("source", ["enet", "odata", "gp"])
def test_a_page_of_hostile_rows_goes_out_as_safe_digests(source: str, rigs: Callable[..., Rig]) -> None:
    rig = rigs(source, "vendor" if source == "gp" else "ap_invoice")
    _plant_everything(rig)
    cycle = rig.cycle(digest_threshold=5)
    assert cycle.bad == (1 if source == "enet" else 0)  # the BEL character makes one e.net row ill-formed XML
    live = [r for r in rig.deliveries() if r["status"] in LIVE]
    assert len(live) >= len(MENTIONS) and all(r["status"] == "sent" for r in live)
    seen = Counter(uid for m in rig.slack.sim.posted() for uid in _uids(m))
    assert seen == Counter({r["uid"]: 1 for r in live})
    assert max(len(_uids(m)) for m in rig.slack.sim.posted()) > 1  # the deep lane went out as digests
    assert_nothing_broke(rig)
    assert_slack_safe(rig.slack)


# --- malformed replies ----------------------------------------------------------------------------


def _xml_labelled_json(request: Request, resp: Response) -> Response:
    if "Query/Query" not in request.path:
        return resp
    return Response(200, b'{"error": "this is not COMFND"}', {"Content-Type": "application/json"})


def _atom_instead_of_json(request: Request, resp: Response) -> Response:
    body = (b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            b"<title>ApInvoice</title><entry><content/></entry></feed>")
    return Response(200, body, {"Content-Type": "application/atom+xml;type=feed"})


def _json_labelled_html(request: Request, resp: Response) -> Response:
    return Response(200, resp.body, {"Content-Type": "text/html; charset=utf-8"})


def _soap_fault(request: Request, resp: Response) -> Response:
    body = (b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b"<s:Fault><faultstring>&lt;!channel&gt; GP Web Services is down</faultstring></s:Fault></s:Body></s:Envelope>")
    return Response(200, body, {"Content-Type": "text/xml; charset=utf-8"})


def _not_utf8(request: Request, resp: Response) -> Response:
    # "Nordic Süpply AB" with the ü as the single Windows-1252 byte 0xFC: not UTF-8 any more.
    return Response(200, resp.body.replace("ü".encode(), b"\xfc"), dict(resp.headers))


@dataclass(frozen=True)
class Fault:
    """How to break the replies: a simulator fault (``inject``) or a ``Front`` reply override."""

    source: str
    inject: Callable[[Any], None] | None = None
    reply: Callable[[Request, Response], Response] | None = None

    def on(self, rig: Rig) -> None:
        if self.inject is not None:
            self.inject(rig.sim)
        rig.front.reply = self.reply

    def off(self, rig: Rig) -> None:
        rig.sim.clear_faults()
        rig.front.reply = None


MALFORMED = [
    pytest.param(Fault("enet", inject=lambda s: s.inject("truncated", times=99, path="Query/Query")),
                 id="syspro-enet-truncated-xml"),
    pytest.param(Fault("enet", inject=lambda s: s.inject("html", times=99, path="Query/Query")),
                 id="syspro-enet-html-error-page-with-200"),
    pytest.param(Fault("enet", reply=_xml_labelled_json), id="syspro-enet-json-instead-of-xml"),
    pytest.param(Fault("enet", inject=lambda s: s.inject(
        "error_text", times=99, path="Query/Query", text="ERROR: <!channel> e.net licence <@U1> exceeded")),
        id="syspro-enet-error-text-with-slack-syntax"),
    pytest.param(Fault("odata", inject=lambda s: s.inject("truncated", times=99, path="odata")),
                 id="syspro-odata-truncated-json"),
    pytest.param(Fault("odata", inject=lambda s: s.inject("html", times=99, path="odata")),
                 id="syspro-odata-html-error-page-with-200"),
    pytest.param(Fault("odata", reply=_atom_instead_of_json), id="syspro-odata-atom-xml-instead-of-json"),
    pytest.param(Fault("gp", inject=lambda s: s.inject("truncated", times=99, path=VENDORS)), id="gp-truncated-json"),
    pytest.param(Fault("gp", inject=lambda s: s.inject("html", times=99, path=VENDORS)),
                 id="gp-html-error-page-with-200"),
    pytest.param(Fault("gp", reply=_json_labelled_html), id="gp-json-labelled-text-html"),
    pytest.param(Fault("gp", reply=_soap_fault), id="gp-soap-fault-xml-instead-of-json"),
    pytest.param(Fault("gp", reply=_not_utf8), id="gp-json-with-a-windows-1252-byte"),
]


@pytest.mark.parametrize("fault", MALFORMED)
def test_malformed_reply_fails_cleanly_and_the_next_cycle_catches_up(fault: Fault, rigs: Callable[..., Rig]) -> None:
    rig = rigs(fault.source, "vendor" if fault.source == "gp" else "ap_invoice")
    rig.cycle()
    watermark, deliveries, posts, audited = rig.watermark(), rig.deliveries(), rig.posts(), len(rig.bad_records())
    fresh = rig.good_row()

    fault.on(rig)
    with pytest.raises(SourceUnavailable) as caught:
        rig.cycle()
    # Nothing moved: no watermark, no outbox row, no post, no row blamed for the server's reply.
    assert rig.watermark() == watermark
    assert rig.deliveries() == deliveries
    assert rig.posts() == posts
    assert len(rig.bad_records()) == audited
    if rig.source == "enet":
        assert rig.sim.sessions() == []  # logged off even though the poll failed
    # The flow tells the ops channel, quoting the error; that text must be as safe as any other.
    gateway = SlackGateway(rig.slack.token, base_url=rig.slack.url, timeout=5)
    assert raise_alert(rig.store, gateway, OPS_CHANNEL, source=rig.system, company=rig.company,
                       problem=str(caught.value), advice="Check the ERP web service.")
    if "<!channel>" in str(caught.value):
        assert "&lt;!channel&gt;" in _readable(rig.slack.sim.posted(OPS_CHANNEL)[-1])

    fault.off(rig)
    rig.cycle()
    assert_delivered_once(rig, fresh[0])
    assert rig.watermark() != watermark
    assert_nothing_broke(rig)
    assert_slack_safe(rig.slack)
