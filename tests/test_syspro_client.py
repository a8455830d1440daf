"""SYSPRO clients end to end against the served simulator, plus a few in-process unit tests.

Nothing sleeps: clients get ``sleep=list.append`` from the ``syspro_client`` factory, and the
simulator's idle timeout runs on its own clock (``sim.advance``).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
import trustme

from erp_slack.errors import ConfigError, SourceAuthFailed, SourceSessionExpired, SourceUnavailable
from erp_slack.model import normalise
from erp_slack.sources.http import RetryPolicy, safe_url
from erp_slack.sources.syspro.client import connect
from erp_slack.sources.syspro.enet import SysproEnetClient, build_comfnd_query, check_enet
from erp_slack.sources.syspro.entities import ENTITIES_ENET, ENTITIES_ODATA, entities_for
from erp_slack.sources.syspro.odata import SysproODataClient, check_odata, odata_literal
from simulators._http import mock_transport, serve_on_loopback
from simulators.syspro import INVALID_SESSION, SysproSimulator

AP_ENET = {e.name: e for e in ENTITIES_ENET}
AP_ODATA = {e.name: e for e in ENTITIES_ODATA}
TRANSPORTS = ["enet", "odata"]


def entity(transport: str, name: str):
    return {e.name: e for e in entities_for(transport)}[name]


def collect(client: Any, ent: Any, **kwargs: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    pages = list(client.pages(ent, **kwargs))
    return pages, [r for p in pages for r in p.rows]


# --- paging, since, until -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pages_walk_every_row_in_cursor_order(syspro_client, syspro_sim, transport: str) -> None:
    syspro_sim.sim.insert_invoices_on("2024-05-27", 3, supplier="0000002")  # ties on the date cursor
    client = syspro_client(transport, page_size=2)
    ent = entity(transport, "ap_invoice")
    pages, rows = collect(client, ent, since=None)
    assert len(rows) == 9 and len(pages) == 5
    keys = [(r["Supplier"], r["Invoice"]) for r in rows]
    assert len(set(keys)) == 9
    cursor = [normalise(ent, "EDU1", r).cursor for r in rows]
    assert cursor == sorted(cursor)
    # Only an empty reply ends a read (a server may cap pages below what was asked), and that
    # closing empty reply is no page of its own.
    assert all(p.next_token for p in pages)
    assert [p.row_count for p in pages] == [2, 2, 2, 2, 1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_since_is_closed_and_until_is_open(syspro_client, transport: str) -> None:
    client = syspro_client(transport)
    ent = entity(transport, "ap_invoice")
    if transport == "enet":
        since, until = 0x0A21C9, 0x0A21D1  # 55-0192's and RE2024-0456's + 1 rowversions
        expected = ["55-0192", "RE2024-0456"]
    else:
        since, until = date(2024, 5, 13), date(2024, 5, 22)
        expected = ["55-0192", "RE2024-0456"]
    _, rows = collect(client, ent, since=since, until=until)
    assert [r["Invoice"] for r in rows] == expected


def test_rowversion_cursor_sees_updates_a_date_cursor_misses(syspro_client, syspro_sim) -> None:
    sim = syspro_sim.sim
    enet, odata = syspro_client("enet"), syspro_client("odata")
    watermark = sim.rowversion + 1
    sim.pay_invoice("0000001", "INV-88213", "875.00")
    _, rows = collect(enet, AP_ENET["ap_invoice"], since=watermark)
    assert [(r["Invoice"], r["MthInvBal1"]) for r in rows] == [("INV-88213", "2000.00")]
    _, rows = collect(odata, AP_ODATA["ap_invoice"], since=date(2024, 5, 28))
    assert rows == []  # a date cursor does not see the payment


def test_limit_reads_one_row_with_one_request(syspro_client, syspro_sim) -> None:
    for transport in TRANSPORTS:
        client = syspro_client(transport)
        syspro_sim.sim.reset_counters()
        pages, rows = collect(client, entity(transport, "gl_journal"), since=None, limit=1)
        assert len(rows) == 1 and len(pages) == 1
        data_calls = {k: v for k, v in syspro_sim.sim.counters.items() if k not in ("Logon",)}
        assert sum(data_calls.values()) == 1, data_calls


def test_enet_keyset_paging_with_a_date_cursor_and_ties(syspro_client, syspro_sim) -> None:
    # The e.net client also serves date cursors (a site where COMFND hides TimeStamp).
    syspro_sim.sim.insert_invoices_on("2024-05-27", 5, supplier="0000001")
    client = syspro_client("enet", page_size=2)
    pages, rows = collect(client, AP_ODATA["ap_invoice"], since=date(2024, 5, 27))
    assert len(rows) == 7 and len({(r["Supplier"], r["Invoice"]) for r in rows}) == 7
    assert len(pages) == 4


@pytest.mark.parametrize("next_link", [True, False])
@pytest.mark.parametrize("cap", [3, 2])
def test_odata_follows_next_link_and_pages_by_keyset_never_skip(next_link, cap) -> None:
    # The server caps replies at `cap` rows; asked for 3 a page, with or without a nextLink.
    sim = SysproSimulator(odata_max_rows=cap, odata_next_link=next_link)
    with serve_on_loopback(sim) as served:
        with SysproODataClient(served.url, "ENET01", "odata-secret", "EDU1", page_size=3) as client:
            pages, rows = collect(client, AP_ODATA["ap_journal"], since=None)
    assert len(rows) == 6 and len({r["Journal"] for r in rows}) == 6
    if not next_link:  # our own paging: by key, never by offset (a server's nextLink is its own)
        assert not any("skip" in p.url for p in pages)
        assert "gt" in pages[1].url  # the second page starts after the first page's last key


def test_a_row_deleted_between_odata_pages_never_hides_the_next_one() -> None:
    sim = SysproSimulator()
    with serve_on_loopback(sim) as served:
        with SysproODataClient(served.url, "ENET01", "odata-secret", "EDU1", page_size=2) as client:
            pages = client.pages(AP_ODATA["ap_invoice"], since=None)
            first = next(pages)
            sim.delete("ApInvoice", (first.rows[0]["Supplier"], first.rows[0]["Invoice"]))  # a purge
            rest = [r for p in pages for r in p.rows]
    keys = {(r["Supplier"], r["Invoice"]) for r in [*first.rows, *rest]}
    assert keys == {(r["Supplier"], r["Invoice"]) for r in sim.rows("ApInvoice")} | {
        (first.rows[0]["Supplier"], first.rows[0]["Invoice"])}


@pytest.mark.parametrize("cap", [1, 2])
def test_enet_reads_every_row_when_the_server_caps_pages_below_return_rows(cap) -> None:
    sim = SysproSimulator(comfnd_max_rows=cap)
    with serve_on_loopback(sim) as served:
        with SysproEnetClient(served.url, "ENET01", "secret", "EDU1", page_size=3) as client:
            _, rows = collect(client, entity("enet", "ap_invoice"), since=None)
    assert len(rows) == len(sim.rows("ApInvoice"))


def test_odata_refuses_a_next_link_to_another_host() -> None:
    with respx.mock(base_url="http://erp.example") as mock:
        mock.get(url__regex=r".*/EDU1/ApJnlSummary.*").respond(json={
            "value": [{"TrnYear": 2024, "TrnMonth": 5, "Journal": 1, "EntryNumber": 1, "TrnDate": "2024-05-01T00:00:00Z"}],
            "@odata.nextLink": "http://evil.example/steal?$skip=1"})
        with SysproODataClient("http://erp.example", "ENET01", "pw-odata", "EDU1") as client:
            with pytest.raises(SourceUnavailable, match="another server"):
                list(client.pages(AP_ODATA["ap_journal"], since=None))


def test_odata_reply_with_odd_rows_keeps_the_good_ones() -> None:
    with respx.mock(base_url="http://erp.example") as mock:
        mock.get(url__regex=r".*/EDU1/GenJournalDetail.*").mock(side_effect=[httpx.Response(200, json={"value": [
            {"GlYear": 2024, "GlPeriod": 5, "Journal": 1, "EntryNumber": 1, "GlCode": "20-2100",
             "EntryValue": 1.5, "EntryDate": "2024-05-01T00:00:00Z", "@odata.etag": "W/1"},
            "not an object",
            {"GlYear": 2024, "GlPeriod": 5, "Journal": 1, "EntryNumber": 2, "GlCode": {"nested": 1}},
        ]}), httpx.Response(200, json={"value": []})])
        with SysproODataClient("http://erp.example", "ENET01", "pw-odata", "EDU1") as client:
            (page,) = client.pages(AP_ODATA["gl_journal"], since=None)
    assert len(page.rows) == 1 and page.row_count == 3
    assert page.rows[0]["EntryValue"] == Decimal("1.5") and "@odata.etag" not in page.rows[0]
    assert page.rows[0]["@Debit"] == "1.5" and page.rows[0]["@Credit"] is None
    assert [reason for _, reason in page.problems] == ["row is not a JSON object", "column GlCode holds a nested value"]


# --- derived columns ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_derived_columns(syspro_client, syspro_sim, transport: str) -> None:
    syspro_sim.sim.upsert("PorMasterHdr", {"PurchaseOrder": "000500", "Supplier": "0000099",
                                          "OrderEntryDate": "2024-05-30", "OrderStatus": "0"})
    client = syspro_client(transport)
    _, rows = collect(client, entity(transport, "purchase_order"), since=None)
    by_po = {r["PurchaseOrder"]: r for r in rows}
    assert (by_po["000419"]["@LineCount"], by_po["000419"]["@OrderTotal"]) == ("2", "7000.00")
    assert (by_po["000422"]["@LineCount"], by_po["000422"]["@OrderTotal"]) == ("2", "1308.00")
    assert (by_po["000500"]["@LineCount"], by_po["000500"]["@OrderTotal"]) == ("0", "0.00")
    assert by_po["000500"]["@SupplierName"] is None  # unknown supplier: no name, no error
    assert by_po["000422"]["@SupplierName"] == "Müller Wälzlager GmbH"  # Windows-1252 survives
    _, rows = collect(client, entity(transport, "ap_journal"), since=None)
    assert {r["@Period"] for r in rows} == {"2024-05"}


def test_supplier_lookups_are_cached_for_the_client_lifetime(syspro_client, syspro_sim) -> None:
    client = syspro_client("enet", page_size=2)
    list(client.pages(AP_ENET["ap_invoice"], since=None))
    first = syspro_sim.sim.counters["Query/Query"]
    list(client.pages(AP_ENET["ap_invoice"], since=None))
    # Four invoice queries (6 rows in pages of 2; a full last page means "maybe more")
    # and no supplier lookups: the names are cached.
    assert syspro_sim.sim.counters["Query/Query"] - first == 4


def test_windows_1252_text_survives_enet(syspro_client, syspro_sim) -> None:
    syspro_sim.sim.insert_invoice(supplier="0000004", reference="Rechnung 5 € – Lager Ø40")
    syspro_sim.sim.receive_goods("000422", 2, 4)
    client = syspro_client("enet")
    _, rows = collect(client, AP_ENET["ap_invoice"], since=syspro_sim.sim.rowversion - 3)
    assert rows[0]["Reference"] == "Rechnung 5 € – Lager Ø40"
    _, grns = collect(client, AP_ENET["goods_receipt"], since=None)
    assert grns[-1]["StockDescription"] == "Pillow block Ø40mm"


def test_an_undecodable_row_becomes_a_problem_and_the_page_flows(syspro_client, syspro_sim) -> None:
    sim = syspro_sim.sim
    sim.insert_invoice(supplier="0000001", reference="bad \x01 byte")  # SQL lets it in; XML cannot hold it
    sim.insert_invoice(supplier="0000002", reference="fine")
    client = syspro_client("enet", page_size=50)
    (page,) = client.pages(AP_ENET["ap_invoice"], since=None)
    assert page.row_count == 8 and len(page.rows) == 7
    (raw, reason), = page.problems
    assert "bad" in raw and "not well-formed" in reason
    assert page.rows[-1]["Reference"] == "fine"


def test_paging_continues_past_an_undecodable_last_row(syspro_client, syspro_sim) -> None:
    sim = syspro_sim.sim
    sim.insert_invoice(supplier="0000001", reference="bad \x02")
    sim.insert_invoice(supplier="0000001", reference="after")
    client = syspro_client("enet", page_size=7)  # the bad row is the 7th: last of page one
    pages, rows = collect(client, AP_ENET["ap_invoice"], since=None)
    assert [len(p.problems) for p in pages] == [1, 0]
    assert rows[-1]["Reference"] == "after" and len(rows) == 7


# --- the e.net session: relogon, logoff ------------------------------------------------------------


@pytest.mark.parametrize("how", ["expire", "evict"])
def test_relogon_exactly_once_after_expiry_or_eviction(syspro_client, syspro_sim, syspro_audit, how: str) -> None:
    sim = syspro_sim.sim
    client = syspro_client("enet")
    list(client.pages(AP_ENET["gl_journal"], since=None))
    assert syspro_audit.kinds == ["logon"]
    if how == "expire":
        sim.advance(sim.idle_timeout_seconds + 1)
    else:
        sim.evict("ENET01")
    _, rows = collect(client, AP_ENET["gl_journal"], since=None)
    assert len(rows) == 4
    assert syspro_audit.kinds == ["logon", "relogon", "logon"]
    assert sim.counters["Logon"] == 2
    relogon = syspro_audit[1][1]
    assert relogon["operator"] == "ENET01" and "/Query/Query?" in relogon["url"]
    assert "secret" not in json.dumps(syspro_audit) and (client.session.user_id or "x") not in json.dumps(syspro_audit)


def test_a_second_invalid_session_answer_is_not_retried_again(syspro_client, syspro_sim, syspro_audit) -> None:
    client = syspro_client("enet")
    syspro_sim.sim.inject("error_text", path="Query/Query", times=2, text=INVALID_SESSION)
    with pytest.raises(SourceSessionExpired, match="UserID is invalid"):
        list(client.pages(AP_ENET["gl_journal"], since=None))
    assert syspro_audit.kinds == ["logon", "relogon", "logon"]


def test_close_logs_off_and_is_idempotent(syspro_client, syspro_sim, syspro_audit) -> None:
    client = syspro_client("enet")
    list(client.pages(AP_ENET["ap_journal"], since=None, limit=1))
    assert len(syspro_sim.sim.sessions()) == 1
    client.close()
    client.close()
    assert syspro_sim.sim.sessions() == []
    assert syspro_sim.sim.counters["Logoff"] == 1
    assert syspro_audit[-1] == ("logoff", {"operator": "ENET01", "company": "EDU1", "ok": True, "reply": "0",
                                           "url": syspro_sim.enet_url + "/Logoff?UserId=***"})
    with pytest.raises(SourceUnavailable, match="closed"):
        list(client.pages(AP_ENET["ap_journal"], since=None))


def test_logoff_also_when_the_run_fails(syspro_sim, syspro_audit) -> None:
    with pytest.raises(RuntimeError):
        with SysproEnetClient(syspro_sim.url, "ENET01", "secret", "EDU1", audit=syspro_audit) as client:
            next(client.pages(AP_ENET["ap_invoice"], since=None))
            raise RuntimeError("the pipeline broke")
    assert syspro_sim.sim.sessions() == []
    assert syspro_audit.kinds == ["logon", "logoff"]


def test_close_without_a_session_does_not_call_logoff(syspro_client, syspro_sim) -> None:
    syspro_client("enet").close()
    assert syspro_sim.sim.counters["Logoff"] == 0


def test_logoff_failure_is_audited_not_raised(syspro_client, syspro_sim, syspro_audit) -> None:
    client = syspro_client("enet")
    list(client.pages(AP_ENET["ap_journal"], since=None, limit=1))
    syspro_sim.sim.inject("error_text", path="Logoff", text="ERROR: Unable to read the SYSPRO base directory")
    client.close()
    kind, details = syspro_audit[-1]
    assert kind == "logoff" and details["ok"] is False and details["reply"].startswith("ERROR: Unable")


def test_calls_sharing_an_operator_are_serialised(syspro_client, syspro_sim) -> None:
    client = syspro_client("enet", page_size=2)
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(sum(len(p.rows) for p in client.pages(AP_ENET["ap_invoice"], since=None)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [6, 6, 6, 6]
    assert syspro_sim.sim.counters["Logon"] == 1


def test_version_needs_no_session(syspro_client, syspro_sim) -> None:
    assert syspro_client("enet").version() == "8.0.0.0"
    assert syspro_sim.sim.counters["Logon"] == 0


# --- credentials ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "overrides", "match"),
    [
        ("enet", {"operator_password": "hunter2-wrong"}, "Invalid operator password"),
        ("enet", {"operator": "NOBODY"}, "Invalid operator 'NOBODY'"),
        ("enet", {"company_password": "co-pass-wrong"}, "Invalid company password"),
        ("odata", {"odata_password": "hunter2-wrong"}, r"refused the credentials \(HTTP 401\)"),
    ],
)
def test_wrong_credentials_raise_auth_failed_without_the_password(
        syspro_client, syspro_audit, transport: str, overrides: dict, match: str) -> None:
    client = syspro_client(transport, **overrides)
    with pytest.raises(SourceAuthFailed, match=match) as info:
        list(client.pages(entity(transport, "ap_invoice"), since=None))
    for secret in ("hunter2-wrong", "co-pass-wrong", "secret"):
        assert secret not in str(info.value) and secret not in info.value.url
        assert secret not in json.dumps(syspro_audit)
    assert syspro_audit.kinds == ["auth_failed"]


def test_a_changed_password_fails_the_relogon(syspro_client, syspro_sim, syspro_audit) -> None:
    client = syspro_client("enet")
    list(client.pages(AP_ENET["ap_journal"], since=None, limit=1))
    syspro_sim.sim.set_password("ENET01", "rotated")
    syspro_sim.sim.expire_sessions()
    with pytest.raises(SourceAuthFailed, match="Invalid operator password"):
        list(client.pages(AP_ENET["ap_journal"], since=None))
    assert syspro_audit.kinds == ["logon", "relogon", "auth_failed"]


# --- error classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "fault", "error", "match"),
    [
        ("enet", {"kind": "error_text", "text": "ERROR: Table 'Foo' not found"}, SourceUnavailable, "Table 'Foo'"),
        ("enet", {"kind": "error_text", "text": "ERROR: e.net exception 100000"}, SourceAuthFailed, "100000"),
        ("enet", {"kind": "error_text", "text": "ERROR: The maximum number of e.net licensed users has been exceeded"},
         SourceUnavailable, "licensed users"),
        ("enet", {"kind": "status", "status": 503, "times": 9}, SourceUnavailable, "HTTP 503"),
        ("enet", {"kind": "status", "status": 500, "times": 9}, SourceUnavailable, "HTTP 500"),
        ("enet", {"kind": "html", "times": 9}, SourceUnavailable, "HTML page"),
        ("enet", {"kind": "truncated", "times": 9}, SourceUnavailable, "truncated"),
        ("enet", {"kind": "drop", "times": 9}, SourceUnavailable, "RemoteProtocolError"),
        ("odata", {"kind": "status", "status": 503, "times": 9}, SourceUnavailable, "HTTP 503"),
        ("odata", {"kind": "status", "status": 429, "times": 9}, SourceUnavailable, "HTTP 429"),
        ("odata", {"kind": "html", "times": 9}, SourceUnavailable, "HTML page"),
        ("odata", {"kind": "truncated", "times": 9}, SourceUnavailable, "truncated JSON"),
        ("odata", {"kind": "drop", "times": 9}, SourceUnavailable, "RemoteProtocolError"),
    ],
)
def test_error_classification(syspro_client, syspro_sim, transport: str, fault: dict, error: type,
                              match: str) -> None:
    client = syspro_client(transport)
    path = "Query/Query" if transport == "enet" else "odata"
    syspro_sim.sim.inject(path=path, **fault)
    with pytest.raises(error, match=match) as info:
        list(client.pages(entity(transport, "gl_journal"), since=None))
    assert "secret" not in str(info.value) and "secret" not in getattr(info.value, "url", "")


def test_odata_query_rejections_are_not_retried(syspro_client, syspro_sim) -> None:
    client = syspro_client("odata")
    rowversion_entity = AP_ENET["ap_invoice"]  # TimeStamp ordering is refused by OData
    with pytest.raises(SourceUnavailable, match="System.Byte") as info:
        list(client.pages(rowversion_entity, since=0x0A2171))
    assert info.value.status == 400
    assert syspro_client.slept == []


# --- retries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_transient_failure_is_retried_after_a_wait(syspro_client, syspro_sim, syspro_audit, transport: str) -> None:
    client = syspro_client(transport)
    syspro_sim.sim.inject("status", status=503, path="Query/Query" if transport == "enet" else "odata")
    _, rows = collect(client, entity(transport, "gl_journal"), since=None)
    assert len(rows) == 4
    assert syspro_client.slept == [0.5]
    assert "retry" in syspro_audit.kinds


def test_retries_stop_at_the_attempt_cap(syspro_client, syspro_sim) -> None:
    client = syspro_client("enet", retry=RetryPolicy(attempts=4, wait_initial=1, wait_max=3))
    syspro_sim.sim.inject("status", status=503, path="Query/Query", times=10)
    with pytest.raises(SourceUnavailable):
        list(client.pages(AP_ENET["gl_journal"], since=None))
    assert syspro_client.slept == [1, 2, 3]
    assert syspro_sim.sim.counters["Query/Query"] == 4


def test_retries_stop_at_the_time_cap() -> None:
    sim = SysproSimulator()
    sim.inject("status", status=503, path="odata", times=10)
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s + 4.0  # each failed attempt also costs time

    client = SysproODataClient("http://sim", "ENET01", "odata-secret", "EDU1", transport=mock_transport(sim),
                               retry=RetryPolicy(attempts=10, timeout=10.0, wait_initial=1, wait_max=1),
                               sleep=sleep, clock=lambda: now[0])
    with client, pytest.raises(SourceUnavailable, match="HTTP 503"):
        list(client.pages(AP_ODATA["gl_journal"], since=None))
    assert slept == [1, 1]  # a third wait would end past 10 s


def test_a_timeout_is_transient() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"value": []})

    slept: list[float] = []
    with SysproODataClient("http://erp.example", "OP", "pw", "EDU1", transport=httpx.MockTransport(handler),
                           sleep=slept.append) as client:
        assert list(client.pages(AP_ODATA["ap_invoice"], since=date(2024, 5, 1)))[0].rows == ()
    assert len(calls) == 2 and slept == [0.5]


# --- TLS: the CA bundle path -------------------------------------------------------------


def test_ca_bundle_path_verifies_a_self_signed_server(tmp_path, syspro_audit) -> None:
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    sim = SysproSimulator()
    sim.public_scheme = "https"
    with serve_on_loopback(sim, tls=server_ctx) as served:
        assert served.url.startswith("https://localhost:")
        with SysproEnetClient(served.url, "ENET01", "secret", "EDU1", verify=str(bundle)) as client:
            assert len(list(client.pages(AP_ENET["gl_journal"], since=None))[0].rows) == 4
        slept: list[float] = []
        with SysproODataClient(served.url, "ENET01", "odata-secret", "EDU1", sleep=slept.append) as client:
            with pytest.raises(SourceUnavailable, match="ConnectError"):
                list(client.pages(AP_ODATA["gl_journal"], since=None))  # default: system CAs only


# --- the factory, sanitising and building blocks ------------------------------------------------------


def test_connect_picks_the_transport_and_its_entities(syspro_sim) -> None:
    kw = dict(base_url=syspro_sim.url, operator="ENET01", company="EDU1")
    with connect("enet", operator_password="secret", **kw) as enet:
        assert isinstance(enet, SysproEnetClient) and enet.entities == ENTITIES_ENET
        assert enet.base_url == syspro_sim.url + "/SYSPROWCFService/Rest"
    with connect("odata", odata_password="odata-secret", **kw) as odata:
        assert isinstance(odata, SysproODataClient) and odata.entities == ENTITIES_ODATA
    with pytest.raises(ConfigError, match="syspro.odata_password"):
        connect("odata", operator_password="secret", **kw)
    with pytest.raises(ConfigError, match="syspro.transport"):
        connect("soap", **kw)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h/Rest/Logon?Operator=ENET01&OperatorPassword=pw&CompanyId=EDU1&CompanyPassword=cp",
         "http://h/Rest/Logon?Operator=ENET01&OperatorPassword=***&CompanyId=EDU1&CompanyPassword=***"),
        ("http://h/Rest/Query/Query?UserId=ABC00%20%20&BusinessObject=COMFND",
         "http://h/Rest/Query/Query?UserId=***&BusinessObject=COMFND"),
        ("https://op:pw@h/x?CompanyPassword=", "https://h/x?CompanyPassword="),
        ("http://h/Rest/Logon?operatorpassword=pw", "http://h/Rest/Logon?operatorpassword=***"),
    ],
)
def test_safe_url(url: str, expected: str) -> None:
    assert safe_url(url) == expected


def test_comfnd_query_is_escaped_and_bracketed() -> None:
    xml = build_comfnd_query("ApSupplier", ["Supplier"], [[("SupplierName", "EQ", "A & <B>")],
                                                          [("Supplier", "GE", "1"), ("Supplier", "LT", "2")]],
                             ["Supplier"], 10)
    assert "<Value>A &amp; &lt;B&gt;</Value>" in xml
    assert ("<Expression><AndOr>Or</AndOr><OpenBracket>(</OpenBracket><Column>Supplier</Column>"
            "<Condition>GE</Condition><Value>1</Value><CloseBracket></CloseBracket></Expression>") in xml
    assert "<Expression><AndOr>And</AndOr><OpenBracket></OpenBracket><Column>Supplier</Column>" in xml
    assert xml.startswith('<Query xmlns:xsd="http://www.w3.org/2001/XMLSchema-instance" '
                          'xsd:noNamespaceSchemaLocation="COMFND.XSD"><TableName>ApSupplier</TableName>'
                          "<ReturnRows>10</ReturnRows>")


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("O'Brien", "'O''Brien'"),
        (date(2024, 5, 8), "2024-05-08T00:00:00Z"),
        (Decimal("12.50"), "12.50"),
        (0x0A2171, "binary'AAAAAAAKIXE='"),
        (None, "null"),
    ],
)
def test_odata_literals(value: Any, literal: str) -> None:
    assert odata_literal(value) == literal


def test_odata_string_filter_round_trips_through_the_simulator(syspro_client, syspro_sim) -> None:
    syspro_sim.sim.upsert("ApInvoice", {"Supplier": "O'NEIL", "Invoice": "Q-1", "JournalDate": "2024-05-30",
                                        "OrigInvValue": "1.00"})
    client = syspro_client("odata")
    _, rows = collect(client, AP_ODATA["ap_invoice"], since=date(2024, 5, 30))
    assert [r["Supplier"] for r in rows] == ["O'NEIL"]
    assert rows[0]["@SupplierName"] is None  # looked up with 'O''NEIL' and not found


def _reply(status: int = 200, body: bytes = b"", ctype: str = "application/octet-stream") -> httpx.Response:
    request = httpx.Request("GET", "http://h/Rest/Query/Query?UserId=TOKEN00&OperatorPassword=pw")
    return httpx.Response(status, content=body, headers={"Content-Type": ctype}, request=request)


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        (_reply(body=INVALID_SESSION.encode()), SourceSessionExpired, "UserID is invalid"),
        (_reply(body=b"ERROR: Invalid operator password"), SourceAuthFailed, "Invalid operator password"),
        (_reply(body=b"  error: something odd"), SourceUnavailable, "something odd"),
        (_reply(401), SourceAuthFailed, "HTTP 401"),
        (_reply(404, b"Endpoint not found."), SourceUnavailable, "check the base URL"),
        (_reply(502), SourceUnavailable, "HTTP 502"),
        (_reply(body=b"<html><body>Bad gateway</body></html>"), SourceUnavailable, "HTML page"),
        (_reply(body=b"<h1>x</h1>", ctype="text/html"), SourceUnavailable, "HTML page"),
    ],
)
def test_check_enet(response: httpx.Response, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        check_enet(response)
    assert "pw" not in info.value.url and "TOKEN00" not in info.value.url


def test_check_enet_scrubs_secrets_echoed_by_the_server() -> None:
    with pytest.raises(SourceUnavailable) as info:
        check_enet(_reply(body=b"ERROR: bad value 'hunter22'"), scrub=lambda s: s.replace("hunter22", "***"))
    assert "hunter22" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (400, {"error": {"code": "", "message": "Syntax error at position 3"}}, SourceUnavailable, "Syntax error"),
        (403, {}, SourceAuthFailed, "HTTP 403"),
        (404, {"error": {"message": "no such set"}}, SourceUnavailable, "no such set"),
        (200, {"nope": []}, SourceUnavailable, "no 'value' list"),
    ],
)
def test_check_odata(status: int, body: dict, error: type, match: str) -> None:
    response = httpx.Response(status, json=body, request=httpx.Request("GET", "http://h/EDU1/ApInvoice"))
    with pytest.raises(error, match=match):
        check_odata(response)


def test_enet_refuses_a_reply_with_a_dtd() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Logon"):
            return httpx.Response(200, content=b"ABCDEF0123456789ABCDEF012345678900  ")
        body = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>'
                b"<GenJournalDetail><Row><GlYear>&a;</GlYear></Row></GenJournalDetail>")
        return httpx.Response(200, content=body)

    with SysproEnetClient("http://erp.example", "OP", "pw", "EDU1", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(SourceUnavailable, match="DTD"):
            list(client.pages(AP_ENET["gl_journal"], since=None))


def test_enet_session_unit_with_mock_transport() -> None:
    sim = SysproSimulator()
    seen: list[str] = []

    def audit(kind: str, details: Any) -> None:
        seen.append(kind)

    client = SysproEnetClient("http://sim", "ENET01", "secret", "EDU1", transport=mock_transport(sim), audit=audit)
    with client:
        (page,) = client.pages(AP_ENET["ap_journal"], since=0x0A2000, limit=2)
        assert len(page.rows) == 2 and page.next_token is None
        token = client.session.user_id
        assert token is not None and not token.endswith(" ")  # trailing spaces stripped
        assert "XmlIn=" in page.url and "secret" not in page.url and token not in page.url
    assert seen == ["logon", "logoff"] and sim.sessions() == []


@pytest.mark.parametrize("base_path", ["/SYSPROWCFService/Rest", "/erp/custom/Rest", "/"])
def test_request_logs_never_show_passwords_or_the_session_whatever_the_base_path(caplog, base_path: str) -> None:
    # httpx logs every request line at INFO; e.net puts both passwords and the session in the query.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Logon"):
            return httpx.Response(200, text="SESSIONTOKEN0123456789ABCDEF00  ")
        if request.url.path.endswith("/Query/Query"):
            return httpx.Response(200, text='<?xml version="1.0" encoding="Windows-1252"?><ApInvoice></ApInvoice>')
        return httpx.Response(200, text="0")  # Logoff

    caplog.set_level(logging.DEBUG)
    client = SysproEnetClient(f"http://erp.example{base_path}", "ENET01", "op-pass-123", "EDU1", "co-pass-456",
                              transport=httpx.MockTransport(handler))
    with client:
        assert [p.rows for p in client.pages(AP_ENET["ap_invoice"], since=None)] == [()]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Logon" in logged and "Query/Query" in logged and "Logoff" in logged  # request lines were logged...
    for secret in ("op-pass-123", "co-pass-456", "SESSIONTOKEN0123456789ABCDEF00"):
        assert secret not in logged  # ...without what they carried
