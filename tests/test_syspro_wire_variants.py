"""SYSPRO as its documentation allows it to behave, not only as our simulator's defaults do.

Each undocumented wire habit is a simulator switch; each test runs the real client, pipeline,
store and Slack simulator across the switch's values and asserts every record and every change
reaches Slack exactly once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import pytest

from erp_slack.errors import SourceUnavailable, SourceUnreachable
from erp_slack.store import Store
from simulators._http import serve_on_loopback
from simulators.syspro import TIMESTAMP_FORMATS, SysproSimulator
from tests._cycle import run_cycle
from tests._fixtures_syspro import AuditLog, ClientFactory, SysproServed


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[SysproServed]:
    sim = SysproSimulator(**getattr(request, "param", {}))
    with serve_on_loopback(sim) as s:
        yield SysproServed(sim=sim, url=s.url)


def _cycle(served: SysproServed, store: Store, slack: Any, transport: str, **client: Any) -> dict[str, int]:
    """One run (the core cycle, baseline first run); returns records read per entity."""
    c = ClientFactory(served, AuditLog())(transport, **client)
    summary = run_cycle(c, c.entities, store, slack, first_run="baseline")
    return {p.entity: p.rows_seen for p in summary.polls}


def _posted(slack: Any, store: Store) -> Counter[tuple[str, str, str]]:
    """(entity, record key, event) of every delivery in a Slack message, counted."""
    by_uid = {r["uid"]: r for r in store.deliveries(dry_run=False)}
    out: Counter[tuple[str, str, str]] = Counter()
    for m in slack.sim.posted():
        for uid in ((m.get("metadata") or {}).get("event_payload") or {}).get("deliveries") or []:
            r = by_uid[uid]
            out[(r["entity"], r["record_key"], r["event"])] += 1
    return out


LETTER_FREE = [pytest.param({"timestamp_format": f, "first_rowversion": 0x100000}, id=f) for f in TIMESTAMP_FORMATS]


@pytest.mark.parametrize("served", LETTER_FREE, indirect=True)
def test_rowversions_without_hex_letters_lose_nothing(served, store, slack_sim_factory):
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    assert all(c in "0123456789" for c in f"{served.sim.rowversion:016X}")
    _cycle(served, store, slack, "enet")  # the first run: a baseline, nothing posted
    assert slack.sim.posted() == []

    invoices = [served.sim.insert_invoice(invoice=f"LF-{i:03d}", amount=f"{100 + i}.00") for i in range(50)]
    po = next(r["PurchaseOrder"] for r in served.sim.rows("PorMasterHdr") if r["OrderStatus"] == "1")
    served.sim.set_po_status(po, "4")
    paid = served.sim.rows("ApInvoice")[0]
    served.sim.pay_invoice(paid["Supplier"], paid["Invoice"])
    _cycle(served, store, slack, "enet")

    posted = _posted(slack, store)
    assert all(n == 1 for n in posted.values()), [k for k, n in posted.items() if n > 1]
    new_invoices = {f"{r['Supplier'].strip()}|{r['Invoice'].strip()}" for r in invoices}
    assert {k for (e, k, ev) in posted if e == "ap_invoice" and ev == "created"} == new_invoices
    assert ("purchase_order", po.strip(), "status_change") in posted
    paid_key = f"{paid['Supplier'].strip()}|{paid['Invoice'].strip()}"
    assert any(e == "ap_invoice" and k == paid_key and ev != "created" for (e, k, ev) in posted)
    assert not [r for r in store.audit_rows() if r["kind"] in ("bad_record", "out_of_window")]

    _cycle(served, store, slack, "enet")  # nothing new: nothing posted
    assert sum(_posted(slack, store).values()) == sum(posted.values())


@pytest.mark.parametrize("served", [{"first_rowversion": 0x100000}], indirect=True)
def test_a_rowversion_in_an_unexpected_format_is_quarantined_not_dropped(served, store, slack_sim_factory,
                                                                          monkeypatch):
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    _cycle(served, store, slack, "enet")
    served.sim.insert_invoice(invoice="ODD-TS")
    # A rendering no documentation describes: the rows are quarantined, with the reason, not lost.
    # The page's rows are quarantined with the reason, and the read stops loudly: it cannot ask
    # for the rows after a value it cannot read, and it never pretends the table ended there.
    monkeypatch.setitem(TIMESTAMP_FORMATS, "words", lambda v: f"version {v}")
    served.sim.timestamp_format = "words"
    with pytest.raises(SourceUnavailable, match="cannot page past"):
        _cycle(served, store, slack, "enet")
    bad = store.audit_rows("bad_record")
    assert bad and all("not a hexadecimal rowversion" in r["message"] for r in bad)
    assert store.watermark("syspro", served.company, "ap_invoice")[1] < served.sim.rowversion


@pytest.mark.parametrize("transport", ["enet", "odata"])
def test_pages_carry_the_servers_clock_and_a_missing_server_is_unreachable(served, transport):
    import socket
    from datetime import datetime, timezone

    make = ClientFactory(served, AuditLog())
    with make(transport) as client:
        entity = next(e for e in client.entities if e.name == "ap_invoice")
        page = next(iter(client.pages(entity, since=None)))
    assert page.server_time is not None and abs((page.server_time - datetime.now(timezone.utc)).total_seconds()) < 60

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    with make(transport, base_url=gone) as client, pytest.raises(SourceUnreachable):
        list(client.pages(entity, since=None))


@pytest.mark.parametrize("served", [{}, {"first_rowversion": 0x100000, "comfnd_max_rows": 1}], indirect=True)
def test_an_edited_po_line_posts_the_pos_update_once(served, store, slack_sim_factory):
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    _cycle(served, store, slack, "enet")  # the baseline
    po = next(r for r in served.sim.rows("PorMasterHdr") if r["OrderStatus"] == "1")["PurchaseOrder"]
    line = next(r for r in served.sim.rows("PorMasterDetail") if r["PurchaseOrder"] == po)
    header_ts = served.sim.get("PorMasterHdr", po)["TimeStamp"]
    served.sim.update("PorMasterDetail", (po, line["Line"]), MOrderQty=line["MOrderQty"] + 5)
    assert served.sim.get("PorMasterHdr", po)["TimeStamp"] == header_ts  # the header itself is untouched
    _cycle(served, store, slack, "enet")
    _cycle(served, store, slack, "enet")  # and a quiet run after it posts nothing more
    posted = _posted(slack, store)
    assert posted == Counter({("purchase_order", po.strip(), "updated"): 1})
    (row,) = store.deliveries(entity="purchase_order", event="updated")
    assert '"total"' in row["changes"]
