"""The SYSPRO simulator against the facts in the vendor documentation.

Most tests talk to the simulator in-process through ``mock_transport``; the ones about sockets
(dropped connections, the CLI) use the loopback server.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from simulators._http import Request, mock_transport
from simulators.syspro import INVALID_SESSION, SysproSimulator

REST = "/SYSPROWCFService/Rest"
ODATA = "/SYSPRO8Odata/SYSPROOData/EDU1"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sim() -> SysproSimulator:
    return SysproSimulator()


@pytest.fixture
def http(sim: SysproSimulator) -> httpx.Client:
    with httpx.Client(transport=mock_transport(sim), base_url="http://sim") as client:
        yield client


def logon(http: httpx.Client, password: str = "secret", **extra: str) -> str:
    params = {"Operator": "ENET01", "OperatorPassword": password, "CompanyId": "EDU1", "CompanyPassword": ""}
    params.update(extra)
    return http.get(f"{REST}/Logon", params=params).text


def comfnd(http: httpx.Client, token: str, table: str, columns: list[str], where: str = "",
           order: list[str] | None = None, rows: int = 1000, extra: str = "") -> httpx.Response:
    cols = "".join(f"<Column>{c}</Column>" for c in columns)
    order_xml = "<OrderBy>" + "".join(f"<Column>{c}</Column>" for c in order) + "</OrderBy>" if order else ""
    xml = (f"<Query><TableName>{table}</TableName><ReturnRows>{rows}</ReturnRows><Columns>{cols}</Columns>"
           f"{'<Where>' + where + '</Where>' if where else ''}{order_xml}{extra}</Query>")
    return http.get(f"{REST}/Query/Query", params={"UserId": token, "BusinessObject": "COMFND", "XmlIn": xml})


def expr(column: str, cond: str, value: str, andor: str = "", open_: str = "(", close: str = ")") -> str:
    a = f"<AndOr>{andor}</AndOr>" if andor else ""
    return (f"<Expression>{a}<OpenBracket>{open_}</OpenBracket><Column>{column}</Column>"
            f"<Condition>{cond}</Condition><Value>{value}</Value><CloseBracket>{close}</CloseBracket></Expression>")


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    root = ET.fromstring(response.content)
    return [{c.tag: c.text or "" for c in r} for r in root.findall("Row")]


def odata(http: httpx.Client, table: str, auth: tuple[str, str] | None = ("ENET01", "odata-secret"),
          **params: str) -> httpx.Response:
    return http.get(f"{ODATA}/{table}", params={f"${k}": v for k, v in params.items()}, auth=auth)


# --- e.net: Logon / Logoff / GetVersion ---------------------------------------------


def test_logon_returns_a_syspro7_style_token_as_octet_stream(http: httpx.Client) -> None:
    r = http.get(f"{REST}/Logon", params={"Operator": "ENET01", "OperatorPassword": "secret",
                                          "CompanyId": "EDU1", "CompanyPassword": ""})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["server"] == "Microsoft-HTTPAPI/2.0"
    assert re.fullmatch(r"[0-9A-F]{32}00  ", r.text)  # 36 characters


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"OperatorPassword": "nope"}, "ERROR: Invalid operator password"),
        ({"Operator": "XYZ"}, "ERROR: Invalid operator 'XYZ'"),
        ({"CompanyId": "ZZZ"}, "ERROR: Invalid company 'ZZZ'"),
        ({"CompanyPassword": "wrong"}, "ERROR: Invalid company password"),
        ({"Operator": ""}, "ERROR: Operator code cannot be blank"),
    ],
)
def test_logon_errors_are_http_200_error_bodies(http: httpx.Client, params: dict, body: str) -> None:
    base = {"Operator": "ENET01", "OperatorPassword": "secret", "CompanyId": "EDU1", "CompanyPassword": ""}
    r = http.get(f"{REST}/Logon", params={**base, **params})
    assert (r.status_code, r.text) == (200, body)


def test_paths_and_parameter_names_ignore_case(http: httpx.Client) -> None:
    r = http.get("/sysprowcfservice/rest/logon", params={"operator": "ENET01", "operatorpassword": "secret",
                                                        "companyid": "EDU1"})
    assert re.fullmatch(r"[0-9A-F]{34}  ", r.text)
    assert http.get("/SYSPROWCFService/Rest/getversion").text == "8.0.0.0"


def test_company_password_parameter_can_be_required(sim: SysproSimulator) -> None:
    strict = SysproSimulator(require_company_password=True)
    with httpx.Client(transport=mock_transport(strict), base_url="http://sim") as http:
        r = http.get(f"{REST}/Logon", params={"Operator": "ENET01", "OperatorPassword": "secret", "CompanyId": "EDU1"})
        assert r.text.startswith("ERROR:")
        assert not logon(http).startswith("ERROR")


def test_logoff_answers_zero_then_the_token_is_dead(http: httpx.Client) -> None:
    token = logon(http)
    assert http.get(f"{REST}/Logoff", params={"UserId": token}).text == "0"
    assert http.get(f"{REST}/Logoff", params={"UserId": token}).text == INVALID_SESSION
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).text == INVALID_SESSION


def test_untrimmed_token_is_accepted_like_syspro7(http: httpx.Client) -> None:
    token = logon(http)
    assert token.endswith("  ")
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).text.startswith("<?xml")
    assert comfnd(http, token.rstrip(), "ApSupplier", ["Supplier"]).text.startswith("<?xml")


def test_second_logon_with_the_same_operator_evicts_the_first(http: httpx.Client, sim: SysproSimulator) -> None:
    first = logon(http)
    second = logon(http)
    assert comfnd(http, first, "ApSupplier", ["Supplier"]).text == INVALID_SESSION
    assert comfnd(http, second, "ApSupplier", ["Supplier"]).status_code == 200
    assert len(sim.sessions()) == 1


def test_a_desktop_logon_evicts_the_integration(http: httpx.Client, sim: SysproSimulator) -> None:
    token = logon(http)
    sim.evict("ENET01")
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).text == INVALID_SESSION
    assert [s["origin"] for s in sim.sessions()] == ["desktop"]


def test_idle_timeout_follows_the_controlled_clock(http: httpx.Client, sim: SysproSimulator) -> None:
    token = logon(http)
    sim.advance(1100)
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).status_code == 200  # refreshes activity
    sim.advance(1100)
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).text.startswith("<?xml")
    sim.advance(1201)
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).text == INVALID_SESSION
    assert sim.sessions() == []


def test_licence_seats_run_out(sim: SysproSimulator) -> None:
    small = SysproSimulator(licence_seats_total=1, operators={
        "A": {"password": "a", "companies": ["EDU1"]}, "B": {"password": "b", "companies": ["EDU1"]}})
    with httpx.Client(transport=mock_transport(small), base_url="http://sim") as http:
        def go(op: str, pw: str) -> str:
            return http.get(f"{REST}/Logon", params={"Operator": op, "OperatorPassword": pw,
                                                     "CompanyId": "EDU1", "CompanyPassword": ""}).text
        assert not go("A", "a").startswith("ERROR")
        assert go("B", "b") == "ERROR: The maximum number of e.net licensed users has been exceeded"
        small.advance(1300)  # A went idle past the timeout: its seat can be taken
        assert not go("B", "b").startswith("ERROR")


def test_get_logon_profile_needs_a_session(http: httpx.Client) -> None:
    token = logon(http)
    r = http.get(f"{REST}/GetLogonProfile", params={"UserId": token})
    assert "<OperatorCode>ENET01</OperatorCode>" in r.text
    assert http.get(f"{REST}/GetLogonProfile", params={"UserId": "nope"}).text == INVALID_SESSION


def test_unknown_path_is_404_and_post_to_logon_is_405(http: httpx.Client) -> None:
    assert http.get(f"{REST}/Nope").status_code == 404
    assert http.post(f"{REST}/Logon").status_code == 405


# --- e.net: COMFND -----------------------------------------------------------


def test_comfnd_reply_has_syspro_shape(http: httpx.Client) -> None:
    token = logon(http)
    r = comfnd(http, token, "ApInvoice", ["Supplier", "Invoice", "JournalDate", "OrigInvValue"],
               where=expr("JournalDate", "GE", "2024-05-08"), order=["JournalDate"], rows=1)
    text = r.content.decode("cp1252")
    assert text.startswith('<?xml version="1.0" encoding="Windows-1252"?>\n<ApInvoice Language=\'05\' ')
    assert "Version='8.0.021' OperatorPrimaryRole='   '>" in text
    assert "<HeaderDetails>\n<TableName>ApInvoice</TableName>\n<Columns>\n<Column>Supplier</Column>" in text
    assert "<OrderBy>\n<Column>JournalDate</Column>\n</OrderBy>\n</HeaderDetails>" in text
    assert "<Where>" not in text  # HeaderDetails does not echo Where
    assert "<Row>\n<Supplier>0000001</Supplier>\n<Invoice>INV-88213</Invoice>\n<JournalDate>2024-05-10</JournalDate>" in text
    assert "<OrigInvValue>2875.00</OrigInvValue>" in text
    assert "<RowsReturned>       1</RowsReturned>\n</ApInvoice>\n " == text[text.index("<RowsReturned>"):]


def test_comfnd_text_is_windows_1252(http: httpx.Client) -> None:
    token = logon(http)
    r = comfnd(http, token, "ApSupplier", ["Supplier", "SupplierName"], where=expr("Supplier", "EQ", "0000004"))
    assert "Müller Wälzlager GmbH".encode("cp1252") in r.content
    assert rows_of(r) == [{"Supplier": "0000004", "SupplierName": "Müller Wälzlager GmbH"}]


def test_comfnd_conditions_brackets_and_or(http: httpx.Client) -> None:
    token = logon(http)
    where = (expr("Supplier", "EQ", "0000001") + expr("Supplier", "EQ", "0000003", andor="Or")
             + expr("OrigInvValue", "GT", "2000", andor="And"))
    got = rows_of(comfnd(http, token, "ApInvoice", ["Invoice"], where=where, order=["Invoice"]))
    # AND binds tighter: 0000001 (any) or (0000003 and > 2000) -> only INV-88213.
    assert got == [{"Invoice": "INV-88213"}]
    where2 = (expr("Supplier", "EQ", "0000001", close="") + expr("Supplier", "EQ", "0000003", andor="Or", open_="")
              + expr("OrigInvValue", "LT", "2000", andor="And"))
    got2 = rows_of(comfnd(http, token, "ApInvoice", ["Invoice"], where=where2, order=["Invoice"]))
    assert got2 == [{"Invoice": "RE2024-0456"}]
    like = rows_of(comfnd(http, token, "ApSupplier", ["Supplier"], where=expr("SupplierName", "LIKE", "%GmbH")))
    assert [r["Supplier"] for r in like] == ["0000003", "0000004"]
    ne = rows_of(comfnd(http, token, "PorMasterHdr", ["PurchaseOrder"], where=expr("OrderStatus", "NE", "*")))
    assert "000421" not in [r["PurchaseOrder"] for r in ne]


def test_comfnd_return_rows_caps_and_sequence_orders(http: httpx.Client) -> None:
    token = logon(http)
    got = rows_of(comfnd(http, token, "ApInvoice", ["Invoice"], rows=2,
                         extra='<Sequence><Column Name="JournalDate" Orderby="D"/></Sequence>'))
    assert [r["Invoice"] for r in got] == ["BS/0981", "BS/0982"]


def test_comfnd_timestamp_is_16_hex_digits_and_filterable(http: httpx.Client) -> None:
    token = logon(http)
    got = rows_of(comfnd(http, token, "ApInvoice", ["Invoice", "TimeStamp"],
                         where=expr("TimeStamp", "GE", "00000000000A21C9"), order=["TimeStamp"]))
    assert got[:2] == [{"Invoice": "55-0192", "TimeStamp": "00000000000A21C9"},
                       {"Invoice": "RE2024-0456", "TimeStamp": "00000000000A21D0"}]


def test_comfnd_can_hide_timestamp() -> None:
    sim = SysproSimulator(comfnd_timestamp=False)
    with httpx.Client(transport=mock_transport(sim), base_url="http://sim") as http:
        r = comfnd(http, logon(http), "ApInvoice", ["Invoice", "TimeStamp"])
        assert r.text == "ERROR: Column 'TimeStamp' not found on table 'ApInvoice'"


@pytest.mark.parametrize(
    ("table", "columns", "where", "body"),
    [
        ("Foo", ["Bar"], "", "ERROR: Table 'Foo' not found"),
        ("ApInvoice", ["Bar"], "", "ERROR: Column 'Bar' not found on table 'ApInvoice'"),
        ("ApInvoice", ["Invoice"], expr("Invoice", "XX", "1"), "ERROR: Invalid condition 'XX'"),
        ("ApInvoice", ["Invoice"], expr("JournalDate", "GE", "10/05/2024"),
         "ERROR: Invalid value '10/05/2024' for column 'JournalDate'"),
        ("ApInvoice", ["Invoice"], expr("Invoice", "EQ", "x", close=""),
         "ERROR: Invalid Where clause: unbalanced brackets"),
    ],
)
def test_comfnd_errors(http: httpx.Client, table: str, columns: list[str], where: str, body: str) -> None:
    r = comfnd(http, logon(http), table, columns, where=where)
    assert (r.status_code, r.text) == (200, body)


def test_comfnd_malformed_xml_and_other_business_objects(http: httpx.Client) -> None:
    token = logon(http)
    r = http.get(f"{REST}/Query/Query", params={"UserId": token, "BusinessObject": "COMFND", "XmlIn": "<Query>"})
    assert r.text == "ERROR: XML Parse error"
    r = http.get(f"{REST}/Query/Query", params={"UserId": token, "BusinessObject": "ARSTPY", "XmlIn": "<x/>"})
    assert r.text == "ERROR: e.net exception 100000"


def test_comfnd_condition_set_is_configurable() -> None:
    sim = SysproSimulator(comfnd_conditions=("EQ", "NE"))  # only these are
    with httpx.Client(transport=mock_transport(sim), base_url="http://sim") as http:
        r = comfnd(http, logon(http), "ApInvoice", ["Invoice"], where=expr("JournalDate", "GE", "2024-05-01"))
        assert r.text == "ERROR: Invalid condition 'GE'"


# --- data and rowversions --------------------------------------------------------------


def test_seed_holds_the_reference_rows(sim: SysproSimulator) -> None:
    inv = sim.get("ApInvoice", ("0000001", "INV-88213"))
    assert inv is not None
    assert (inv["OrigInvValue"], inv["MthInvBal1"], inv["JournalDate"], inv["TimeStamp"]) == (
        Decimal("2875.00"), Decimal("2875.00"), date(2024, 5, 10), 0x0A2171)
    paid = sim.get("ApInvoice", ("0000002", "55-0192"))
    assert paid["MthInvBal1"] == Decimal("0.00") and paid["TimeStamp"] == 0x0A21C9
    assert [sim.get("PorMasterHdr", po)["OrderStatus"] for po in ("000419", "000420", "000421")] == ["4", "9", "*"]
    assert sim.get("PorMasterDetail", ("000419", 2))["MPrice"] == Decimal("18.75000")
    assert sim.get("GrnDetails", ("0000001", "000123", "P", 1542, 1))["OrigGrnValue"] == Decimal("2500.00")
    assert sim.get("GenJournalDetail", (2024, 5, 12, 2))["EntryValue"] == Decimal("-15.00")
    assert sim.get("ApJnlSummary", (2024, 5, 311, 1))["InvoiceValue"] == Decimal("2875.00")
    stamps = [r["TimeStamp"] for t in sim.tables for r in sim.rows(t)]
    assert len(stamps) == len(set(stamps))  # one database-wide rowversion


def test_every_write_takes_the_next_rowversion(sim: SysproSimulator) -> None:
    before = sim.rowversion
    row = sim.insert_invoice(supplier="0000005", amount="12.50")
    assert row["TimeStamp"] == before + 1
    journal = sim.get("ApJnlSummary", (row["JournalDate"].year, row["JournalDate"].month, row["Journal"], 1))
    assert journal["TimeStamp"] == before + 2  # posting the invoice wrote its AP journal too
    paid = sim.pay_invoice("0000005", row["Invoice"], "2.50")
    assert paid["MthInvBal1"] == Decimal("10.00")
    assert paid["TimeStamp"] > journal["TimeStamp"]  # the update-only change a date cursor misses
    po = sim.set_po_status("000423", "9")
    assert po["DatePoCompleted"] == sim.business_date and po["TimeStamp"] == sim.rowversion


def test_documents_on_one_date_and_back_dated(sim: SysproSimulator) -> None:
    rows = sim.insert_invoices_on("2024-06-03", 4, supplier="0000002")
    assert {r["JournalDate"] for r in rows} == {date(2024, 6, 3)}
    old = sim.insert_backdated_invoice(days_back=20)
    assert old["JournalDate"] == date(2024, 5, 11) and old["TimeStamp"] == sim.rowversion - 1


def test_goods_receipt_updates_the_po_line(sim: SysproSimulator) -> None:
    grn = sim.receive_goods("000422", 2, 10)
    assert grn["StockDescription"] == "Pillow block Ø40mm" and grn["OrigGrnValue"] == Decimal("145.00")
    assert sim.get("PorMasterDetail", ("000422", 2))["MReceivedQty"] == Decimal("10.000000")


def test_bulk_rows_are_virtual_and_queryable(sim: SysproSimulator, http: httpx.Client) -> None:
    info = sim.bulk_generate("ApInvoice", 1_000_000, per_day=5000)
    assert sim.count("ApInvoice") == 1_000_006
    token = logon(http)
    near_end = f"{info['last_timestamp'] - 1:016X}"
    got = rows_of(comfnd(http, token, "ApInvoice", ["Invoice", "TimeStamp"],
                         where=expr("TimeStamp", "GT", near_end), order=["TimeStamp"]))
    assert [r["Invoice"] for r in got] == ["B01-000999999"]
    r = odata(http, "ApInvoice", select="Invoice", filter="JournalDate ge 2024-12-17T00:00:00Z",
              orderby="JournalDate,Supplier,Invoice", top="2")
    assert [v["Invoice"] for v in r.json()["value"]] == ["B01-000995000", "B01-000995001"]


def test_bulk_row_updated_becomes_real_and_is_not_duplicated(sim: SysproSimulator, http: httpx.Client) -> None:
    sim.bulk_generate("ApInvoice", 50, per_day=10)
    assert sim.get("ApInvoice", ("0000001", "B01-000000001")) is not None
    assert sim.get("ApInvoice", ("0000002", "B01-000000001")) is None  # the key is the pair
    updated = sim.update("ApInvoice", ("0000001", "B01-000000001"), MthInvBal1="1.00")
    assert updated["TimeStamp"] == sim.rowversion
    r = odata(http, "ApInvoice", select="Invoice,MthInvBal1", filter="Invoice eq 'B01-000000001'")
    assert r.json()["value"] == [{"Invoice": "B01-000000001", "MthInvBal1": 1.00}]
    assert sim.count("ApInvoice") == 56
    assert sim.delete("ApInvoice", ("0000001", "B01-000000002"))
    assert sim.count("ApInvoice") == 55 and sim.get("ApInvoice", ("0000001", "B01-000000002")) is None


@pytest.mark.parametrize("table", ["ApInvoice", "PorMasterHdr", "GrnDetails", "ApJnlSummary", "GenJournalDetail"])
def test_bulk_order_matches_a_full_sort(sim: SysproSimulator, table: str) -> None:
    sim.bulk_generate(table, 300, per_day=7)
    t = sim.tables[table]
    blk = t.blocks[0]
    rows = [blk.make(i) for i in range(blk.count)]
    for order in blk.orders:
        pos = [t.pos[c] for c in order]
        keys = [tuple(str(r[p]) if isinstance(r[p], str) else r[p] for p in pos) for r in rows]
        assert keys == sorted(keys), order
    for col in blk.monotone:
        values = [r[t.pos[col]] for r in rows]
        assert values == sorted(values), col
    assert len({t.key_of(r) for r in rows}) == 300
    assert all(blk.index_of(t.key_of(r)) == i for i, r in enumerate(rows))


# --- OData ---------------------------------------------------------------------------------


def test_odata_requires_basic_auth_with_the_odata_password(http: httpx.Client) -> None:
    for auth in (None, ("ENET01", "secret"), ("ENET01", "wrong"), ("NOBODY", "odata-secret")):
        r = odata(http, "ApInvoice", auth=auth)
        assert r.status_code == 401, auth
        assert r.headers["www-authenticate"] == 'Basic realm="SYSPRO OData"'
    assert odata(http, "ApInvoice").status_code == 200


def test_odata_json_shape(http: httpx.Client) -> None:
    r = odata(http, "ApInvoice", select="Supplier,Invoice,InvoiceDate,OrigInvValue,TimeStamp",
              filter="Invoice eq 'INV-88213'")
    assert r.headers["content-type"].startswith("application/json; odata.metadata=minimal")
    doc = json.loads(r.content, parse_float=Decimal)
    assert doc["@odata.context"].endswith(
        "/SYSPRO8Odata/SYSPROOData/EDU1/$metadata#ApInvoice(Supplier,Invoice,InvoiceDate,OrigInvValue,TimeStamp)")
    assert doc["value"] == [{"Supplier": "0000001", "Invoice": "INV-88213", "InvoiceDate": "2024-05-08T00:00:00Z",
                             "OrigInvValue": Decimal("2875.00"),
                             "TimeStamp": base64.b64encode((0x0A2171).to_bytes(8, "big")).decode()}]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("JournalDate ge 2024-05-22T00:00:00Z", ["RG-24-1187", "BS/0981", "BS/0982"]),
        ("JournalDate gt 2024-05-22", ["BS/0981", "BS/0982"]),
        ("JournalDate lt 2024-05-13T00:00:00Z", ["INV-88213"]),
        ("Supplier eq '0000005' and OrigInvValue gt 100", ["BS/0981"]),
        ("(Supplier eq '0000001' or Supplier eq '0000003') and not (OrigInvValue lt 2000)", ["INV-88213"]),
        ("MthInvBal1 eq 0", ["55-0192"]),
        ("2000 lt OrigInvValue", ["INV-88213"]),
    ],
)
def test_odata_filter(http: httpx.Client, flt: str, expected: list[str]) -> None:
    r = odata(http, "ApInvoice", select="Invoice", filter=flt, orderby="JournalDate,Supplier,Invoice")
    assert r.status_code == 200, r.text
    assert [v["Invoice"] for v in r.json()["value"]] == expected


def test_odata_string_literals_escape_quotes(sim: SysproSimulator, http: httpx.Client) -> None:
    sim.update("ApSupplier", "0000006", SupplierName="O'Brien & Sons")
    r = odata(http, "ApSupplier", select="Supplier", filter="SupplierName eq 'O''Brien & Sons'")
    assert r.json()["value"] == [{"Supplier": "0000006"}]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("JournalDate ge '2024-05-01'", "incompatible types"),
        ("Nope eq 1", "Could not find a property named 'Nope'"),
        ("TimeStamp gt binary'AAAAAAAKIXE='", "not defined for the types 'System.Byte[]'"),
        ("Invoice eq", "Syntax error"),
        ("Invoice eq 'x' Supplier", "Syntax error"),
    ],
)
def test_odata_bad_filters_are_400(http: httpx.Client, flt: str, message: str) -> None:
    r = odata(http, "ApInvoice", filter=flt)
    assert r.status_code == 400
    assert message in r.json()["error"]["message"]


def test_odata_timestamp_equality_works_and_ordering_can_be_enabled(http: httpx.Client) -> None:
    lit = "binary'" + base64.b64encode((0x0A2171).to_bytes(8, "big")).decode() + "'"
    r = odata(http, "ApInvoice", select="Invoice", filter=f"TimeStamp eq {lit}")
    assert r.json()["value"] == [{"Invoice": "INV-88213"}]
    lenient = SysproSimulator(odata_rowversion_filter=True)
    with httpx.Client(transport=mock_transport(lenient), base_url="http://sim") as h:
        r = odata(h, "ApInvoice", select="Invoice", filter=f"TimeStamp gt {lit}", orderby="TimeStamp")
        assert [v["Invoice"] for v in r.json()["value"]][:2] == ["55-0192", "RE2024-0456"]


def test_odata_top_skip_and_the_row_cap() -> None:
    sim = SysproSimulator(odata_max_rows=4)
    with httpx.Client(transport=mock_transport(sim), base_url="http://sim") as http:
        all_rows = odata(http, "ApJnlSummary", select="Journal", orderby="Journal").json()["value"]
        assert [r["Journal"] for r in all_rows] == [311, 312, 313, 314]  # silently capped at 4
        page2 = odata(http, "ApJnlSummary", select="Journal", orderby="Journal", top="2", skip="2").json()
        assert [r["Journal"] for r in page2["value"]] == [313, 314]
        assert "@odata.nextLink" not in page2
        counted = odata(http, "ApJnlSummary", select="Journal", top="1", count="true").json()
        assert counted["@odata.count"] == 6


def test_odata_next_link_at_the_cap() -> None:
    sim = SysproSimulator(odata_max_rows=4, odata_next_link=True)
    with httpx.Client(transport=mock_transport(sim), base_url="http://sim") as http:
        first = odata(http, "ApJnlSummary", select="Journal", orderby="Journal").json()
        link = first["@odata.nextLink"]
        assert link.startswith("http://sim/SYSPRO8Odata/SYSPROOData/EDU1/ApJnlSummary?") and "24skip=4" in link
        second = http.get(link, auth=("ENET01", "odata-secret")).json()
        assert [r["Journal"] for r in second["value"]] == [315, 316]
        assert "@odata.nextLink" not in second


def test_odata_unknown_entity_set_and_metadata(http: httpx.Client) -> None:
    r = odata(http, "ApPosting")  # not a SYSPRO table
    assert r.status_code == 404 and "not a valid OData path template" in r.json()["error"]["message"]
    meta = http.get(f"{ODATA}/$metadata", auth=("ENET01", "odata-secret"))
    assert '<EntityType Name="ApInvoice"><Key><PropertyRef Name="Supplier"/><PropertyRef Name="Invoice"/>' in meta.text
    assert '<Property Name="TimeStamp" Type="Edm.Binary"/>' in meta.text


def test_odata_skip_paging_stays_cheap_on_a_million_rows(sim: SysproSimulator, http: httpx.Client) -> None:
    sim.bulk_generate("ApInvoice", 1_000_000)
    flt = "JournalDate ge 2024-06-01T00:00:00Z"
    seen = []
    for skip in range(0, 15000, 5000):  # consecutive pages continue the cached stream
        r = odata(http, "ApInvoice", select="Invoice", filter=flt, orderby="JournalDate,Supplier,Invoice",
                  top="5000", skip=str(skip))
        seen.extend(v["Invoice"] for v in r.json()["value"])
    assert len(seen) == len(set(seen)) == 15000
    assert seen[0] == "B01-000000000" and seen[-1] == "B01-000014999"


# --- faults, counters and the /__sim/ hooks -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "kwargs", "status", "starts"),
    [
        ("error_text", {"text": "ERROR: boom"}, 200, b"ERROR: boom"),
        ("status", {"status": 503}, 503, b"<html>"),
        ("html", {}, 200, b"<!DOCTYPE html>"),
    ],
)
def test_faults_hit_the_next_matching_calls(http: httpx.Client, sim: SysproSimulator, kind: str,
                                            kwargs: dict, status: int, starts: bytes) -> None:
    token = logon(http)
    sim.inject(kind, path="Query/Query", times=2, **kwargs)
    assert http.get(f"{REST}/GetVersion").text == "8.0.0.0"  # other paths are not affected
    for _ in range(2):
        r = comfnd(http, token, "ApSupplier", ["Supplier"])
        assert r.status_code == status and r.content.startswith(starts)
    assert comfnd(http, token, "ApSupplier", ["Supplier"]).content.startswith(b"<?xml")


def test_truncate_and_delay_faults(sim: SysproSimulator, http: httpx.Client) -> None:
    token = logon(http)
    sim.inject("truncated", path="Query/Query")
    r = comfnd(http, token, "ApSupplier", ["Supplier"])
    assert r.content.startswith(b"<?xml") and not r.content.rstrip().endswith(b"</ApSupplier>")
    sim.inject("delay", seconds=2.5, path="GetVersion")
    resp = sim.handle(Request("GET", f"{REST}/GetVersion", {}, {}, b""))
    assert resp.delay == 2.5 and resp.body == b"8.0.0.0"


def test_drop_fault_closes_the_socket(syspro_sim) -> None:
    syspro_sim.sim.inject("drop", path="GetVersion")
    with httpx.Client(base_url=syspro_sim.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{REST}/GetVersion")
        assert client.get(f"{REST}/GetVersion").text == "8.0.0.0"


def test_odata_faults(sim: SysproSimulator, http: httpx.Client) -> None:
    sim.inject("status", path="odata", status=500)
    assert odata(http, "ApInvoice").status_code == 500
    assert odata(http, "ApInvoice").status_code == 200


def test_counters_and_request_log_redact_passwords(sim: SysproSimulator, http: httpx.Client) -> None:
    token = logon(http)
    comfnd(http, token, "ApSupplier", ["Supplier"])
    odata(http, "ApInvoice")
    assert sim.counters["Logon"] == 1 and sim.counters["Query/Query"] == 1
    assert sim.counters["odata:ApInvoice"] == 1
    log = json.dumps(list(sim.request_log))
    assert "secret" not in log and token.strip() not in log


def test_control_hooks_over_http(syspro_sim) -> None:
    with httpx.Client(base_url=syspro_sim.url) as c:
        row = c.post("/__sim/invoices", json={"supplier": "0000005", "amount": "99.95"}).json()
        assert row["OrigInvValue"] == "99.95" and row["Supplier"] == "0000005"
        batch = c.post("/__sim/invoices/batch", json={"date": "2024-06-03", "count": 3}).json()
        assert len(batch) == 3
        assert c.post("/__sim/invoices/pay", json={"supplier": "0000005", "invoice": row["Invoice"]}).json()[
            "MthInvBal1"] == "0.00"
        assert c.post("/__sim/po/status", json={"po": "000423", "status": "4"}).json()["OrderStatus"] == "4"
        c.patch("/__sim/tables/ApSupplier/rows", json={"key": ["0000006"], "changes": {"OnHold": "N"}})
        assert syspro_sim.sim.get("ApSupplier", "0000006")["OnHold"] == "N"
        c.put("/__sim/tables/ApSupplier", json=[{"Supplier": "0000007", "SupplierName": "New Supplier"}])
        assert syspro_sim.sim.get("ApSupplier", "0000007")["SupplierName"] == "New Supplier"
        assert c.delete("/__sim/tables/ApSupplier/rows", params={"key": "0000007"}).json() == {"deleted": True}
        assert c.post("/__sim/bulk", json={"table": "GrnDetails", "count": 10}).json()["rows"] == 10
        token = c.get(f"{REST}/Logon", params={"Operator": "ENET01", "OperatorPassword": "secret",
                                               "CompanyId": "EDU1", "CompanyPassword": ""}).text
        assert [s["operator"] for s in c.get("/__sim/sessions").json()["sessions"]] == ["ENET01"]
        assert c.post("/__sim/sessions/expire", json={"all": True}).json() == {"expired": 1}
        assert c.get(f"{REST}/GetLogonProfile", params={"UserId": token}).text == INVALID_SESSION
        c.post("/__sim/sessions/evict", json={"operator": "ENET01"})
        c.post("/__sim/clock", json={"advance": 5})
        c.post("/__sim/faults", json={"kind": "error_text", "path": "GetVersion", "text": "ERROR: x"})
        assert c.get(f"{REST}/GetVersion").text == "ERROR: x"
        c.post("/__sim/password", json={"operator": "ENET01", "password": "new-pass"})
        assert c.get(f"{REST}/Logon", params={"Operator": "ENET01", "OperatorPassword": "secret",
                                              "CompanyId": "EDU1"}).text == "ERROR: Invalid operator password"
        counters = c.get("/__sim/requests").json()["counters"]
        assert counters["Logon"] == 2 and counters["GetVersion"] == 1
        assert c.get("/__sim/rowversion").json()["rowversion"] == syspro_sim.sim.rowversion
        assert c.post("/__sim/reset").json() == {"ok": True}
        assert syspro_sim.sim.get("ApSupplier", "0000007") is None
        assert c.post("/__sim/nope").status_code == 404
        assert c.post("/__sim/bulk", json={"table": "ApSupplier", "count": 1}).status_code == 400


def test_concurrent_requests_are_safe(syspro_sim) -> None:
    sim = syspro_sim.sim
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with httpx.Client(base_url=syspro_sim.url) as c:
                for _ in range(5):
                    c.post("/__sim/invoices", json={"supplier": "0000001", "amount": str(n)})
                    r = c.get(f"{ODATA}/ApInvoice", params={"$select": "Invoice"}, auth=("ENET01", "odata-secret"))
                    assert r.status_code == 200
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stamps = [r["TimeStamp"] for r in sim.rows("ApInvoice")]
    assert len(stamps) == len(set(stamps)) == 26


# --- running alone and the import boundary --------------------------------------------------------------


def test_runs_alone_and_prints_how_to_reach_it() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "simulators.syspro", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(6)]  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = "".join(lines)
    url = re.search(r"SYSPRO simulator on (http://127\.0\.0\.1:\d+)", text)
    assert url, text
    assert "/SYSPROWCFService/Rest" in text and "/SYSPRO8Odata/SYSPROOData/EDU1/ApInvoice" in text
    assert "operator ENET01: password 'secret', OData password 'odata-secret'" in text


def test_simulator_imports_nothing_from_the_project() -> None:
    code = ("import sys, simulators.syspro; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('erp_slack', 'flows', 'tasks', 'blocks')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
