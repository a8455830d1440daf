"""The Prefect flows end to end: blocks → flow → simulators → Slack simulator → audit store."""

from __future__ import annotations

import pytest

from blocks import AuditDatabase, DynamicsGpCredentials, SlackBot, SysproCredentials

pytestmark = pytest.mark.prefect


def _slack_block(slack_sim, name: str) -> None:
    SlackBot(token=slack_sim.token, base_url=slack_sim.url, time_scale=slack_sim.sim.time_scale,
             ops_channel="#finance-alerts").save(name, overwrite=True)


def _syspro_blocks(block_names, syspro_sim, slack_sim, tmp_path) -> str:
    """Save SYSPRO, Slack and audit blocks pointing at the simulators; returns the audit URL."""
    SysproCredentials(base_url=syspro_sim.url, operator=syspro_sim.operator, operator_password=syspro_sim.password,
                      company_id=syspro_sim.company).save(block_names["syspro"], overwrite=True)
    _slack_block(slack_sim, block_names["slack"])
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditDatabase(url=db).save(block_names["audit"], overwrite=True)
    return db


def test_syspro_flow_posts_seeded_documents_once(prefect_harness, block_names, syspro_sim, slack_sim, tmp_path):
    from flows.syspro import syspro_to_slack

    _syspro_blocks(block_names, syspro_sim, slack_sim, tmp_path)
    names = dict(syspro_block=block_names["syspro"], slack_block=block_names["slack"], audit_block=block_names["audit"],
                 first_run="post")

    first = syspro_to_slack(**names)
    posted = slack_sim.sim.posted()
    assert first["delivered_records"] > 0 and posted
    assert first["delivered_records"] == sum(p["new"] + p["updated"] for p in first["polls"])
    channels = {m["channel_name"] for m in posted}
    assert {"ap-invoices", "purchasing"} <= channels

    second = syspro_to_slack(**names)
    assert second["delivered_records"] == 0
    assert len(slack_sim.sim.posted()) == len(posted)


def test_gp_flow_posts_and_a_wrong_password_alerts_once(prefect_harness, block_names, gp_sim, slack_sim, tmp_path):
    from flows.gp import gp_to_slack

    creds = DynamicsGpCredentials(base_url=gp_sim.base_url, tenant=gp_sim.tenant, company=gp_sim.company,
                                  username=gp_sim.username, password="wrong-password")
    creds.save(block_names["gp"], overwrite=True)
    _slack_block(slack_sim, block_names["slack"])
    AuditDatabase(url=f"sqlite:///{tmp_path / 'audit.db'}").save(block_names["audit"], overwrite=True)
    names = dict(gp_block=block_names["gp"], slack_block=block_names["slack"], audit_block=block_names["audit"],
                 first_run="post")

    from erp_slack.errors import SourceAuthFailed

    for _ in range(2):
        with pytest.raises(SourceAuthFailed):
            gp_to_slack(**names)
    alerts = slack_sim.sim.posted("#finance-alerts")
    assert len(alerts) == 1 and "needs attention" in alerts[0]["text"]
    assert "wrong-password" not in str(alerts)

    creds.password = gp_sim.password  # the operator fixes the block
    creds.save(block_names["gp"], overwrite=True)
    result = gp_to_slack(**names)
    assert result["delivered_records"] > 0
    alerts = slack_sim.sim.posted("#finance-alerts")
    assert len(alerts) == 2 and "working again" in alerts[1]["text"]


def test_first_run_baseline_records_history_without_posting_then_posts_changes(
    prefect_harness, block_names, syspro_sim, slack_sim, tmp_path
):
    from erp_slack.store import Store
    from flows.syspro import syspro_to_slack

    db = _syspro_blocks(block_names, syspro_sim, slack_sim, tmp_path)
    names = dict(syspro_block=block_names["syspro"], slack_block=block_names["slack"], audit_block=block_names["audit"])

    first = syspro_to_slack(**names)  # first_run defaults to "baseline"
    assert first["delivered_records"] == 0 and slack_sim.sim.posted() == []
    baseline = [r for r in Store(db).deliveries() if r["reason"] and r["reason"].startswith("baseline")]
    assert baseline and all(r["status"] == "filtered" for r in baseline)

    syspro_sim.sim.insert_invoice(invoice="BASE-NEW-1", amount="321.00")
    second = syspro_to_slack(**names)
    assert second["delivered_records"] >= 1
    assert any("BASE-NEW-1" in (m["text"] or "") for m in slack_sim.sim.posted())


