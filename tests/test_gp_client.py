"""``GpClient`` end to end against the GP simulator, plus canned replies for odd servers.

Covers the vendor documentation: the NTLM handshake and what counts as an auth failure, both envelopes and list shapes and next-link paging, client-side ``ModifiedDate``
filtering, unposted documents, TLS with a private CA and the
error classification.
"""

from __future__ import annotations

import dataclasses
import io
import json
import traceback
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
import trustme
from requests.structures import CaseInsensitiveDict

from erp_slack.errors import (
    ConfigError,
    EntityNotOffered,
    SourceAccessDenied,
    SourceAuthFailed,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.sources.gp.client import GpClient, flatten
from erp_slack.sources.gp.entities import GL_JOURNAL, PAYABLES_INVOICE, PURCHASE_ORDER, VENDOR
from erp_slack.sources.http import RetryPolicy

ALL_VENDORS = {
    "ACETRAVE0001", "ADVANCED0001", "ASSOCIAT0001", "CENTRALC0001", "NORDICSU0001", "OLDPRINT0001", "SMITHSON0001",
}


def _keys(pages, column: str = "Key.Id") -> list[str]:
    return [row[column] for page in pages for row in page.rows]


class _Audit(list):
    def __call__(self, kind: str, details: Any) -> None:
        self.append((kind, dict(details)))

    def kinds(self) -> list[str]:
        return [k for k, _ in self]


# --- handshake and credentials ----------------------------------------------------------------------


def test_logs_on_once_and_reads_on_the_same_connection(gp_sim):
    audit = _Audit()
    with gp_sim.client(audit=audit) as client:
        assert set(_keys(client.pages(VENDOR, since=None))) == ALL_VENDORS
        assert _keys(client.pages(PURCHASE_ORDER, since=None)) == ["PO2088", "PO2107", "PO2109"]
    assert audit.kinds() == ["logon"]
    assert audit[0][1]["user"] == "CONTOSO\\svc-gp-poll"
    counters = gp_sim.sim.counters()
    assert counters["logons"] == 1 and counters["challenges"] == 1
    assert len({r["conn"] for r in gp_sim.sim.requests()}) == 1


def test_wrong_password_is_an_auth_failure_that_never_shows_the_password(gp_sim):
    secret = "Wr0ng-S3cret!"
    audit = _Audit()
    sleeps: list[float] = []
    client = gp_sim.client(password=secret, audit=audit, sleep=sleeps.append)
    with pytest.raises(SourceAuthFailed, match=r"refused the Windows credentials after the NTLM handshake") as info:
        list(client.pages(VENDOR, since=None))
    exc = info.value
    assert exc.status == 401 and exc.source == "gp"
    assert secret not in "".join(traceback.format_exception(exc))
    assert secret not in repr(client) and secret not in json.dumps(list(audit), default=str)
    assert audit.kinds() == ["auth_failed"] and sleeps == []  # no retry: retrying cannot help


def test_password_changed_on_the_server_then_fixed_in_the_client(gp_sim):
    old = gp_sim.client()
    assert len(_keys(old.pages(VENDOR, since=None))) == 7
    gp_sim.sim.set_password(gp_sim.username, "Spring-2025!")
    with pytest.raises(SourceAuthFailed):
        list(old.pages(VENDOR, since=None))  # the connection must log on again, with the old password
    with gp_sim.client(password="Spring-2025!") as fixed:
        assert len(_keys(fixed.pages(VENDOR, since=None))) == 7


def test_no_company_access_is_an_auth_failure(gp_sim):
    gp_sim.sim.add_user("CONTOSO\\aleeds", "Al33ds-pass", gp_user="ALEEDS", companies=[])
    audit = _Audit()
    client = gp_sim.client(username="CONTOSO\\aleeds", password="Al33ds-pass", audit=audit)
    with pytest.raises(SourceAuthFailed, match="no access to company 'Fabrikam, Inc.'") as info:
        list(client.pages(VENDOR, since=None))
    assert info.value.status == 403
    assert audit.kinds() == ["logon", "auth_failed"]  # Windows logon worked; GP access did not


def test_negotiate_only_and_channel_binding_over_tls(gp_sim_factory):
    server = gp_sim_factory(tls=True, require_cbt=True, advertise=["Negotiate"])
    with server.client() as client:
        assert set(_keys(client.pages(VENDOR, since=None))) == ALL_VENDORS


# --- TLS -----------------------------------------------------------------------------------------------


def test_tls_with_the_ca_bundle(gp_sim_tls):
    assert gp_sim_tls.base_url.startswith("https://localhost:")
    with gp_sim_tls.client(verify=gp_sim_tls.ca_path) as client:
        assert set(_keys(client.pages(VENDOR, since=None))) == ALL_VENDORS


def test_unknown_certificate_is_refused_with_a_clear_message(gp_sim_tls, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    for verify in (True, str(other_ca)):
        sleeps: list[float] = []
        client = gp_sim_tls.client(verify=verify, sleep=sleeps.append)
        with pytest.raises(SourceUnavailable, match=r"not trusted: set the GP connection's CA bundle \(verify="):
            list(client.pages(VENDOR, since=None))
        assert sleeps == []


def test_missing_ca_bundle_is_a_config_error(gp_sim_tls, tmp_path):
    with pytest.raises(ConfigError, match="verify"):
        gp_sim_tls.client(verify=str(tmp_path / "missing.pem"))


# --- envelopes, list shapes, paging ---------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ["payload", "bare"])
@pytest.mark.parametrize("list_shape", ["array", "object"])
@pytest.mark.parametrize("page_size", [None, 2])
@pytest.mark.parametrize("absolute_links", [True, False])
def test_every_envelope_shape_and_paging_reads_every_row_once(
    gp_sim_factory, envelope, list_shape, page_size, absolute_links
):
    server = gp_sim_factory(envelope=envelope, list_shape=list_shape, page_size=page_size)
    if not absolute_links:
        server.sim.url = None  # next links become server-relative paths
    with server.client() as client:
        keys = _keys(client.pages(VENDOR, since=None))
    assert sorted(keys) == sorted(ALL_VENDORS) and len(keys) == 7
    expected_requests = 1 if page_size is None else 4
    assert server.sim.counters()["GET Purchasing/Vendors"] == expected_requests


def test_single_documents_and_company_list(gp_sim):
    with gp_sim.client() as client:
        assert client.company_url.endswith("/Tenants(DefaultTenant)/Companies(Fabrikam%2C%20Inc.)")
        assert client.get("Purchasing/Vendors", "ACETRAVE0001")["Name"] == "A Travel Company"
        gp_sim.sim.configure(envelope="bare")
        doc = client.get("Purchasing/Payables/Transactions", "1", "00000000000000641")
        assert doc["VendorDocumentNumber"] == "INV-88213"
        assert client.companies() == ["Fabrikam, Inc."]
        with pytest.raises(SourceUnavailable, match="not found"):
            client.get("Purchasing/Vendors", "NOPE0001")


def test_company_with_parentheses(gp_sim_factory):
    server = gp_sim_factory(companies=["Fabrikam, Inc.", "Contoso (Bermuda) Ltd."])
    server.sim.add_vendor("BERMUDA0001", "Island Shipping", company="Contoso (Bermuda) Ltd.")
    with server.client(company="Contoso (Bermuda) Ltd.") as client:
        assert "Companies(Contoso%20%28Bermuda%29%20Ltd.)" in client.company_url
        assert _keys(client.pages(VENDOR, since=None)) == ["BERMUDA0001"]


def test_limit_stops_paging_early(gp_sim_factory):
    server = gp_sim_factory(page_size=1)
    with server.client() as client:
        assert len(_keys(client.pages(VENDOR, since=None, limit=2))) == 2
    assert server.sim.counters()["GET Purchasing/Vendors"] == 2


def test_large_unpaged_reply_is_split_into_pages(gp_sim):
    with gp_sim.client(page_rows=2) as client:
        pages = list(client.pages(VENDOR, since=None))
    assert [len(p.rows) for p in pages] == [2, 2, 2, 1]
    assert [p.row_count for p in pages] == [7, 0, 0, 0]
    assert [p.next_token is None for p in pages] == [False, False, False, True]


def test_a_million_rows_with_a_limit(gp_sim_factory):
    server = gp_sim_factory(page_size=500)
    server.sim.generate("payables", 1_000_000)
    with server.client() as client:
        rows = [r for p in client.pages(PAYABLES_INVOICE, since=None, limit=5) for r in p.rows]
    assert len(rows) == 5
    assert server.sim.counters()["GET Purchasing/Payables/Transactions"] == 1


# --- client-side filtering ------------------------------------------------------------------------------


def test_since_is_closed_and_until_is_open(gp_sim):
    nordic = datetime(2024, 3, 1, 7, 30, tzinfo=timezone.utc)  # NORDICSU0001's ModifiedDate
    associat = datetime(2024, 3, 15, 8, 1, tzinfo=timezone.utc)  # ASSOCIAT0001's ModifiedDate
    with gp_sim.client() as client:
        assert set(_keys(client.pages(VENDOR, since=nordic))) == {"NORDICSU0001", "ACETRAVE0001", "ASSOCIAT0001"}
        assert set(_keys(client.pages(VENDOR, since=nordic, until=associat))) == {"NORDICSU0001", "ACETRAVE0001"}
        naive = nordic.replace(tzinfo=None)  # naive bounds are UTC, like GP's own timestamps
        assert set(_keys(client.pages(VENDOR, since=naive, until=associat))) == {"NORDICSU0001", "ACETRAVE0001"}


def test_only_changes_after_the_watermark_come_back(gp_sim):
    with gp_sim.client() as client:
        everything = [r for p in client.pages(VENDOR, since=None) for r in p.rows]
        newest = max(datetime.fromisoformat(r["ModifiedDate"].replace("Z", "+00:00")) for r in everything)
        gp_sim.sim.update_vendor("SMITHSON0001", on_hold=True)
        gp_sim.sim.add_vendor("GREENLEA0001", "Greenleaf Packaging")
        changed = [r for p in client.pages(VENDOR, since=newest) for r in p.rows]
    # ASSOCIAT0001 carries the newest seed stamp: the closed lower bound re-reads it.
    assert {r["Key.Id"] for r in changed} == {"ASSOCIAT0001", "SMITHSON0001", "GREENLEA0001"}
    assert next(r for r in changed if r["Key.Id"] == "SMITHSON0001")["IsOnHold"] is True


def test_unposted_invoices_only_when_enabled(gp_sim):
    with gp_sim.client() as client:
        posted = _keys(client.pages(PAYABLES_INVOICE, since=None))
    with gp_sim.client(include_unposted=True) as client:
        everything = _keys(client.pages(PAYABLES_INVOICE, since=None))
    assert "00000000000000655" not in posted and "00000000000000655" in everything
    assert "00000000000000602" not in everything  # a payment, not an invoice
    gp_sim.sim.post_batch("AP-0315")
    with gp_sim.client() as client:
        assert "00000000000000655" in _keys(client.pages(PAYABLES_INVOICE, since=None))


def test_gl_reads_posted_lines_only(gp_sim):
    with gp_sim.client() as client:
        rows = [r for p in client.pages(GL_JOURNAL, since=None) for r in p.rows]
    assert {r["Key.JournalId"] for r in rows} == {2911, 3390}  # 3418 is unposted work
    assert len(rows) == 5
    ap_line = next(r for r in rows if r["Lines.GLAccountKey.Id"] == "000-2100-00")
    assert str(ap_line["Lines.NetAmount"]) == "-1287.50"


def test_optional_resource_missing_is_not_offered_and_audited(gp_sim):
    gp_sim.sim.configure(expose_gl=False)
    audit = _Audit()
    with gp_sim.client(audit=audit) as client, pytest.raises(EntityNotOffered, match="does not offer"):
        list(client.pages(GL_JOURNAL, since=None))
    assert audit.kinds() == ["logon", "skipped"]
    assert audit[1][1]["entity"] == "gl_journal" and audit[1][1]["status"] == 404


def test_required_resource_missing_is_an_error(gp_sim):
    wrong = dataclasses.replace(VENDOR, table="Purchasing/Suppliers")
    with gp_sim.client() as client, pytest.raises(SourceUnavailable, match=r"404 .*check the tenant, company"):
        list(client.pages(wrong, since=None))


# --- error classification --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        ({"kind": "status", "status": 503}, SourceUnavailable, r"answered 503 .*\(gave up after 3 attempts\)"),
        ({"kind": "status", "status": 500}, SourceUnavailable, r"answered 500"),
        ({"kind": "drop"}, SourceUnavailable, r"cannot reach GP Service"),
        ({"kind": "html"}, SourceUnavailable, r"HTML page instead of JSON"),
        ({"kind": "truncated"}, SourceUnavailable, r"malformed or truncated JSON"),
        ({"kind": "auth_401"}, SourceAuthFailed, r"refused the Windows credentials after the NTLM handshake"),
        ({"kind": "status", "status": 403}, SourceAccessDenied, r"GP refuses Purchasing/Vendors to .* security task"),
    ],
)
def test_fault_classification(gp_sim, fault, error, match):
    gp_sim.sim.inject(times=5, **fault)
    with gp_sim.client() as client, pytest.raises(error, match=match):
        list(client.pages(VENDOR, since=None))


