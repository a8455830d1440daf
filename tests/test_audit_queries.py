"""Every query in docs/audit-queries.sql runs as written, on SQLite and on PostgreSQL, and
answers its question on a store filled by a real poll-and-deliver cycle against the simulators."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update

from erp_slack.schema import deliveries
from erp_slack.store import Store, utcnow
from tests._cycle import run_cycle

QUERIES = Path(__file__).resolve().parent.parent / "docs" / "audit-queries.sql"


def parse(sql: str) -> dict[str, dict[str, str]]:
    """name -> {"postgresql": statement, "sqlite": statement}."""
    out: dict[str, dict[str, str]] = {}
    for block in re.split(r"^-- name: ", sql, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        forms: dict[str, str] = {}
        for dialect, statement in re.findall(r"^-- (postgresql|sqlite|both):\n(.*?;)", body, flags=re.M | re.S):
            for d in (("postgresql", "sqlite") if dialect == "both" else (dialect,)):
                forms[d] = statement
        assert set(forms) == {"postgresql", "sqlite"}, f"{name} needs a form for each database"
        out[name.strip()] = forms
    return out


def test_the_file_has_a_form_of_each_query_for_each_database():
    names = set(parse(QUERIES.read_text()))
    assert {"posted_yesterday", "messages_about_one_invoice", "failed_this_week", "stuck"} <= names


@pytest.fixture
def filled(store: Store, syspro_client, slack_sim_factory) -> Store:
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)
    audit = lambda kind, details: store.audit(kind, source="syspro", company="EDU1", details=dict(details))  # noqa: E731
    client = syspro_client("enet", audit=audit)
    run_cycle(client, client.entities, store, slack)
    sent = store.deliveries(channel="#ap-invoices", status="sent")
    assert len(sent) >= 2
    now = utcnow()
    old = store.deliveries(status="sent")[-1]
    with store.engine.begin() as conn:
        # One post yesterday at noon; one failure this week and one long ago.
        yesterday = (now - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
        conn.execute(update(deliveries).where(deliveries.c.id == sent[0]["id"]).values(sent_at=yesterday))
        conn.execute(update(deliveries).where(deliveries.c.id == sent[1]["id"]).values(
            status="failed", last_error="not_in_channel", updated_at=now - timedelta(days=2)))
        conn.execute(update(deliveries).where(deliveries.c.id == old["id"]).values(
            status="failed", last_error="channel_not_found", updated_at=now - timedelta(days=40)))
    store.audit("bad_record", source="syspro", company="EDU1", entity="ap_invoice", record_key="#row-x",
                message="amount (OrigInvValue): not a number")
    return store


def test_every_query_answers_its_question(filled: Store):
    store = filled
    queries = parse(QUERIES.read_text())
    dialect = "postgresql" if store.is_postgres else "sqlite"
    results = {}
    with store.engine.connect() as conn:
        for name, forms in queries.items():
            results[name] = [dict(r._mapping) for r in conn.execute(text(forms[dialect]))]
    yesterday = [r["record_key"] for r in results["posted_yesterday"]]
    assert len(yesterday) == 1
    assert results["posted_today"] and yesterday[0] not in {r["record_key"] for r in results["posted_today"]}
    assert [r["event"] for r in results["messages_about_one_invoice"]] == ["created"]
    assert [r["last_error"] for r in results["failed_this_week"]] == ["not_in_channel"]  # not the old one
    assert [r["record_key"] for r in results["quarantined"]] == ["#row-x"]
    assert results["watermarks"] and results["polls_last_day"]
    assert {r["kind"] for r in results["sessions"]} >= {"logon", "logoff"}
    assert results["stuck"] == []