def test_one_failing_entity_does_not_stop_the_others_or_delivery(
    prefect_harness, block_names, syspro_sim, slack_sim, tmp_path
):
    from erp_slack.errors import SourceUnavailable
    from erp_slack.store import Store
    from flows.syspro import syspro_to_slack

    db = _syspro_blocks(block_names, syspro_sim, slack_sim, tmp_path)
    # SYSPRO refuses the first query (the invoices) with an e.net error: not worth retrying.
    syspro_sim.sim.inject("error_text", path="Query/Query", text="ERROR: Access denied to table ApInvoice")
    with pytest.raises(SourceUnavailable, match="Access denied"):
        syspro_to_slack(syspro_block=block_names["syspro"], slack_block=block_names["slack"],
                        audit_block=block_names["audit"], first_run="post")
    store = Store(db)
    assert [r["entity"] for r in store.audit_rows("entity_failed")] == ["ap_invoice"]
    assert {r["entity"] for r in store.deliveries(status="sent")} >= {"purchase_order", "goods_receipt"}
    assert not store.deliveries(entity="ap_invoice")
    assert len(slack_sim.sim.posted("#finance-alerts")) == 1


def test_a_date_backfill_on_enet_posts_what_the_baseline_held_back(
    prefect_harness, block_names, syspro_sim, slack_sim, tmp_path
):
    from erp_slack.errors import ConfigError
    from erp_slack.store import Store
    from flows.syspro import syspro_to_slack

    db = _syspro_blocks(block_names, syspro_sim, slack_sim, tmp_path)
    names = dict(syspro_block=block_names["syspro"], slack_block=block_names["slack"], audit_block=block_names["audit"])

    syspro_to_slack(**names, entities=["ap_invoice"])  # baseline: nothing posted
    assert slack_sim.sim.posted() == []
    held_back = len(Store(db).deliveries(status="filtered"))

    with pytest.raises(ConfigError, match="since"):
        syspro_to_slack(**names, entities=["ap_invoice"], since="last tuesday")

    # e.net watches the TimeStamp rowversion; a backfill by dates reads the invoices' dates.
    dry = syspro_to_slack(**names, entities=["ap_invoice"], since="2000-01-01", until="2100-01-01", dry_run=True)
    assert dry["polls"][0]["dry_run_rows"] == held_back and slack_sim.sim.posted() == []
    live = syspro_to_slack(**names, entities=["ap_invoice"], since="2000-01-01", until="2100-01-01")
    assert live["delivered_records"] == held_back
    again = syspro_to_slack(**names, entities=["ap_invoice"], since="2000-01-01", until="2100-01-01")
    assert again["delivered_records"] == 0  # never posted twice


def test_a_record_that_cannot_be_delivered_fails_the_run_and_tells_ops_what_to_do(
    prefect_harness, block_names, syspro_sim, slack_sim, tmp_path
):
    from erp_slack.routing import DEFAULT_ROUTES, Rule
    from erp_slack.store import Store
    from flows.syspro import syspro_to_slack

    db = _syspro_blocks(block_names, syspro_sim, slack_sim, tmp_path)
    # Large invoices go to a private channel the bot was never invited to.
    syspro_sim.sim.insert_invoice(invoice="BIG-75K", amount="75000.00")
    routes = [Rule(entity="ap_invoice", min_amount=50000, channel="#controllers", name="large invoices"),
              *DEFAULT_ROUTES]
    state = syspro_to_slack(syspro_block=block_names["syspro"], slack_block=block_names["slack"],
                            audit_block=block_names["audit"], routes=routes, first_run="post", return_state=True)
    assert state.is_failed()
    assert "#controllers" in (state.message or "")
    failed = Store(db).deliveries(status="failed")
    assert [r["channel"] for r in failed] and {r["channel"] for r in failed} == {"#controllers"}
    assert any(r["record_key"].endswith("BIG-75K") for r in failed)
    alerts = slack_sim.sim.posted("#finance-alerts")
    assert len(alerts) == 1
    text = str(alerts[0])
    assert "Invite the bot to #controllers" in text and "erp-slack requeue" in text
    # Everything else of the run was delivered all the same.
    assert slack_sim.sim.posted("#ap-invoices")


