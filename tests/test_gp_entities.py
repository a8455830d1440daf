"""Per-entity checks generated from the GP entity table.

For every entity, on simulator output (seed data, changes made through the control API, and
bulk rows): keys are unique and non-null, the cursor column is present, every row normalises,
and the entity table passes ``check_entities``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from erp_slack.model import Entity, check_entities, normalise
from erp_slack.slack.templates import TEMPLATES
from erp_slack.sources.gp.entities import ENTITIES

BY_NAME = {e.name: e for e in ENTITIES}
IDS = [e.name for e in ENTITIES]


def _busy(server) -> None:
    """Give every entity some fresh activity on top of the seed data."""
    sim = server.sim
    sim.add_vendor("GREENLEA0001", "Greenleaf Packaging", city="Omaha", state="NE", phone="40255501000000")
    sim.update_vendor("OLDPRINT0001", active=True)
    sim.add_drafts(2, batch="AP-0401")
    sim.post_batch("AP-0401")
    sim.pay_invoice("00000000000000641")
    po = sim.add_po("SMITHSON0001", [("FRT-100", "Freight, pallet", 3, "85.00"), ("FRT-200", "Liftgate", 1, "40")])
    sim.set_po_status(po, "Released")
    sim.receive_po(po)
    jid = sim.post_gl_entry([("000-6400-00", "5000.00", 0), ("000-2300-00", 0, "5000.00")], reference="April rent")
    sim.void_gl_entry(jid)


def _records(client, entity: Entity, company: str):
    rows = [row for page in client.pages(entity, since=None) for row in page.rows]
    return rows, [normalise(entity, company, row) for row in rows]


def test_entity_table_is_valid():
    check_entities(ENTITIES, TEMPLATES)  # also runs at import
    assert {e.source for e in ENTITIES} == {"gp"}
    assert [e.name for e in ENTITIES] == ["payables_invoice", "purchase_order", "goods_receipt", "gl_journal", "vendor"]


@pytest.mark.parametrize("entity", ENTITIES, ids=IDS)
def test_template_slots_are_all_mapped(entity: Entity):
    slots = {slot.field for slot in TEMPLATES[entity.template].slots}
    assert slots <= set(entity.fields), f"{entity.name} lacks {slots - set(entity.fields)}"


@pytest.mark.parametrize("entity", ENTITIES, ids=IDS)
@pytest.mark.parametrize("include_unposted", [False, True])
def test_simulator_rows_have_unique_keys_a_cursor_and_normalise(gp_sim, entity, include_unposted):
    _busy(gp_sim)
    with gp_sim.client(include_unposted=include_unposted) as client:
        rows, records = _records(client, entity, gp_sim.company)
    assert rows, f"{entity.name}: the simulator returned nothing"
    for row in rows:
        assert entity.cursor.column in row
        for column in entity.key:
            assert row.get(column) not in (None, "")
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)), f"{entity.name}: duplicate keys"
    for rec in records:
        assert rec.cursor.tzinfo is not None and rec.source == "gp" and rec.company == "Fabrikam, Inc."


@pytest.mark.parametrize("entity", ENTITIES, ids=IDS)
def test_bulk_rows_normalise(gp_sim_factory, entity):
    kind = {"payables_invoice": "payables", "purchase_order": "purchase_orders", "goods_receipt": "receipts",
            "gl_journal": "gl", "vendor": "vendors"}[entity.name]
    server = gp_sim_factory(page_size=40, seed=True)
    server.sim.generate(kind, 100)
    with server.client() as client:
        rows, records = _records(client, entity, server.company)
    assert len({r.key for r in records}) == len(rows) >= 100


@pytest.mark.parametrize("envelope", ["payload", "bare", "webservices"])
def test_decoded_values(gp_sim_factory, envelope):
    """Every shown value decodes the same from SBA's JSON (either envelope) and from the Web
    Services' XML (enumerations by name, workflows as a list, GL keyed by journal and date)."""
    gp_sim = gp_sim_factory(transport="webservices" if envelope == "webservices" else "sba")
    if envelope != "webservices":
        gp_sim.sim.configure(envelope=envelope, list_shape="object")
    with gp_sim.client(include_unposted=True) as client:
        by_key = {
            name: {r.key: r.fields for r in _records(client, e, gp_sim.company)[1]} for name, e in BY_NAME.items()
        }

    inv = by_key["payables_invoice"]["Invoice|00000000000000641"]
    assert inv["amount"] == Decimal("1287.50") and inv["currency"] == "Z-US$"
    assert (inv["status"], inv["approval"], inv["hold"]) == ("Posted", "Approved", "No")
    assert inv["due_date"] == date(2024, 4, 12) and inv["supplier_name"] == "Advanced Office Systems"
    assert by_key["payables_invoice"]["Invoice|00000000000000644"]["hold"] == "Yes"
    assert by_key["payables_invoice"]["Invoice|00000000000000655"]["status"] == "Unposted"
    assert by_key["payables_invoice"]["Invoice|00000000000000598"]["status"] == "Paid"

    po = by_key["purchase_order"]
    assert (po["PO2107"]["status"], po["PO2107"]["approval"]) == ("Released", "Approved")  # codes 2 and 6
    assert (po["PO2109"]["status"], po["PO2109"]["approval"]) == ("New", "Pending Approval")
    assert po["PO2088"]["line_count"] == 2 and po["PO2088"]["total"] == Decimal("310.40")

    grn = by_key["goods_receipt"]["RCT1187|16384"]
    assert (grn["po"], grn["stock_code"], grn["quantity"], grn["value"]) == ("PO2107", "100XLG", 10, Decimal("1190.00"))
    assert grn["receipt_date"] == date(2024, 3, 13)

    gl = by_key["gl_journal"]
    assert set(gl) == {"2911|2023|16384", "2911|2023|32768", "3390|2024|16384", "3390|2024|32768", "3390|2024|49152",
                       "3418|2024|16384", "3418|2024|32768"}  # 3418 is unposted work
    assert gl["3390|2024|49152"]["amount"] == Decimal("-1287.50") and gl["3390|2024|49152"]["status"] == "Posted"
    assert (gl["3418|2024|16384"]["status"], gl["3418|2024|16384"]["state"]) == ("Unposted", "Unposted")
    assert (gl["3390|2024|16384"]["debit"], gl["3390|2024|49152"]["credit"]) == (Decimal("1190.00"), Decimal("1287.50"))
    assert gl["3390|2024|16384"]["period"] == "2024-03"

    vendor = by_key["vendor"]
    assert vendor["ACETRAVE0001"]["phone"] == "31255501010000" and vendor["ASSOCIAT0001"]["hold"] == "Yes"
    assert vendor["OLDPRINT0001"]["status"] == "Inactive"
    assert vendor["NORDICSU0001"]["vendor_name"] == "Nordic Süpply AB"


def test_versions_change_only_with_news(gp_sim):
    """A voided GL entry changes version (status Voided); a re-read of an unchanged row does not."""
    entity = BY_NAME["gl_journal"]
    with gp_sim.client() as client:
        before = {r.key: r.version for r in _records(client, entity, gp_sim.company)[1]}
        again = {r.key: r.version for r in _records(client, entity, gp_sim.company)[1]}
        gp_sim.sim.void_gl_entry(3390)
        after = {r.key: r for r in _records(client, entity, gp_sim.company)[1]}
    assert before == again
    assert after["3390|2024|16384"].version != before["3390|2024|16384"]
    assert after["3390|2024|16384"].fields["status"] == "Voided"
    reversing = [r for r in after.values() if r.fields["reverses"] == "3390"]
    assert len(reversing) == 3 and {r.fields["amount"] for r in reversing} == {
        Decimal("-1190.00"), Decimal("-97.50"), Decimal("1287.50")
    }
