"""The lookback setting: how far behind its watermark each poll re-reads, per source."""

from __future__ import annotations

from datetime import timedelta

import pytest

from erp_slack.config import parse_config
from erp_slack.connect import gp_entities, syspro_entities
from erp_slack.errors import ConfigError
from erp_slack.pipeline import poll_entity
from erp_slack.routing import DEFAULT_ROUTES


def _config(**sections: dict) -> dict:
    return {"slack": {"token": "xoxb-test"}, **sections}


SYSPRO = {"transport": "odata", "base_url": "https://s.example", "operator": "OP", "company_id": "EDU1",
          "odata_password": "pw"}
GP = {"base_url": "https://gp.example/GPService", "company": "TWO", "username": "D\\u", "password": "pw"}


def test_a_wider_lookback_applies_to_every_date_and_time_cursor_in_whole_days_for_dates():
    cfg = parse_config(_config(syspro={**SYSPRO, "lookback": "100h"}))
    cursors = {e.name: e.cursor for e in syspro_entities(cfg.syspro)}
    assert all(c.kind == "date" and c.lookback == timedelta(days=5) for c in cursors.values())
    enet = parse_config(_config(syspro={**SYSPRO, "transport": "enet", "operator_password": "pw", "lookback": "30d"}))
    assert {e.cursor.kind for e in syspro_entities(enet.syspro)} == {"rowversion"}  # nothing to widen


def test_a_lookback_never_narrows_what_an_entity_needs():
    default = {e.name: e.cursor.lookback for e in gp_entities(parse_config(_config(dynamics_gp=GP)).dynamics_gp)}
    wider = {e.name: e.cursor.lookback
             for e in gp_entities(parse_config(_config(dynamics_gp={**GP, "lookback": "2h"})).dynamics_gp)}
    assert wider == {name: max(lb, timedelta(hours=2)) for name, lb in default.items()}
    assert max(default.values()) > timedelta(hours=2)  # the day-granular receipts keep their two days
    narrower = {e.name: e.cursor.lookback
                for e in gp_entities(parse_config(_config(dynamics_gp={**GP, "lookback": "1m"})).dynamics_gp)}
    assert narrower == default


@pytest.mark.parametrize("bad", ["30 parsecs", "soon", "-3d", ""])
def test_a_lookback_that_is_not_a_duration_is_rejected_naming_the_field(bad):
    with pytest.raises(ConfigError) as err:
        parse_config(_config(syspro={**SYSPRO, "lookback": bad}))
    assert err.value.path == "syspro.lookback" and "duration" in str(err.value)


def test_a_back_dated_invoice_beyond_the_default_lookback_is_read_with_a_wider_one(syspro_sim, syspro_client, store):
    served = {"base_url": syspro_sim.url, "operator": syspro_sim.operator, "company_id": syspro_sim.company,
              "odata_password": syspro_sim.odata_password}
    found = {}
    for lookback in (None, "30d"):
        cfg = parse_config(_config(syspro={**SYSPRO, **served, **({"lookback": lookback} if lookback else {})}))
        invoice = {e.name: e for e in syspro_entities(cfg.syspro)}["ap_invoice"]
        with syspro_client("odata") as client:
            poll_entity(client, invoice, store, DEFAULT_ROUTES, first_run="baseline")
        number = f"LATE-{lookback or 'default'}"
        syspro_sim.sim.insert_backdated_invoice(days_back=10, invoice=number)
        with syspro_client("odata") as client:
            poll_entity(client, invoice, store, DEFAULT_ROUTES, first_run="baseline")
        found[lookback] = any(number in r["record_key"] for r in store.deliveries(status="pending"))
    # The documented limit of a date cursor, and the setting that lifts it.
    assert found == {None: False, "30d": True}