def test_timeout_is_unavailable(gp_sim):
    gp_sim.sim.inject("delay", seconds=1.0)
    client = gp_sim.client(timeout=(2.0, 0.2), retry=RetryPolicy(attempts=1))
    with pytest.raises(SourceUnavailable, match=r"timed out \(ReadTimeout\)"):
        list(client.pages(VENDOR, since=None))


def test_transient_failures_are_retried_with_backoff(gp_sim):
    gp_sim.sim.inject("status", times=2)
    sleeps: list[float] = []
    audit = _Audit()
    with gp_sim.client(sleep=sleeps.append, audit=audit) as client:
        assert len(_keys(client.pages(VENDOR, since=None))) == 7
    assert sleeps == [0.5, 1.0]
    assert audit.kinds().count("retry") == 2


def test_retries_are_capped_by_time(gp_sim):
    gp_sim.sim.inject("status", times=10)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    client = gp_sim.client(
        retry=RetryPolicy(attempts=10, timeout=1.0, wait_initial=0.4), sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(SourceUnavailable, match=r"gave up after 2 attempts"):
        list(client.pages(VENDOR, since=None))


# --- canned replies: servers the simulator does not imitate ---------------------------------------------


class _Canned(requests.adapters.BaseAdapter):
    """Answers each request with the next canned reply (status, headers, body) or raises it."""

    def __init__(self, replies: list[Any]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.urls: list[str] = []

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' adapter signature
        self.urls.append(request.url)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, headers, body = reply
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = requests.Response()
        resp.status_code = status
        resp.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        resp._content = data
        resp.raw = io.BytesIO(data)
        resp.url = request.url
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def _canned(replies: list[Any], **kwargs: Any) -> tuple[GpClient, _Canned]:
    session = requests.Session()
    adapter = _Canned(replies)
    session.mount("http://gp.test/", adapter)
    kwargs.setdefault("sleep", lambda s: None)
    client = GpClient("http://gp.test/GPService", "DefaultTenant", "Fabrikam, Inc.", "CONTOSO\\svc", "pw",
                      session=session, **kwargs)
    return client, adapter


ROW = {"Key": {"Id": "A"}, "Name": "A", "ModifiedDate": "2024-03-14T00:00:00Z"}


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        ((502, {}, b""), SourceUnavailable, r"answered 502"),
        ((429, {"Retry-After": "2"}, b""), SourceUnavailable, r"answered 429"),
        ((400, {}, {"ErrorCode": "GP.BadRequest", "Message": "Bad key."}), SourceUnavailable,
         r"answered 400 .*: Bad key\."),
        ((301, {"Location": "https://gp.test/GPService"}, b""), SourceUnavailable, r"redirected to https://gp\.test"),
        ((401, {"WWW-Authenticate": "Basic realm=x"}, b""), SourceAuthFailed, r"does not offer NTLM or Negotiate"),
        ((200, {}, "just a string"), SourceUnavailable, r"unexpected shape"),
        ((200, {}, b""), SourceUnavailable, r"empty body"),
        ((200, {"Content-Type": "text/plain"}, b"<html>login</html>"), SourceUnavailable, r"HTML page"),
        (requests.exceptions.ConnectionError("refused"), SourceUnavailable, r"cannot reach"),
    ],
)
def test_reply_classification(reply, error, match):
    client, _ = _canned([reply] * 3)
    with pytest.raises(error, match=match):
        list(client.pages(VENDOR, since=None))


