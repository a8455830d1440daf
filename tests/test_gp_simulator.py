"""The GP simulator against the facts of the vendor documentation.

NTLM really happens: the first 401 carries both schemes, the challenge and the
final leg share one connection, a wrong password ends in a final 401, an authenticated Windows
account without a GP user or company access gets 403. Envelope, list shape and paging are
switchable because the real ones are unknown; filters are ignored.
"""

from __future__ import annotations

import ast
import base64
import http.client
import json
import pathlib
import subprocess
import sys
import threading
import time
from decimal import Decimal
from urllib.parse import quote, urlsplit

import pytest
import requests
import spnego
from requests_ntlm import HttpNtlmAuth

from simulators.gp import DEFAULT_PASSWORD, DEFAULT_USER, MAX_UNPAGED_ROWS, GpSimulator

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENDORS = "Purchasing/Vendors"


def _url(server, resource: str = VENDORS, *, company: str | None = None) -> str:
    name = quote(company or server.company, safe="")
    return f"{server.base_url}/Tenants({server.tenant})/Companies({name})/{resource}"


def _get(server, resource: str = VENDORS, *, user: str = DEFAULT_USER, password: str | None = None, **kw):
    auth = HttpNtlmAuth(user, password if password is not None else server.password)
    return requests.get(_url(server, resource, company=kw.pop("company", None)), auth=auth, timeout=5, **kw)


def _conn(server) -> http.client.HTTPConnection:
    parts = urlsplit(server.url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)


def _path(server, resource: str = VENDORS) -> str:
    return urlsplit(_url(server, resource)).path


# --- the handshake ------------------------------------------------------------------------------


def test_first_request_gets_the_challenge_with_both_schemes(gp_sim):
    conn = _conn(gp_sim)
    conn.request("GET", _path(gp_sim))
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 401
    assert resp.msg.get_all("WWW-Authenticate") == ["Negotiate", "NTLM"]  # two header lines
    assert body == b"" and resp.getheader("Content-Length") == "0"


def test_three_legs_share_one_connection_and_the_connection_stays_authenticated(gp_sim):
    client = spnego.client(DEFAULT_USER, gp_sim.password, protocol="ntlm")
    conn = _conn(gp_sim)
    path = _path(gp_sim)

    conn.request("GET", path)
    leg1 = conn.getresponse()
    leg1.read()
    conn.request("GET", path, headers={"Authorization": "NTLM " + base64.b64encode(client.step()).decode()})
    leg2 = conn.getresponse()
    leg2.read()
    scheme, _, challenge = leg2.getheader("WWW-Authenticate").partition(" ")
    assert (leg1.status, leg2.status, scheme) == (401, 401, "NTLM")
    assert base64.b64decode(challenge)[:12] == b"NTLMSSP\x00\x02\x00\x00\x00"  # a type-2 message
    type3 = client.step(base64.b64decode(challenge))
    conn.request("GET", path, headers={"Authorization": "NTLM " + base64.b64encode(type3).decode()})
    leg3 = conn.getresponse()
    vendors = json.loads(leg3.read())
    assert leg3.status == 200 and vendors["Payload"][0]["Key"]["Id"] == "ACETRAVE0001"

    conn.request("GET", path)  # no header: HTTP.sys trusts the authenticated connection
    again = conn.getresponse()
    again.read()
    assert again.status == 200

    log = gp_sim.sim.requests()
    assert len({r["conn"] for r in log}) == 1
    assert [r["status"] for r in log] == [401, 401, 200, 200]
    assert log[2]["user"] == DEFAULT_USER


def test_the_final_leg_on_another_connection_fails(gp_sim):
    client = spnego.client(DEFAULT_USER, gp_sim.password, protocol="ntlm")
    first, second = _conn(gp_sim), _conn(gp_sim)
    first.request("GET", _path(gp_sim), headers={"Authorization": "NTLM " + base64.b64encode(client.step()).decode()})
    leg2 = first.getresponse()
    leg2.read()
    type3 = client.step(base64.b64decode(leg2.getheader("WWW-Authenticate").split(" ", 1)[1]))
    second.request("GET", _path(gp_sim), headers={"Authorization": "NTLM " + base64.b64encode(type3).decode()})
    resp = second.getresponse()
    resp.read()
    assert resp.status == 401  # the acceptor context belongs to the first connection only


