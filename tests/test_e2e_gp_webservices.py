"""Dynamics GP over Web Services (SOAP, legacy endpoint) end to end: simulator → zeep over
requests-ntlm → pipeline → SQL outbox → drainer → Slack simulator.

The suite in ``test_e2e_gp.py`` already runs its transport-free tests on both GP transports;
this one covers what only the SOAP service has: its criteria (honoured, or ignored, since which
column ``ModifiedDate`` compares is not documented), stamps with or without an offset, a WSDL
without some operations, and both kinds of SOAP fault.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from erp_slack.cycle import make_audit_hook
from erp_slack.errors import (
    EntityNotOffered,
    SourceAccessDenied,
    SourceAuthFailed,
    SourceRefused,
    SourceUnavailable,
)
from erp_slack.sources.gp.entities import ENTITIES, GL_JOURNAL, VENDOR
from erp_slack.store import Store
from tests._cycle import run_cycle
from tests.test_e2e_gp import OPS, SEEDED, _assert_each_row_posted_once, _clock, _erp_posts, _post_changes, _rows

# Every entity's operations except GL's: a site whose Web Services install lacks them.
_WITHOUT_GL = ("GetWSEnabledCompanyForUserList", "GetLoggedValidationResultByKey", "GetVendorList", "GetVendorByKey",
               "GetPayablesDocumentList", "GetPayablesInvoiceByKey", "GetPurchaseOrderList", "GetPurchaseOrderByKey",
               "GetPurchaseReceiptList", "GetPurchaseReceiptByKey")


@pytest.fixture
def slack(slack_sim_factory):
    return slack_sim_factory(rate_limits=False, time_scale=1000.0)


def _ws(gp_sim_factory, **sim):
    return gp_sim_factory(clock=_clock, transport="webservices", **sim)


def _cycle(gp, store: Store, slack, **client_kw):
    client = gp.client(audit=make_audit_hook(store, source="gp", company=gp.company), **client_kw)
    return run_cycle(client, ENTITIES, store, slack, ops_channel=OPS)


def _by_key_calls(gp) -> int:
    return sum(n for name, n in gp.sim.counters().items() if name.startswith("SOAP ") and name.endswith("ByKey"))


@pytest.mark.parametrize("dates", ["utc", "naive"])
@pytest.mark.parametrize("criteria", ["honoured", "ignored"])
def test_every_seeded_document_posts_once_then_changes_once_and_a_quiet_run_nothing(
    gp_sim_factory, store, slack, criteria, dates,
):
    gp = _ws(gp_sim_factory, soap_criteria=criteria, soap_dates=dates)
    first = _cycle(gp, store, slack)
    assert _rows(store) == sorted(SEEDED)
    assert first.drain is not None and first.drain.records == len(SEEDED)
    # A posted journal entry arrives with each line's debit and credit (3390: 1,190.00 + 97.50 = 1,287.50).
    lines = {r["record_key"]: json.loads(r["fields"]) for r in store.deliveries() if r["entity"] == "gl_journal"}
    entry = [lines[f"3390|2024|{n}"] for n in ("16384", "32768", "49152")]
    assert [(f["account"], f["debit"], f["credit"]) for f in entry] == [
        ("000-6170-00", "1190.00", "0.00"), ("000-6630-00", "97.50", "0.00"), ("000-2100-00", "0.00", "1287.50")]
    assert {f["status"] for f in entry} == {"Posted"} and {str(f["year"]) for f in entry} == {"2024"}

    expected = _post_changes(gp.sim)
    baseline = max(r["id"] for r in store.deliveries())
    _cycle(gp, store, slack)
    assert _rows(store, baseline) == expected
    _assert_each_row_posted_once(store, slack)

    gp.sim.reset_counters()
    posts = len(_erp_posts(slack))
    quiet = _cycle(gp, store, slack)
    assert (quiet.new, quiet.updated, quiet.bad) == (0, 0, 0)
    assert len(_erp_posts(slack)) == posts
    # Only documents inside the lookback cost a by-key call, even when the server returns all.
    changed_documents = len({(e, k.split("|")[0]) for e, k, _, _ in expected})
    assert 0 < _by_key_calls(gp) <= changed_documents + 3


def test_an_unposted_journal_entry_only_when_enabled_and_its_posting_is_news(gp_sim_factory, store, slack):
    gp = _ws(gp_sim_factory)
    jid = gp.sim.post_gl_entry([("000-6400-00", "300.00", 0), ("000-2300-00", 0, "300.00")], reference="Draft",
                               posted=False)
    _cycle(gp, store, slack)
    assert not [r for r in store.deliveries() if r["record_key"].startswith(f"{jid}|")]
    baseline = max(r["id"] for r in store.deliveries())
    _cycle(gp, store, slack, include_unposted=True)
    work = [r for r in store.deliveries() if r["id"] > baseline and r["entity"] == "gl_journal"]
    assert {r["record_key"].split("|")[0] for r in work} == {"3418", str(jid)}
    assert {json.loads(r["fields"])["status"] for r in work} == {"Unposted"}
    _assert_each_row_posted_once(store, slack)


def test_a_wrong_password_is_a_final_401_that_moves_nothing_and_alerts_once(gp_sim_factory, store, slack):
    gp = _ws(gp_sim_factory)
    gp.sim.set_password(gp.username, "Rotated-2024!")
    for _ in range(2):
        with pytest.raises(SourceAuthFailed, match="refused the Windows credentials") as ei:
            _cycle(gp, store, slack)
        assert ei.value.status == 401
    assert store.deliveries() == [] and len(slack.sim.posted(OPS)) == 1
    assert len(store.audit_rows("auth_failed")) == 2
    leaks = json.dumps(slack.sim.posted(OPS)) + json.dumps(store.audit_rows(), default=str)
    assert gp.password not in leaks and "Rotated-2024!" not in leaks
    _cycle(gp, store, slack, password="Rotated-2024!")
    assert _rows(store) == sorted(SEEDED)
    assert "working again" in slack.sim.posted(OPS)[-1]["text"]


def test_a_company_without_a_role_is_refused_naming_the_companies_the_account_has(gp_sim_factory, store, slack):
    gp = _ws(gp_sim_factory, companies=("Fabrikam, Inc.", "Contoso Holdings"))
    with pytest.raises(SourceAuthFailed, match="no Web Services security role in company 'Nowhere Ltd'"):
        _cycle(gp, store, slack, company="Nowhere Ltd")
    gp.sim.set_company_access(gp.username, ["Fabrikam, Inc."])
    with pytest.raises(SourceAuthFailed, match=r"roles in: Fabrikam, Inc\."):
        _cycle(gp, store, slack, company="Contoso Holdings")
    assert store.deliveries() == []
    # The numeric company id works as well as the name.
    client = gp.client(company="-1")
    assert [r for p in client.pages(VENDOR, since=None) for r in p.rows]


def test_an_operation_the_role_lacks_fails_only_its_entity(gp_sim_factory, store, slack):
    gp = _ws(gp_sim_factory)
    gp.sim.inject("soap_denied", path="GetGLTransactionList", times=5)
    with pytest.raises(SourceAccessDenied, match="GetGLTransactionList"):
        _cycle(gp, store, slack)
    assert _rows(store) == sorted(r for r in SEEDED if r[0] != "gl_journal")
    assert store.audit_rows("access_denied")[0]["details"]["resource"] == "GetGLTransactionList"
    assert "GetGLTransactionList" in slack.sim.posted(OPS)[0]["text"] + json.dumps(slack.sim.posted(OPS)[0]["blocks"])


def test_a_site_without_gl_operations_skips_gl_and_delivers_the_rest(gp_sim_factory, store, slack):
    gp = _ws(gp_sim_factory, soap_operations=_WITHOUT_GL)
    summary = _cycle(gp, store, slack)
    assert _rows(store) == sorted(r for r in SEEDED if r[0] != "gl_journal")
    assert [r["details"]["reason"] for r in store.audit_rows("skipped")] == [
        "this GP Web Services site has no GetGLTransactionList operation"]
    assert slack.sim.posted(OPS) == [] and not summary.failed
    with pytest.raises(EntityNotOffered):
        list(gp.client().pages(GL_JOURNAL, since=None))


def test_a_system_fault_is_retried_then_says_where_gp_logs_the_detail(gp_sim_factory, store):
    gp = _ws(gp_sim_factory)
    gp.sim.inject("soap_system", path="GetVendorList", times=1)
    retried = [r for p in gp.client().pages(VENDOR, since=None) for r in p.rows]  # one fault: retried through
    assert len(retried) == 7
    gp.sim.inject("soap_system", path="GetVendorList", times=3)
    with pytest.raises(SourceUnavailable, match="Contact your administrator") as ei:
        list(gp.client().pages(VENDOR, since=None))
    assert "Exception Management Console" in ei.value.advice
    assert gp.sim.counters()["soap_faults"] == 4


def test_a_validation_fault_reports_the_logged_detail(gp_sim_factory, store):
    gp = _ws(gp_sim_factory)
    gp.sim.inject("soap_validation", path="GetPurchaseOrderByKey", times=1)
    with pytest.raises(SourceRefused, match="business rule") as ei:
        list(gp.client().pages(ENTITIES[1], since=None))
    assert "LogId" in str(ei.value) and not isinstance(ei.value, SourceAccessDenied)
    counts = Counter({k: v for k, v in gp.sim.counters().items() if k.startswith("SOAP ")})
    assert counts["SOAP GetLoggedValidationResultByKey"] == 1


def test_a_document_with_a_bad_value_is_quarantined_and_the_rest_of_its_list_flows(gp_sim_factory, store, slack):
    gp = _ws(gp_sim_factory)
    rows = {r["Key"]["Id"]: r for r in gp.sim._companies[gp.company].tables["payables"].rows()}
    rows["00000000000000641"]["DocumentAmount"]["Value"] = "12,50 EUR"  # no XML schema would let this through
    rows["00000000000000644"]["ModifiedDate"] = "yesterday"
    _cycle(gp, store, slack)
    bad = {r["details"].get("key") or r["message"]: r["message"] for r in store.audit_rows("bad_record")}
    assert len(bad) == 2, bad
    assert any("ModifiedDate" in reason for reason in bad.values())
    assert any("amount" in reason for reason in bad.values())
    good = [r for r in SEEDED if r[1] not in ("Invoice|00000000000000641", "Invoice|00000000000000644")]
    assert _rows(store) == sorted(good)
    _assert_each_row_posted_once(store, slack)


@pytest.mark.parametrize("fault", ["html", "truncated", "drop"])
def test_a_reply_that_is_not_soap_is_retried_then_fails_the_entity_and_loses_nothing(
    gp_sim_factory, store, slack, fault,
):
    gp = _ws(gp_sim_factory)
    gp.sim.inject(fault, path="GetPurchaseOrderList", times=3)
    with pytest.raises(SourceUnavailable):
        _cycle(gp, store, slack)
    # A dropped connection looks like a server gone: the run stops reading (as over SBA); a
    # reply that is not SOAP fails only its entity.
    read = {"payables_invoice"} if fault == "drop" else {e.name for e in ENTITIES} - {"purchase_order"}
    assert _rows(store) == sorted(r for r in SEEDED if r[0] in read)
    assert store.watermark("gp", gp.company, "purchase_order") is None
    _cycle(gp, store, slack)
    assert _rows(store) == sorted(SEEDED)
    _assert_each_row_posted_once(store, slack)