def test_retry_after_is_honoured_within_the_cap():
    sleeps: list[float] = []
    client, _ = _canned([(429, {"Retry-After": "3"}, b""), (200, {}, [ROW])], sleep=sleeps.append)
    assert _keys(client.pages(VENDOR, since=None)) == ["A"]
    assert sleeps == [3.0]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"Payload": [ROW], "Links": [{"Rel": "next", "Href": "/GPService/p2"}]}, {}),
        ({"Payload": {"Items": [ROW], "NextLink": "http://gp.test/GPService/p2"}}, {}),
        ({"value": [ROW], "@odata.nextLink": "http://gp.test/GPService/p2"}, {}),
        ({"Payload": [ROW], "Links": {"next": {"href": "/GPService/p2"}}}, {}),
        ([ROW], {"Link": '</GPService/p2>; rel="next"'}),
    ],
)
def test_next_link_styles(body, headers):
    last = {"Payload": [dict(ROW, Key={"Id": "B"})]}
    client, adapter = _canned([(200, headers, body), (200, {}, last)])
    assert _keys(client.pages(VENDOR, since=None)) == ["A", "B"]
    assert adapter.urls[1] == "http://gp.test/GPService/p2"


def test_relative_next_link_resolves_against_the_current_page():
    client, adapter = _canned([(200, {}, {"Payload": [ROW], "NextLink": "Vendors?page=2"}), (200, {}, [])])
    assert _keys(client.pages(VENDOR, since=None)) == ["A"]
    assert adapter.urls[1].endswith("/Companies(Fabrikam%2C%20Inc.)/Purchasing/Vendors?page=2")