def test_requests_ntlm_logs_on_and_reuses_the_connection(gp_sim):
    with requests.Session() as s:
        auth = HttpNtlmAuth(DEFAULT_USER, gp_sim.password)
        first = s.get(_url(gp_sim), auth=auth, timeout=5)
        second = s.get(_url(gp_sim, "Purchasing/Transactions"), auth=auth, timeout=5)
    assert first.status_code == 200 and [h.status_code for h in first.history] == [401, 401]
    assert second.status_code == 200 and second.history == []
    counters = gp_sim.sim.counters()
    assert counters["logons"] == 1 and counters["challenges"] == 1
    assert len({r["conn"] for r in gp_sim.sim.requests()}) == 1


def test_wrong_password_ends_in_a_final_401_with_fresh_challenge(gp_sim):
    resp = _get(gp_sim, password="not-the-password")
    assert resp.status_code == 401 and len(resp.history) == 2
    assert resp.headers["WWW-Authenticate"] == "Negotiate, NTLM"
    assert gp_sim.sim.counters()["auth_failures"] == 1


def test_unknown_account_is_refused(gp_sim):
    resp = _get(gp_sim, user="CONTOSO\\nobody", password="whatever")
    assert resp.status_code == 401 and len(resp.history) == 2


def test_negotiate_only_server(gp_sim_factory):
    server = gp_sim_factory(advertise=["Negotiate"])
    conn = _conn(server)
    conn.request("GET", _path(server))
    first = conn.getresponse()
    first.read()
    assert first.msg.get_all("WWW-Authenticate") == ["Negotiate"]
    resp = _get(server)  # requests-ntlm then sends raw NTLMSSP under the Negotiate scheme
    assert resp.status_code == 200
    assert {r["authorization"] for r in server.sim.requests()} >= {"Negotiate"}


def test_reauth_per_request_challenges_every_request(gp_sim_factory):
    server = gp_sim_factory(reauth_per_request=True)
    with requests.Session() as s:
        auth = HttpNtlmAuth(DEFAULT_USER, server.password)
        for _ in range(3):
            assert s.get(_url(server), auth=auth, timeout=5).status_code == 200
    assert server.sim.counters()["logons"] == 3


def test_password_change_forces_a_new_logon(gp_sim):
    with requests.Session() as s:
        old = HttpNtlmAuth(DEFAULT_USER, gp_sim.password)
        assert s.get(_url(gp_sim), auth=old, timeout=5).status_code == 200
        gp_sim.sim.set_password(DEFAULT_USER, "N3w-Passw0rd!")
        assert s.get(_url(gp_sim), auth=old, timeout=5).status_code == 401
        new = HttpNtlmAuth(DEFAULT_USER, "N3w-Passw0rd!")
        assert s.get(_url(gp_sim), auth=new, timeout=5).status_code == 200
    assert gp_sim.sim.password == "N3w-Passw0rd!"


def test_injected_401_after_a_good_handshake(gp_sim):
    gp_sim.sim.inject("auth_401")
    with requests.Session() as s:
        auth = HttpNtlmAuth(DEFAULT_USER, gp_sim.password)
        failed = s.get(_url(gp_sim), auth=auth, timeout=5)
        assert failed.status_code == 401 and len(failed.history) == 2
        assert s.get(_url(gp_sim), auth=auth, timeout=5).status_code == 200
        gp_sim.sim.inject("auth_401")  # an authenticated connection is made to log on again
        assert s.get(_url(gp_sim), auth=auth, timeout=5).status_code == 401


# --- authorization -------------------------------------------------------------------------


def test_windows_account_without_gp_user_gets_403(gp_sim):
    gp_sim.sim.add_user("CONTOSO\\jdoe", "Jd0e-pass")  # authenticates, but no GP user mapping
    resp = _get(gp_sim, user="CONTOSO\\jdoe", password="Jd0e-pass")
    assert resp.status_code == 403 and "not mapped" in resp.json()["Message"]


def test_gp_user_without_company_access_gets_403(gp_sim):
    gp_sim.sim.add_user("CONTOSO\\aleeds", "Al33ds-pass", gp_user="ALEEDS", companies=[])
    resp = _get(gp_sim, user="CONTOSO\\aleeds", password="Al33ds-pass")
    assert resp.status_code == 403 and "does not have access" in resp.json()["Message"]
    gp_sim.sim.set_company_access("CONTOSO\\aleeds", [gp_sim.company])
    assert _get(gp_sim, user="CONTOSO\\aleeds", password="Al33ds-pass").status_code == 200


