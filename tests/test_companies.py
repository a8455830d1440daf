"""Several companies per source: configuration, and a run that polls each in turn."""

from __future__ import annotations

import pytest

from erp_slack.config import parse_config
from erp_slack.cycle import RunSummary, run_companies, summaries_dict
from erp_slack.errors import CompaniesFailed, ConfigError, SourceAccessDenied

SYSPRO = {"transport": "enet", "base_url": "https://s.example", "operator": "OP", "operator_password": "pw"}
GP = {"base_url": "https://gp.example/GPService", "username": "D\\u", "password": "pw"}


def _config(**sections: dict) -> dict:
    return {"slack": {"token": "xoxb-test"}, **sections}


def test_a_source_names_its_companies_and_the_first_is_the_one_a_single_client_uses():
    cfg = parse_config(_config(syspro={**SYSPRO, "companies": ["EDU1", "EDU2"]},
                               dynamics_gp={**GP, "company": "Fabrikam, Inc."}))
    assert cfg.syspro.company_id == "EDU1" and cfg.syspro.company_list() == ["EDU1", "EDU2"]
    assert cfg.syspro.for_company("EDU2").company_id == "EDU2"
    assert cfg.dynamics_gp.company_list() == ["Fabrikam, Inc."]  # one company, as before


@pytest.mark.parametrize("companies", [["EDU1", "edu1"], ["EDU1", " "]])
def test_companies_must_be_distinct_and_named(companies):
    with pytest.raises(ConfigError) as err:
        parse_config(_config(syspro={**SYSPRO, "companies": companies}))
    assert err.value.path == "syspro.companies"


def test_a_route_for_a_company_no_source_names_is_rejected_naming_the_route():
    ok = _config(syspro={**SYSPRO, "companies": ["EDU1", "EDU2"]}, dynamics_gp={**GP, "company": "TWO"},
                 routes=[{"company": "EDU2", "channel": "#holding"}, {"source": "gp", "company": "TWO", "channel": "#gp"}])
    assert [r.company for r in parse_config(ok).routes] == ["EDU2", "TWO"]
    with pytest.raises(ConfigError) as err:
        parse_config({**ok, "routes": [{"company": "EDU3", "channel": "#x"}]})
    assert err.value.path == "routes.0.company" and "EDU3" in str(err.value) and "EDU2" in str(err.value)
    with pytest.raises(ConfigError) as err:  # a SYSPRO company on a GP-only route never matches
        parse_config({**ok, "routes": [{"channel": "#a"}, {"source": "gp", "company": "EDU1", "channel": "#x"}]})
    assert err.value.path == "routes.1.company"


def test_one_company_failing_never_stops_the_others_and_the_run_names_it():
    ran: list[str] = []

    def run_one(company: str) -> RunSummary:
        ran.append(company)
        if company == "EDU2":
            raise SourceAccessDenied("no access to EDU2", source="syspro")
        return RunSummary("syspro", company)

    with pytest.raises(CompaniesFailed) as err:
        run_companies(["EDU1", "EDU2", "EDU3"], run_one)
    assert ran == ["EDU1", "EDU2", "EDU3"]
    assert list(err.value.failures) == ["EDU2"] and "EDU2: no access to EDU2" in str(err.value)
    # One company: its own error, as before.
    with pytest.raises(SourceAccessDenied):
        run_companies(["EDU2"], run_one)
    both = summaries_dict(run_companies(["EDU1", "EDU3"], run_one))
    assert set(both["companies"]) == {"EDU1", "EDU3"} and both["delivered_records"] == 0


def test_company_names_must_name_a_polled_company():
    cfg = parse_config(_config(syspro={**SYSPRO, "companies": ["EDU1", "EDU2"],
                                       "company_names": {"EDU2": "Acme Holdings"}}))
    assert cfg.syspro.for_company("EDU2").company_names == {"EDU2": "Acme Holdings"}
    with pytest.raises(ConfigError) as err:
        parse_config(_config(syspro={**SYSPRO, "companies": ["EDU1"], "company_names": {"EDU9": "Nobody"}}))
    assert err.value.path.startswith("syspro") and "EDU9" in str(err.value) and "EDU1" in str(err.value)


def test_messages_call_a_company_by_its_display_name_in_single_messages_and_digests(store, slack_sim_factory):
    from erp_slack.cycle import SlackOut, run_cycle
    from erp_slack.slack.gateway import SlackGateway
    from erp_slack.slack.send import DrainSettings
    from erp_slack.sources.syspro.entities import ENTITIES_ENET
    from erp_slack.store import NewDelivery

    slack_sim = slack_sim_factory(rate_limits=False)
    CHANNEL = {"EDU2": "#ap-invoices", "EDU1": "#purchasing"}  # noqa: N806

    class Quiet:
        source, company = "syspro", "EDU2"

        def pages(self, entity, **kw):
            return iter(())

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    def queue(company: str, keys: list[str]) -> None:
        store.enqueue(source="syspro", company=company, entity="ap_invoice", items=[NewDelivery(
            record_key=k, version="v1", channel=CHANNEL[company], status="pending",
            fields={"invoice": k, "supplier": "S1"}, cursor="1") for k in keys])

    def run(company_name: str | None, **settings) -> None:
        out = SlackOut(SlackGateway(slack_sim.token, base_url=slack_sim.url, timeout=5),
                       DrainSettings(time_scale=slack_sim.sim.time_scale, **settings))
        run_cycle(lambda audit: Quiet(), list(ENTITIES_ENET[:1]), store, out, source="syspro", company="EDU2",
                  company_name=company_name)

    queue("EDU2", ["INV-1"])
    queue("EDU1", ["INV-9"])  # another company without a name: shown as configured
    run("Acme Holdings")
    context = lambda m: str(m["blocks"][-1])  # noqa: E731 - the context line is the last block
    (one,) = slack_sim.sim.posted("#ap-invoices")
    assert "company Acme Holdings (EDU2)" in context(one)
    (other,) = slack_sim.sim.posted("#purchasing")
    assert "company EDU1" in context(other) and "Acme" not in context(other)
    queue("EDU2", [f"INV-{n}" for n in range(2, 12)])
    run("Acme Holdings", digest_threshold=3)
    digest = slack_sim.sim.posted("#ap-invoices")[-1]
    assert "invoices" in digest["text"].lower() and "company Acme Holdings (EDU2)" in context(digest)
    # The name taken away: later messages show the company as configured again.
    queue("EDU2", ["INV-20"])
    run(None)
    assert "company EDU2 " in context(slack_sim.sim.posted("#ap-invoices")[-1]) + " "
    assert store.company_names() == {}