def test_paging_loops_and_foreign_links_are_refused():
    loop = {"Payload": [ROW], "NextLink": "http://gp.test/GPService/again"}
    client, _ = _canned([(200, {}, loop), (200, {}, loop)])
    with pytest.raises(SourceUnavailable, match="paging loops"):
        list(client.pages(VENDOR, since=None))
    client, adapter = _canned([(200, {}, {"Payload": [ROW], "NextLink": "http://evil.test/steal"})])
    with pytest.raises(SourceUnavailable, match="another server"):
        list(client.pages(VENDOR, since=None))
    assert len(adapter.urls) == 1  # credentials never went to the other host


def test_rows_the_client_cannot_use_become_problems():
    rows = [
        ROW,
        "junk",
        {"Key": {"Id": "B"}},
        {"Key": {"Id": "C"}, "ModifiedDate": "yesterday"},
    ]
    client, _ = _canned([(200, {}, {"Payload": rows})])
    pages = list(client.pages(VENDOR, since=None))
    assert len(pages) == 1 and _keys(pages) == ["A"]
    reasons = [reason for _, reason in pages[0].problems]
    assert reasons[0] == "list item is not a JSON object"
    assert reasons[1] == "ModifiedDate is missing"
    assert reasons[2].startswith("ModifiedDate: not a timestamp")
    assert pages[0].row_count == 4