def test_unknown_company_tenant_and_resource_are_404(gp_sim):
    assert _get(gp_sim, company="Nope Ltd.").status_code == 404
    assert _get(gp_sim, "Purchasing/Nothing").status_code == 404
    resp = requests.get(
        f"{gp_sim.base_url}/Tenants(Other)/Companies({quote(gp_sim.company, safe='')})/{VENDORS}",
        auth=HttpNtlmAuth(DEFAULT_USER, gp_sim.password), timeout=5,
    )
    assert resp.status_code == 404


def test_gl_is_an_optional_resource(gp_sim):
    assert _get(gp_sim, "Financials/GeneralLedger/Transactions").status_code == 200
    gp_sim.sim.configure(expose_gl=False)  # GL is outside the documented SBA catalog
    assert _get(gp_sim, "Financials/GeneralLedger/Transactions").status_code == 404


def test_companies_list_and_help_page(gp_sim):
    auth = HttpNtlmAuth(DEFAULT_USER, gp_sim.password)
    companies = requests.get(f"{gp_sim.base_url}/Tenants({gp_sim.tenant})/Companies", auth=auth, timeout=5)
    assert companies.json() == {"Payload": [{"Key": {"Id": -1}, "Name": "Fabrikam, Inc."}]}
    help_page = requests.get(f"{gp_sim.base_url}/Tenants({gp_sim.tenant})/help", auth=auth, timeout=5)
    assert help_page.headers["Content-Type"].startswith("text/html") and "Purchasing/Vendors" in help_page.text


def test_company_names_with_parentheses_raw_or_encoded(gp_sim_factory):
    server = gp_sim_factory(companies=["Fabrikam, Inc.", "Contoso (Bermuda) Ltd."])
    server.sim.add_vendor("BERMUDA0001", "Island Shipping", company="Contoso (Bermuda) Ltd.")
    auth = HttpNtlmAuth(DEFAULT_USER, server.password)
    raw = f"{server.base_url}/Tenants({server.tenant})/Companies(Contoso%20(Bermuda)%20Ltd.)/{VENDORS}"
    encoded = _url(server, company="Contoso (Bermuda) Ltd.")
    for url in (raw, encoded):
        resp = requests.get(url, auth=auth, timeout=5)
        assert [v["Key"]["Id"] for v in resp.json()["Payload"]] == ["BERMUDA0001"]


def test_tls_and_channel_binding(gp_sim_factory):
    server = gp_sim_factory(tls=True, require_cbt=True)
    assert server.url.startswith("https://localhost:")
    auth = HttpNtlmAuth(DEFAULT_USER, server.password)
    good = requests.get(_url(server), auth=auth, verify=server.ca_path, timeout=5)
    assert good.status_code == 200
    # Extended Protection: a client that does not bind the TLS channel is refused.
    unbound = requests.get(
        _url(server), auth=HttpNtlmAuth(DEFAULT_USER, server.password, send_cbt=False), verify=server.ca_path, timeout=5
    )
    assert unbound.status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(_url(server), auth=HttpNtlmAuth(DEFAULT_USER, server.password), timeout=5)
    assert pathlib.Path(server.ca_path).read_bytes() == server.sim.ca_pem


# --- bodies, envelopes, paging ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "list_shape", "check"),
    [
        ("payload", "array", lambda b: isinstance(b["Payload"], list)),
        ("payload", "object", lambda b: isinstance(b["Payload"]["Items"], list) and b["Payload"]["Count"] == 7),
        ("bare", "array", lambda b: isinstance(b, list)),
        ("bare", "object", lambda b: isinstance(b["Items"], list) and b["Count"] == 7),
    ],
)
def test_envelope_and_list_shape(gp_sim, envelope, list_shape, check):
    gp_sim.sim.configure(envelope=envelope, list_shape=list_shape)
    body = _get(gp_sim).json()
    assert check(body)


