"""Dynamics GP as its documentation allows it to answer, not only as our simulator's defaults do.

Every undocumented shape is a simulator switch; each test runs the real client, pipeline, store
and Slack simulator across the switch's values and compares with the default shape: the same
records, with the same keys, reach Slack exactly once.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from erp_slack.sources.gp.entities import ENTITIES
from erp_slack.store import Store
from tests._cycle import run_cycle

SHAPES = [(), ("gl-date-key",), ("receipt-line-key",), ("gl-date-key", "receipt-line-key")]


def _announced(store: Store) -> Counter[tuple[str, str]]:
    return Counter((r["entity"], r["record_key"]) for r in store.deliveries(status="sent"))


def _run_all(served, db_url: str, slack) -> Counter[tuple[str, str]]:
    store = Store(db_url)
    try:
        run_cycle(served.client(), ENTITIES, store, slack)
        assert not store.audit_rows("bad_record"), store.audit_rows("bad_record")
        return _announced(store)
    finally:
        store.dispose()


@pytest.mark.parametrize("shapes", SHAPES[1:], ids=lambda s: "+".join(s))
def test_every_key_shape_posts_the_same_records_once(gp_sim_factory, slack_sim_factory, tmp_path, shapes):
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    reference = _run_all(gp_sim_factory(), f"sqlite:///{tmp_path / 'ref.db'}", slack)
    variant = _run_all(gp_sim_factory(key_shapes=shapes), f"sqlite:///{tmp_path / 'var.db'}", slack)
    assert {e for e, _ in reference} >= {"gl_journal", "goods_receipt"}
    assert variant == reference and set(variant.values()) == {1}


def test_modified_dates_hours_ahead_of_real_time_hide_nothing(gp_sim_factory, slack_sim_factory, store):
    from erp_slack.sources.gp.entities import VENDOR

    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    skew = {"ahead": timedelta(hours=3)}
    served = gp_sim_factory(clock=lambda: datetime.now(timezone.utc) + skew["ahead"])
    run_cycle(served.client(), [VENDOR], store, slack)  # stamps from a clock three hours fast
    skew["ahead"] = timedelta(0)  # the server's clock is put right
    served.sim.update_vendor("ACETRAVE0001", on_hold=True)
    run_cycle(served.client(), [VENDOR], store, slack)
    changed = [r for r in store.deliveries(entity="vendor", status="sent") if r["record_key"].endswith("ACETRAVE0001")]
    assert len(changed) == 2 and changed[-1]["event"] != "created"
