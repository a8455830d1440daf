"""The audit store on every configured database: outbox uniqueness, watermarks, claims."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import inspect

from erp_slack.store import NewDelivery, Store
from tests._fixtures_store import PG_URL, _pg_schema_url


def _item(key: str, version: str = "v1", channel: str = "#ap", delivery: str = "pending", **fields) -> NewDelivery:
    return NewDelivery(
        record_key=key, version=version, channel=channel, status=delivery,
        fields={"invoice": key, **fields}, cursor="1", status_field="status",
    )


def _enqueue(store: Store, items, dry_run=False):
    return store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=items, dry_run=dry_run)


def test_schema_is_created_by_migrations(store: Store):
    names = set(inspect(store.engine).get_table_names())
    assert {"watermarks", "deliveries", "audit_events", "alembic_version"} <= names
    Store(store.url)  # opening again is a no-op upgrade, not an error


def test_same_version_is_queued_once(store: Store):
    first = _enqueue(store, [_item("A"), _item("B")])
    again = _enqueue(store, [_item("A"), _item("B"), _item("C")])
    assert (first.new, again.new, again.duplicates) == (2, 1, 2)
    assert [r["record_key"] for r in store.deliveries()] == ["A", "B", "C"]


def test_duplicates_inside_one_page_are_dropped(store: Store):
    res = _enqueue(store, [_item("A"), _item("A")])
    assert (res.new, res.duplicates) == (1, 1)


def test_changed_version_becomes_update_with_changes(store: Store):
    _enqueue(store, [_item("A", "v1", status="Open", amount="10.00")])
    res = _enqueue(store, [_item("A", "v2", status="Open", amount="12.50")])
    assert res.updated == 1
    row = store.deliveries(version="v2")[0]
    assert row["event"] == "updated"
    assert '"amount"' in row["changes"] and "12.50" in row["changes"]
    res = _enqueue(store, [_item("A", "v3", status="Released", amount="12.50")])
    assert store.deliveries(version="v3")[0]["event"] == "status_change"


def test_a_record_returning_to_an_earlier_state_is_news_again(store: Store):
    _enqueue(store, [_item("A", "held", hold="Yes")])
    _enqueue(store, [_item("A", "released", hold="No")])
    again = _enqueue(store, [_item("A", "held", hold="Yes")])  # on hold once more
    assert again.updated == 1 and again.duplicates == 0
    rows = store.deliveries(record_key="A")
    assert [(r["version"], r["revision"]) for r in rows] == [("held", 0), ("released", 0), ("held", 1)]
    assert '"hold"' in rows[-1]["changes"] and "Yes" in rows[-1]["changes"]
    # Re-reading that state (a crash and a re-read, the next poll) is no news.
    assert _enqueue(store, [_item("A", "held", hold="Yes")]).duplicates == 1
    assert len(store.deliveries(record_key="A")) == 3


def test_an_outbox_from_before_revisions_upgrades_in_place(store: Store):
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    import erp_slack.store as store_module

    _enqueue(store, [_item("A", "v1", status="Open"), _item("B", "v1")])
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert "revision" not in {c["name"] for c in inspect(store.engine).get_columns("deliveries")}
    upgraded = Store(store.url)  # what a worker of the new version does on start
    assert [(r["record_key"], r["revision"]) for r in upgraded.deliveries()] == [("A", 0), ("B", 0)]
    assert _enqueue(upgraded, [_item("A", "v2", status="Held")]).updated == 1
    assert _enqueue(upgraded, [_item("A", "v1", status="Open")]).updated == 1  # back to v1: news again
    assert [r["revision"] for r in upgraded.deliveries(record_key="A")] == [0, 0, 1]
    upgraded.dispose()


def test_dry_run_rows_do_not_block_the_real_post(store: Store):
    _enqueue(store, [_item("A", delivery="dry-run")], dry_run=True)
    res = _enqueue(store, [_item("A")])
    assert res.new == 1
    assert sorted(r["status"] for r in store.deliveries()) == ["dry-run", "pending"]


def test_watermark_only_moves_forward(store: Store):
    def advance(value: int) -> str:
        return store.advance_watermark("syspro", "EDU1", "ap_invoice", "rowversion", value)

    advance(100)
    assert store.watermark("syspro", "EDU1", "ap_invoice") == ("rowversion", 100)
    assert advance(99) == "100"
    assert store.watermark("syspro", "EDU1", "ap_invoice") == ("rowversion", 100)
    # Numeric, not text, comparison: 1000 > 999 although "1000" < "999".
    advance(999)
    advance(1000)
    assert store.watermark("syspro", "EDU1", "ap_invoice")[1] == 1000


def test_date_watermarks_round_trip(store: Store):
    store.advance_watermark("syspro", "EDU1", "ap_invoice", "date", date(2026, 11, 20))
    assert store.watermark("syspro", "EDU1", "ap_invoice") == ("date", date(2026, 11, 20))


def test_claim_hands_rows_out_once_in_order(store: Store):
    _enqueue(store, [_item(k) for k in "ABCDE"])
    first = store.claim("#ap", 2, worker="w1")
    second = store.claim("#ap", 10, worker="w2")
    assert [d.record_key for d in first] == ["A", "B"]
    assert [d.record_key for d in second] == ["C", "D", "E"]
    assert store.claim("#ap", 10, worker="w3") == []
    assert len({d.batch_uid for d in first}) == 1


def test_claim_respects_next_attempt(store: Store):
    _enqueue(store, [_item("A")])
    rows = store.claim("#ap", 1, worker="w")
    from erp_slack.store import utcnow

    store.release([rows[0].id], worker="w", error="later", retry_at=utcnow() + timedelta(hours=1))
    assert store.claim("#ap", 1, worker="w") == []
    assert store.pending_by_channel() == {}


def test_stale_claims_are_found_after_the_lease(store: Store):
    _enqueue(store, [_item("A"), _item("B")])
    rows = store.claim("#ap", 2, worker="crashed")
    assert store.stale_batches(older_than=timedelta(minutes=5)) == {}
    stale = store.stale_batches(older_than=timedelta(0))
    assert list(stale) == [rows[0].batch_uid]
    taken = store.take_stale(rows[0].batch_uid, worker="me", older_than=timedelta(0))
    assert {d.record_key for d in taken} == {"A", "B"}


def test_concurrent_claimers_never_share_a_row(store: Store):
    _enqueue(store, [_item(f"K{i:04d}") for i in range(400)])
    got: list[list[int]] = [[], [], [], []]

    def drain(slot: int) -> None:
        while rows := store.claim("#ap", 7, worker=f"w{slot}"):
            got[slot].extend(d.id for d in rows)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for g in got for i in g]
    assert len(all_ids) == 400 and len(set(all_ids)) == 400


def test_bad_record_audit_is_written_once_per_key_and_reason(store: Store):
    row = dict(kind="bad_record", source="syspro", company="EDU1", entity="ap_invoice", record_key="X",
               message="amount: not a number", dedupe=True)
    _enqueue(store, [])
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[], audit=[row])
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[], audit=[row])
    assert len(store.audit_rows("bad_record")) == 1


def test_requeue_puts_failed_rows_back(store: Store):
    _enqueue(store, [_item("A")])
    rows = store.claim("#ap", 1, worker="w")
    store.finish([rows[0].id], worker="w", status="failed", error="channel_not_found")
    assert store.counts() == {"failed": 1}
    assert store.requeue(status="failed") == 1
    assert store.counts() == {"pending": 1}


def test_what_changed_lists_only_watched_fields(store: Store):
    def item(version: str, **fields) -> NewDelivery:
        return NewDelivery(record_key="A", version=version, channel="#ap", status="pending", fields=fields,
                           cursor="1", status_field="status", watch=("status", "amount"))

    _enqueue(store, [item("v1", status="Open", amount="1", modified="2026-01-01", batch="B1")])
    _enqueue(store, [item("v2", status="Released", amount="1", modified="2026-01-02", batch="B2")])
    row = store.deliveries(version="v2")[0]
    assert row["event"] == "status_change"
    assert json.loads(row["changes"]) == [["status", "Open", "Released"]]


def test_keyless_bad_rows_are_reported_once_by_fingerprint():
    from erp_slack.model import Cursor, Entity
    from erp_slack.pipeline import _quarantine

    entity = Entity(source="syspro", name="ap_invoice", title="t", table="ApInvoice", key=("K",),
                    cursor=Cursor("T", "rowversion"), fields={"k": "K", "t": "T"}, types={"t": "int"},
                    template="supplier_invoice")
    a = _quarantine(entity, "EDU1", None, "undecodable row", {"Invoice": "X\x0b"}, "url-1")
    b = _quarantine(entity, "EDU1", None, "undecodable row", {"Invoice": "X\x0b"}, "url-2")
    c = _quarantine(entity, "EDU1", None, "undecodable row", {"Invoice": "Y"}, "url-1")
    assert a["record_key"] == b["record_key"] != c["record_key"]
    assert a["record_key"].startswith("#row-")


def test_only_the_claiming_worker_can_change_or_send_its_rows(store: Store):
    _enqueue(store, [_item("A")])
    (row,) = store.claim("#ap", 1, worker="A")
    store.release([row.id], worker="B", error="not mine", retry_at=None)  # B never owned it
    store.mark_sent([row.id], worker="B", channel_id="C1", ts="1.1", permalink=None, payload=None)
    assert store.counts() == {"sending": 1}
    assert store.mark_attempt([row.id], worker="B") is False
    assert store.mark_attempt([row.id], worker="A") is True
    first = store.deliveries()[0]["first_attempt_at"]
    assert store.mark_attempt([row.id], worker="A") is True
    assert store.deliveries()[0]["first_attempt_at"] == first  # set once, never moved
    store.mark_sent([row.id], worker="A", channel_id="C1", ts="1.1", permalink=None, payload=None)
    assert store.counts() == {"sent": 1}
    store.release([row.id], worker="A", error="late", retry_at=None)  # a sent row stays sent
    assert store.counts() == {"sent": 1}


def test_a_dry_run_compares_with_live_rows(store: Store):
    _enqueue(store, [_item("A"), _item("B")])
    res = _enqueue(store, [_item("A", delivery="dry-run"), _item("C", delivery="dry-run")], dry_run=True)
    assert (res.new, res.duplicates) == (1, 1)  # A is already live; only C would be posted


def test_a_live_backfill_revives_filtered_versions_that_now_route(store: Store):
    _enqueue(store, [_item("A", channel="", delivery="filtered"), _item("B", channel="", delivery="filtered")])
    res = store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[_item("A")],
                        requeue_filtered=True)
    assert res.new == 1
    rows = {r["record_key"]: r for r in store.deliveries()}
    assert rows["A"]["status"] == "pending" and rows["A"]["channel"] == "#ap" and rows["A"]["reason"].startswith("backfill")
    assert rows["B"]["status"] == "filtered"
    again = _enqueue(store, [_item("A")])  # a normal poll never revives
    assert again.duplicates == 1


def _workers_opening_a_new_postgres_database_together_all_get_the_schema() -> None:
    # Ten workers start at once against an empty database: each opens the store (which migrates).
    for url in _pg_schema_url():
        barrier = threading.Barrier(10)
        errors: list[BaseException] = []

        def open_store() -> None:
            barrier.wait(30)
            try:
                Store(url).dispose()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_store, daemon=True) for _ in range(10)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 90
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not [t for t in threads if t.is_alive()], "store opens still waiting on each other after 90 s"
        assert errors == []
        store = Store(url, migrate=False)
        assert {"watermarks", "deliveries", "audit_events"} <= set(inspect(store.engine).get_table_names())
        store.dispose()


# PostgreSQL only, and like the store's PostgreSQL variants not collected at all without a URL
# (.ci/run always sets ERP_SLACK_TEST_PG_URL, so CI never silently loses it).
if PG_URL:
    test_workers_opening_a_new_postgres_database_together_all_get_the_schema = pytest.mark.postgres(
        _workers_opening_a_new_postgres_database_together_all_get_the_schema)