def test_a_gp_resource_the_role_may_not_read_fails_only_that_entity(
    prefect_harness, block_names, gp_sim, slack_sim, tmp_path
):
    from erp_slack.errors import SourceAccessDenied
    from erp_slack.sources.gp.entities import GL_JOURNAL
    from erp_slack.store import Store
    from flows.gp import gp_to_slack

    DynamicsGpCredentials(base_url=gp_sim.base_url, tenant=gp_sim.tenant, company=gp_sim.company,
                          username=gp_sim.username, password=gp_sim.password).save(block_names["gp"], overwrite=True)
    _slack_block(slack_sim, block_names["slack"])
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditDatabase(url=db).save(block_names["audit"], overwrite=True)
    gp_sim.sim.inject("status", status=403, path=GL_JOURNAL.table, times=1000)  # the GP role lacks the GL task
    names = dict(gp_block=block_names["gp"], slack_block=block_names["slack"], audit_block=block_names["audit"],
                 first_run="post")
    with pytest.raises(SourceAccessDenied):
        gp_to_slack(**names)
    store = Store(db)
    assert [r["entity"] for r in store.audit_rows("entity_failed")] == ["gl_journal"]
    assert {r["entity"] for r in store.deliveries(status="sent")} >= {"payables_invoice", "vendor"}
    assert not store.deliveries(entity="gl_journal")
    alerts = slack_sim.sim.posted("#finance-alerts")
    assert len(alerts) == 1
    assert GL_JOURNAL.table in str(alerts[0]) and "password" not in str(alerts[0]).lower()
    assert store.audit_rows("auth_failed") == []


@pytest.mark.parametrize("transport", ["sba", "webservices"])
def test_two_gp_companies_in_one_run_each_delivered_once_and_one_failing_leaves_the_other(
        prefect_harness, block_names, gp_sim_factory, slack_sim, tmp_path, transport):
    from erp_slack.errors import CompaniesFailed
    from erp_slack.store import Store
    from flows.gp import gp_to_slack

    gp = gp_sim_factory(companies=["Fabrikam, Inc.", "Contoso Ltd."], transport=transport)
    gp.sim.add_vendor("CONTOSOSUP01", "Contoso Supplies", company="Contoso Ltd.")
    contoso = gp.sim.add_invoice("CONTOSOSUP01", "CONTOSO-1", "75.00", posted=True, company="Contoso Ltd.")
    DynamicsGpCredentials(
        transport=transport, base_url=gp.webservices_url if transport == "webservices" else gp.base_url,
        tenant=gp.tenant, companies=["Fabrikam, Inc.", "Contoso Ltd."], username=gp.username, password=gp.password,
    ).save(block_names["gp"], overwrite=True)
    _slack_block(slack_sim, block_names["slack"])
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditDatabase(url=db).save(block_names["audit"], overwrite=True)
    names = dict(gp_block=block_names["gp"], slack_block=block_names["slack"], audit_block=block_names["audit"],
                 first_run="post")

    first = gp_to_slack(**names)
    assert set(first["companies"]) == {"Fabrikam, Inc.", "Contoso Ltd."}
    assert first["companies"]["Contoso Ltd."]["delivered_records"] >= 1
    store = Store(db)
    try:
        rows = store.deliveries(status="sent")
        assert {r["company"] for r in rows} == {"Fabrikam, Inc.", "Contoso Ltd."}
        assert [r for r in rows if r["company"] == "Contoso Ltd." and contoso in r["record_key"]]
        # Every message says which company it is about.
        shown = [m for m in slack_sim.sim.posted() if "Contoso Ltd." in str(m["blocks"])]
        assert shown
        posted = len(slack_sim.sim.posted())

        # Contoso's access is withdrawn: Fabrikam's new invoice still goes out, the run fails
        # naming Contoso, and ops hear of Contoso only.
        gp.sim.set_company_access(gp.username, ["Fabrikam, Inc."])
        fabrikam = gp.sim.add_invoice("ACETRAVE0001", "FAB-NEW-1", "12.00", posted=True)
        with pytest.raises(CompaniesFailed, match="Contoso Ltd.") as failed:
            gp_to_slack(**names)
        assert list(failed.value.failures) == ["Contoso Ltd."]
        new = [r for r in store.deliveries(status="sent", company="Fabrikam, Inc.") if fabrikam in r["record_key"]]
        assert len(new) == 1 and "FAB-NEW-1" in str(new[0]["fields"])
        alerts = [m for m in slack_sim.sim.posted("#finance-alerts") if "needs attention" in str(m)]
        assert len(alerts) == 1 and alerts[0]["text"].endswith("Dynamics GP (Contoso Ltd.) needs attention")
        assert len(slack_sim.sim.posted()) > posted

        # A backfill of one company reads that company only.
        again = gp_to_slack(**names, company="Fabrikam, Inc.", since="2020-01-01")
        assert again["company"] == "Fabrikam, Inc."
    finally:
        store.dispose()


