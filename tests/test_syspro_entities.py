"""Per-entity tests generated from the SYSPRO entity tables.

For every entity of both transports, on what the simulator serves (the seed, a month of
activity on top and some virtual bulk rows): keys are unique and non-null, the cursor column is
present, every row normalises.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from erp_slack.model import Entity, check_entities, normalise
from erp_slack.slack.templates import TEMPLATES
from erp_slack.sources.syspro.entities import (
    DATE_LOOKBACK,
    ENTITIES,
    ENTITIES_ENET,
    ENTITIES_ODATA,
    derivations,
    entities_for,
    source_columns,
)
from simulators.syspro import SysproSimulator

CASES = [("enet", e) for e in ENTITIES_ENET] + [("odata", e) for e in ENTITIES_ODATA]
IDS = [f"{t}-{e.name}" for t, e in CASES]
NAMES = [e.name for e in ENTITIES_ENET]


def _activity(sim: SysproSimulator) -> None:
    """A few more days of business on top of the seed."""
    sim.insert_invoice(supplier="0000004", amount="310.20", reference="Lager & Dichtungen")
    sim.insert_backdated_invoice(days_back=12, supplier="0000002", amount="44.00")
    sim.insert_invoices_on("2024-05-31", 3, supplier="0000005")
    sim.pay_invoice("0000001", "INV-88213", "875.00")
    sim.set_po_status("000422", "4")
    sim.add_po_line("000423", stock_code="6002-2RS", description="Ball bearing 15x32x9", qty=200, price="0.74")
    sim.receive_goods("000422", 1, 250)
    sim.insert_gl_journal([("20-2400", "12.00", "Rounding"), ("20-2100", "-12.00", "Rounding")])
    for table in ("ApInvoice", "PorMasterHdr", "GrnDetails", "ApJnlSummary", "GenJournalDetail"):
        sim.bulk_generate(table, 25, per_day=10)


def _rows(syspro_client: Any, transport: str, entity: Entity) -> list[dict[str, Any]]:
    client = syspro_client(transport, page_size=15)  # still several pages per entity
    return [r for p in client.pages(entity, since=None) for r in p.rows]


@pytest.fixture
def busy_sim(syspro_sim):
    _activity(syspro_sim.sim)
    return syspro_sim


# --- the tables themselves ----------------------------------------------------------------------


def test_both_tuples_pass_check_entities() -> None:
    check_entities(ENTITIES, TEMPLATES)
    check_entities(ENTITIES_ODATA, TEMPLATES)
    assert ENTITIES is ENTITIES_ENET


def test_entities_for_picks_by_transport() -> None:
    assert entities_for("enet") is ENTITIES_ENET and entities_for("odata") is ENTITIES_ODATA
    with pytest.raises(ValueError, match="unknown SYSPRO transport 'soap'"):
        entities_for("soap")


def test_the_two_tuples_differ_only_in_the_cursor() -> None:
    for enet, odata in zip(ENTITIES_ENET, ENTITIES_ODATA):
        assert (enet.name, enet.table, enet.key, enet.template) == (odata.name, odata.table, odata.key, odata.template)
        assert dict(enet.fields) == {**odata.fields, "row_version": "TimeStamp"}
        assert enet.cursor.column == "TimeStamp" and enet.cursor.kind == "rowversion"
        assert odata.cursor.kind == "date" and odata.cursor.lookback == DATE_LOOKBACK == timedelta(days=3)


def test_date_cursors_are_each_documents_posting_or_entry_date() -> None:
    # JournalDate (not InvoiceDate), OrderEntryDate, OrigReceiptDate, TrnDate, EntryDate, OrderDate.
    assert {e.name: e.cursor.column for e in ENTITIES_ODATA} == {
        "ap_invoice": "JournalDate", "purchase_order": "OrderEntryDate", "goods_receipt": "OrigReceiptDate",
        "ap_journal": "TrnDate", "gl_journal": "EntryDate", "sales_order": "OrderDate",
    }


@pytest.mark.parametrize(("transport", "entity"), CASES, ids=IDS)
def test_columns_are_real_syspro_columns(transport: str, entity: Entity) -> None:
    tables = SysproSimulator(seed=False).tables
    assert entity.table in tables
    for col in source_columns(entity):
        assert col in tables[entity.table].pos, f"{entity.table}.{col}"
    assert not any(c.startswith("@") for c in source_columns(entity))
    for d in derivations(entity):
        table = getattr(d, "table", entity.table)
        for col in getattr(d, "needs", ()):
            assert col in tables[entity.table].pos
        if table != entity.table:
            assert d.match in tables[table].pos  # type: ignore[union-attr]


# --- on simulator output ----------------------------------------------------------------------------


@pytest.mark.parametrize(("transport", "entity"), CASES, ids=IDS)
def test_keys_are_unique_and_non_null(busy_sim, syspro_client, transport: str, entity: Entity) -> None:
    rows = _rows(syspro_client, transport, entity)
    assert rows, entity.name
    keys = []
    for r in rows:
        parts = [r.get(k) for k in entity.key]
        assert all(p is not None and str(p).strip() for p in parts), (entity.name, r)
        keys.append(tuple(str(p).rstrip() for p in parts))
    assert len(keys) == len(set(keys))
    assert len(rows) == busy_sim.sim.count(entity.table)


@pytest.mark.parametrize(("transport", "entity"), CASES, ids=IDS)
def test_cursor_column_is_present(busy_sim, syspro_client, transport: str, entity: Entity) -> None:
    for r in _rows(syspro_client, transport, entity):
        assert r.get(entity.cursor.column) not in (None, ""), (entity.name, r)


@pytest.mark.parametrize(("transport", "entity"), CASES, ids=IDS)
def test_every_row_normalises(busy_sim, syspro_client, transport: str, entity: Entity) -> None:
    records = [normalise(entity, "EDU1", r) for r in _rows(syspro_client, transport, entity)]
    template = TEMPLATES[entity.template]
    shown = [s.field for s in template.slots if s.field in entity.fields]
    for rec in records:
        assert rec.source == "syspro" and rec.entity == entity.name
        for f in entity.required:
            assert rec.fields[f] is not None
        if entity.cursor.kind == "rowversion":
            assert isinstance(rec.cursor, int)
        else:
            assert isinstance(rec.cursor, date)
        assert any(rec.fields[f] is not None for f in shown)
    if "supplier_name" in entity.fields:
        assert all(r.fields["supplier_name"] for r in records)  # every seeded supplier resolves


@pytest.mark.parametrize("name", NAMES)
def test_both_transports_see_the_same_documents(busy_sim, syspro_client, name: str) -> None:
    enet = {e.name: e for e in ENTITIES_ENET}[name]
    odata = {e.name: e for e in ENTITIES_ODATA}[name]
    a = {normalise(enet, "EDU1", r).key: normalise(enet, "EDU1", r).fields
         for r in _rows(syspro_client, "enet", enet)}
    b = {normalise(odata, "EDU1", r).key: normalise(odata, "EDU1", r).fields
         for r in _rows(syspro_client, "odata", odata)}
    assert a.keys() == b.keys()
    for key, fields in b.items():
        assert {k: v for k, v in a[key].items() if k != "row_version"} == dict(fields), key


def test_labels_and_derived_fields_render(busy_sim, syspro_client) -> None:
    po = {e.name: e for e in ENTITIES_ENET}["purchase_order"]
    recs = {r.key: r for r in (normalise(po, "EDU1", row) for row in _rows(syspro_client, "enet", po))}
    assert [recs[k].fields["status"] for k in ("000419", "000420", "000421", "000422", "000423")] == [
        "Order printed", "Completed", "Cancelled", "Order printed", "In process"]
    assert recs["000423"].fields["line_count"] == 2
    gl = {e.name: e for e in ENTITIES_ENET}["gl_journal"]
    lines = [normalise(gl, "EDU1", r) for r in _rows(syspro_client, "enet", gl)]
    credit = next(r for r in lines if r.key == "2024|5|12|2")
    assert (credit.fields["amount"], credit.fields["debit"], credit.fields["credit"]) == (
        Decimal("-15.00"), None, Decimal("15.00"))
    assert credit.fields["period"] == "2024-05" and credit.fields["status"] == "Posted"