def test_single_document_by_compound_key(gp_sim):
    doc = _get(gp_sim, "Purchasing/Payables/Transactions(1;00000000000000641)").json()["Payload"]
    assert doc["VendorDocumentNumber"] == "INV-88213" and doc["TransactionState"] == "Open"
    gp_sim.sim.configure(envelope="bare")
    bare = _get(gp_sim, "Purchasing/Payables/Transactions(Invoice;00000000000000641)").json()
    assert bare["Key"]["Id"] == "00000000000000641"
    assert _get(gp_sim, "Purchasing/Vendors(NOPE0001)").status_code == 404


def test_amounts_are_json_numbers_with_their_scale(gp_sim):
    resp = _get(gp_sim, "Purchasing/Payables/Transactions(1;00000000000000641)")
    assert '"Value":1287.50' in resp.text
    doc = json.loads(resp.text, parse_float=Decimal)["Payload"]
    assert doc["DocumentAmount"] == {"Value": Decimal("1287.50"), "Currency": "Z-US$", "DecimalDigits": 2}


@pytest.mark.parametrize(
    ("envelope", "list_shape", "where"),
    [("payload", "array", "links"), ("payload", "object", "nextlink"), ("bare", "object", "nextlink"),
     ("bare", "array", "header")],
)
def test_next_link_paging_reads_every_row_once(gp_sim_factory, envelope, list_shape, where):
    server = gp_sim_factory(page_size=3, envelope=envelope, list_shape=list_shape)
    seen: list[str] = []
    url: str | None = _url(server)
    with requests.Session() as s:
        auth = HttpNtlmAuth(DEFAULT_USER, server.password)
        while url:
            resp = s.get(url, auth=auth, timeout=5)
            body = resp.json()
            inner = body["Payload"] if envelope == "payload" else body
            items = inner["Items"] if list_shape == "object" else inner
            seen += [v["Key"]["Id"] for v in items]
            if where == "links":
                url = next((link["Href"] for link in body.get("Links", []) if link["Rel"] == "next"), None)
            elif where == "nextlink":
                url = inner.get("NextLink")
            else:
                url = resp.links.get("next", {}).get("url")
    assert len(seen) == 7 and len(set(seen)) == 7 and seen == sorted(seen)


def test_filters_are_ignored(gp_sim):
    everything = _get(gp_sim).json()["Payload"]
    filtered = _get(gp_sim, params={"$filter": "ModifiedDate gt 2099-01-01", "ModifiedSince": "2099-01-01T00:00:00Z",
                                    "$top": "1"}).json()["Payload"]
    assert filtered == everything and len(everything) == 7


def test_a_million_rows_are_served_in_pages(gp_sim_factory):
    server = gp_sim_factory(page_size=1000)
    total = server.sim.generate("payables", 1_000_000)
    assert total == 1_000_006
    started = time.perf_counter()
    first = _get(server, "Purchasing/Payables/Transactions").json()
    late = requests.get(  # jump near the end with a keyset token: no row before it is built
        _url(server, "Purchasing/Payables/Transactions") + "?$skiptoken=" + _token(["b", 0, 999_990]),
        auth=HttpNtlmAuth(DEFAULT_USER, server.password), timeout=5,
    ).json()
    assert time.perf_counter() - started < 5
    assert len(first["Payload"]) == 1000 and "Links" in first
    assert [r["Key"]["Id"] for r in late["Payload"]][-1] == "90000000000999999" and "Links" not in late


def test_unpaged_lists_refuse_huge_collections():
    with GpSimulator() as sim, pytest.raises(ValueError, match="paging"):
        sim.generate("vendors", MAX_UNPAGED_ROWS + 1)