def test_flatten():
    doc = {"Key": {"Id": "X"}, "Amount": {"Value": 1}, "Phones": [{"Value": "1"}, {"Value": "2"}], "Empty": {}}
    assert flatten(doc) == {"Key.Id": "X", "Amount.Value": 1, "Phones.0.Value": "1", "Phones.1.Value": "2",
                            "Empty": None}


def test_configuration_checks_and_repr(gp_sim):
    with pytest.raises(ConfigError, match="base_url"):
        GpClient("ftp://gp", "T", "C", "D\\u", "pw")
    with pytest.raises(ConfigError, match="username"):
        GpClient("https://gp/GPService", "T", "C", "justuser", "pw")
    client = GpClient("https://gp.example", "T", "C", "D\\u", "s3cret")
    assert "s3cret" not in repr(client) and client.company_url.startswith("https://gp.example/GPService/")
    client.close()
    client.close()
    with pytest.raises(RuntimeError):
        list(client.pages(VENDOR, since=None))


def test_a_given_session_is_not_closed():
    closed: list[bool] = []
    client, _ = _canned([])
    client._session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    client.close()
    assert closed == []



def test_one_refused_resource_is_access_denied_and_the_others_still_read(gp_sim):
    gp_sim.sim.inject("status", status=403, path=GL_JOURNAL.table, times=100)  # the role lacks the GL task
    audit = _Audit()
    with gp_sim.client(audit=audit) as client:
        with pytest.raises(SourceAccessDenied) as denied:
            list(client.pages(GL_JOURNAL, since=None))
        assert list(client.pages(VENDOR, since=None))  # the same client reads the rest
    assert denied.value.resource == GL_JOURNAL.table
    assert "password" not in str(denied.value).lower() and "Security" in denied.value.advice
    assert audit.kinds().count("access_denied") == 1 and "auth_failed" not in audit.kinds()


def test_an_account_without_access_to_the_company_is_an_auth_failure(gp_sim):
    gp_sim.sim.add_user("CONTOSO\\nocompany", "Pa55word!", gp_user="NOCO", companies=())
    with gp_sim.client(username="CONTOSO\\nocompany", password="Pa55word!") as client:
        with pytest.raises(SourceAuthFailed, match="no access to company"):
            list(client.pages(PAYABLES_INVOICE, since=None))


def test_pages_carry_the_servers_clock(gp_sim):
    with gp_sim.client() as client:
        page = next(iter(client.pages(VENDOR, since=None)))
    assert page.server_time is not None and page.server_time.tzinfo is not None
    assert abs((page.server_time - datetime.now(timezone.utc)).total_seconds()) < 60


def test_a_server_that_is_not_there_is_unreachable(gp_sim):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = GpClient(f"http://127.0.0.1:{port}/GPService", gp_sim.tenant, gp_sim.company, gp_sim.username,
                      gp_sim.password, retry=RetryPolicy(attempts=2, timeout=5.0), sleep=lambda s: None)
    with client, pytest.raises(SourceUnreachable, match="cannot reach GP Service"):
        list(client.pages(VENDOR, since=None))