@pytest.mark.parametrize("transport", ["enet", "odata"])
def test_two_syspro_companies_each_read_from_their_own_database_once(
        prefect_harness, block_names, slack_sim, tmp_path, transport):
    from erp_slack.store import Store
    from flows.syspro import syspro_to_slack
    from simulators._http import serve_on_loopback
    from simulators.syspro import SysproSimulator

    sim = SysproSimulator(
        companies={"EDU1": {"name": "EDU1 Outdoors"}, "EDU2": {"name": "EDU2 Holdings"}},
        operators={"ENET01": {"password": "secret", "odata_password": "odata-secret", "companies": ["EDU1", "EDU2"],
                              "max_sessions": 1}})
    with sim.company_data("EDU2"):
        sim.insert_invoice(invoice="EDU2-ONLY-1", amount="321.00")
    with serve_on_loopback(sim) as served:
        SysproCredentials(transport=transport, base_url=served.url, operator="ENET01", operator_password="secret",
                          odata_password="odata-secret", companies=["EDU1", "EDU2"]).save(block_names["syspro"],
                                                                                          overwrite=True)
        _slack_block(slack_sim, block_names["slack"])
        db = f"sqlite:///{tmp_path / 'audit.db'}"
        AuditDatabase(url=db).save(block_names["audit"], overwrite=True)
        names = dict(syspro_block=block_names["syspro"], slack_block=block_names["slack"],
                     audit_block=block_names["audit"], first_run="post")
        first = syspro_to_slack(**names)
        second = syspro_to_slack(**names)
    assert set(first["companies"]) == {"EDU1", "EDU2"}
    assert second["delivered_records"] == 0  # each company's watermarks are its own
    store = Store(db)
    try:
        edu2 = store.deliveries(company="EDU2", status="sent")
        assert [r["record_key"] for r in edu2 if r["entity"] == "ap_invoice"] == ["0000001|EDU2-ONLY-1"]
        assert not [r for r in store.deliveries(company="EDU1") if "EDU2-ONLY-1" in r["record_key"]]
        assert len(store.deliveries(company="EDU1", status="sent")) > len(edu2)  # the seed is EDU1's
        assert {w["company"] for w in store.status()} == {"EDU1", "EDU2"}
        from erp_slack.report import delivery_table

        assert set(delivery_table(store)["company"]) == {"EDU1", "EDU2"}  # the report shows both
        if transport == "enet":  # one operator session per company, each logged off
            logons = [a["company"] for a in store.audit_rows("logon")]
            assert sorted(logons) == ["EDU1", "EDU1", "EDU2", "EDU2"]
            assert len(store.audit_rows("logoff")) == 4
    finally:
        store.dispose()