def _token(position: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


# --- data and state machine ------------------------------------------------


def test_seed_data_follows_the_sample_company(gp_sim):
    vendors = {v["Key"]["Id"]: v for v in _get(gp_sim).json()["Payload"]}
    assert {"ACETRAVE0001", "ADVANCED0001", "ASSOCIAT0001"} <= set(vendors)
    assert vendors["ACETRAVE0001"]["ModifiedDate"] == "2024-03-14T15:22:07.123Z"
    assert vendors["ASSOCIAT0001"]["IsOnHold"] is True
    payables = {p["Key"]["Id"]: p for p in _get(gp_sim, "Purchasing/Payables/Transactions").json()["Payload"]}
    assert payables["00000000000000655"]["TransactionState"] == "Work"
    assert payables["00000000000000602"]["Type"] == "Payment"
    pos = {p["Key"]["Id"]: p for p in _get(gp_sim, "Purchasing/Transactions").json()["Payload"]}
    assert (pos["PO2107"]["Status"], pos["PO2109"]["Status"], pos["PO2088"]["Status"]) == (2, 1, 5)


def test_modified_dates_are_utc_and_receipts_day_granular(gp_sim):
    for resource in (VENDORS, "Purchasing/Payables/Transactions", "Purchasing/Transactions",
                     "Financials/GeneralLedger/Transactions"):
        for row in _get(gp_sim, resource).json()["Payload"]:
            assert row["ModifiedDate"].endswith("Z")
    for row in _get(gp_sim, "Purchasing/Receipts").json()["Payload"]:
        assert row["ModifiedDate"].endswith("T00:00:00")  # MODIFDT only, no DEX_ROW_TS


def test_posting_a_batch_moves_work_to_open_and_stamps(gp_sim):
    sim = gp_sim.sim
    drafts = sim.add_drafts(3, batch="AP-0401")
    payables = {p["Key"]["Id"]: p for p in _get(gp_sim, "Purchasing/Payables/Transactions").json()["Payload"]}
    assert {payables[v]["TransactionState"] for v in drafts} == {"Work"}
    before = max(payables[v]["ModifiedDate"] for v in drafts)
    assert sim.post_batch("AP-0401") == drafts
    after = {p["Key"]["Id"]: p for p in _get(gp_sim, "Purchasing/Payables/Transactions").json()["Payload"]}
    assert {after[v]["TransactionState"] for v in drafts} == {"Open"}
    assert min(after[v]["ModifiedDate"] for v in drafts) > before
    with pytest.raises(ValueError):
        sim.post_batch("AP-0401")  # nothing left to post


def test_po_status_machine(gp_sim):
    sim = gp_sim.sim
    po = sim.add_po("ACETRAVE0001", [("100XLG", "Green Phone", 2, "119.00")], buyer="ALEEDS")
    assert sim.set_po_status(po, "Released")["Status"] == 2
    receipt = sim.receive_po(po)
    assert _get(gp_sim, f"Purchasing/Transactions({po})").json()["Payload"]["Status"] == 4
    assert _get(gp_sim, f"Purchasing/Receipts({receipt})").json()["Payload"]["Lines"][0]["PONumber"] == po
    closed = sim.set_po_status(po, 5)
    assert closed["Status"] == 5 and closed["TransactionState"] == "History"
    with pytest.raises(ValueError, match="cannot go from Closed to Released"):
        sim.set_po_status(po, "Released")
    other = sim.add_po("ACETRAVE0001", [("100XLG", "Green Phone", 1, "119.00")])
    assert sim.set_po_status(other, "Canceled")["Status"] == 6


def test_voiding_a_gl_entry_adds_a_reversing_entry_and_flags_the_original(gp_sim):
    sim = gp_sim.sim
    jid = sim.post_gl_entry([("000-6400-00", "5000.00", 0), ("000-2300-00", 0, "5000.00")], reference="April rent")
    reversing = sim.void_gl_entry(jid)
    listing = _get(gp_sim, "Financials/GeneralLedger/Transactions").json()["Payload"]
    entries = {e["Key"]["JournalId"]: e for e in listing}
    original, new = entries[jid], entries[reversing]
    assert original["IsVoided"] is True and original["Lines"][0]["DebitAmount"]["Value"] == 5000.0
    assert new["OriginalJournalId"] == jid and new["Lines"][0]["CreditAmount"]["Value"] == 5000.0
    assert new["ModifiedDate"] < original["ModifiedDate"]  # the flag update is the newest change
    with pytest.raises(ValueError, match="already reversed"):
        sim.void_gl_entry(jid)
    with pytest.raises(ValueError, match="does not balance"):
        sim.post_gl_entry([("000-6400-00", "1.00", 0), ("000-2300-00", 0, "2.00")])


def test_vendor_changes_stamp_modified_date(gp_sim):
    sim = gp_sim.sim
    created = sim.add_vendor("GREENLEA0001", "Greenleaf Packaging", city="Omaha", state="NE")
    changed = sim.update_vendor("GREENLEA0001", on_hold=True, phone="40255501000000")
    assert changed["ModifiedDate"] > created["ModifiedDate"] and changed["IsOnHold"] is True
    with pytest.raises(ValueError, match="unknown vendor fields"):
        sim.update_vendor("GREENLEA0001", colour="green")


# --- control API, faults, counters ---------------------------------------------------------------


def test_control_calls_over_http(gp_sim):
    def call(method: str, **kwargs):
        return requests.post(f"{gp_sim.url}/__sim/{method}", json=kwargs, timeout=5)

    voucher = call("add_invoice", vendor_id="ADVANCED0001", document_number="INV-90001", amount="77.70").json()
    assert voucher["ok"] is True
    assert call("post_batch", batch="AP-SIM").json()["result"] == [voucher["result"]]
    assert call("set_po_status", po_number="PO2088", status="Released").status_code == 409
    assert call("update_vendor", vendor_id="NOPE0001", name="x").status_code == 404
    assert call("launch_missiles").status_code == 404
    assert call("configure", page_size=2).json()["result"]["page_size"] == 2
    assert requests.get(f"{gp_sim.url}/__sim/counters", timeout=5).json()["result"]["control"] >= 6


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "counter"),
    [({"kind": "status"}, 503, "application/json", "fault_503"),
     ({"kind": "status", "status": 500}, 500, "application/json", "fault_500"),
     ({"kind": "html"}, 200, "text/html", "fault_html"),
     ({"kind": "status", "status": 403}, 403, "application/json", "fault_403")],
)
def test_status_faults(gp_sim, fault, status, content_type, counter):
    gp_sim.sim.inject(**fault)
    resp = _get(gp_sim)
    assert resp.status_code == status and resp.headers["Content-Type"].startswith(content_type)
    assert _get(gp_sim).status_code == 200  # one-shot
    assert gp_sim.sim.counters()[counter] == 1


def test_truncated_json_fault(gp_sim):
    gp_sim.sim.inject("truncated", path="Purchasing/Vendors")
    resp = _get(gp_sim)
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        json.loads(resp.text)


def test_drop_and_delay_faults(gp_sim):
    gp_sim.sim.inject("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(gp_sim)
    gp_sim.sim.inject("delay", seconds=2.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(_url(gp_sim), auth=HttpNtlmAuth(DEFAULT_USER, gp_sim.password), timeout=(2, 0.2))


def test_faults_can_target_one_resource(gp_sim):
    gp_sim.sim.inject("status", path="Payables", times=2)
    assert _get(gp_sim).status_code == 200
    assert _get(gp_sim, "Purchasing/Payables/Transactions").status_code == 503
    assert _get(gp_sim, "Purchasing/Payables/Transactions").status_code == 503
    assert _get(gp_sim, "Purchasing/Payables/Transactions").status_code == 200


def test_settings_are_validated():
    with GpSimulator(seed=False) as sim:
        for bad in ({"envelope": "xml"}, {"list_shape": "tree"}, {"page_size": 0}, {"advertise": ["Basic"]},
                    {"colour": "red"}):
            with pytest.raises(ValueError):
                sim.configure(**bad)
        with pytest.raises(ValueError):
            sim.inject("meteor")
        with pytest.raises(ValueError):
            sim.add_user("no-domain", "pw")


def test_concurrent_readers_and_writers(gp_sim_factory):
    server = gp_sim_factory(page_size=2)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with requests.Session() as s:
                auth = HttpNtlmAuth(DEFAULT_USER, server.password)
                for _ in range(5):
                    assert s.get(_url(server, "Purchasing/Payables/Transactions"), auth=auth, timeout=5).ok
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    vouchers = server.sim.add_drafts(20, batch="AP-RACE")
    server.sim.post_batch("AP-RACE")
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(vouchers) == 20
    assert server.sim.counters()["logons"] == 4


# --- packaging ------------------------------------------------------------------------------------


def test_simulator_imports_nothing_from_the_project():
    modules = set()
    for path in (ROOT / "simulators" / "gp").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "simulators.gp.simulator" in modules  # the walk saw the package
    assert not {m for m in modules if m.split(".")[0] in ("erp_slack", "flows", "tasks", "blocks")}


def test_runs_alone_from_the_command_line():
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.gp", "--port", "0", "--tls"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(6)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = "".join(lines)
    assert "https://localhost:" in text and "/GPService" in text
    assert DEFAULT_USER in text and DEFAULT_PASSWORD in text and "CA:" in text
