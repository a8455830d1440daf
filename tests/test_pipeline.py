"""The poll step's own rules (``erp_slack.pipeline.poll_entity``), each against a real store.

A scripted client hands the pipeline exactly the pages a real server could send, so each rule
is tested on the value that trips it: a cursor below the window, a clock running ahead, a
resource that is not there, a first run rehearsed as a dry run, a switched transport.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping, Sequence

import pytest

from erp_slack.errors import EntityNotOffered
from erp_slack.model import Entity, Page
from erp_slack.pipeline import Window, poll_entity
from erp_slack.routing import DEFAULT_ROUTES
from erp_slack.schema import watermarks
from erp_slack.sources.gp.entities import ENTITIES as GP_ENTITIES
from erp_slack.sources.syspro.entities import entities_for
from erp_slack.store import Store

GP_INVOICE = next(e for e in GP_ENTITIES if e.name == "payables_invoice")
_SAMPLE = {"str": "X", "decimal": "100.00", "date": "2026-11-30", "datetime": "2026-11-30T00:00:00Z", "int": "1", "bool": "false"}


class ScriptedClient:
    """A source client that serves fixed rows, filtered as a server honouring ``>=`` would,
    with an optional server clock (its HTTP Date header)."""

    source = "gp"
    company = "TWO"

    def __init__(self, rows: Sequence[Mapping[str, Any]] = (), *, server_time: datetime | None = None,
                 missing: bool = False) -> None:
        self.rows = list(rows)
        self.server_time = server_time
        self.missing = missing

    def pages(self, entity: Entity, *, since: Any, until: Any = None, limit: int | None = None) -> Iterator[Page]:
        if self.missing:
            raise EntityNotOffered(f"no {entity.table} here", source="gp", status=404)
        col = entity.cursor.column
        rows = [r for r in self.rows if since is None or datetime.fromisoformat(r[col]) >= since]
        yield Page(rows=tuple(rows), url="scripted", row_count=len(rows), server_time=self.server_time)

    def close(self) -> None:
        pass

    def __enter__(self) -> "ScriptedClient":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _invoice(number: str, modified: datetime) -> dict[str, Any]:
    """A payables invoice row as the GP client hands it on: every column the entity maps."""
    row = {col: _SAMPLE[GP_INVOICE.types.get(name, "str")] for name, col in GP_INVOICE.fields.items()}
    row.update({col: number for col in GP_INVOICE.key})
    row[GP_INVOICE.key[0]] = "Invoice"
    row[GP_INVOICE.cursor.column] = modified.isoformat()
    return row


def _key(number: str) -> str:
    return f"Invoice|{number}"


def _poll(client: ScriptedClient, store: Store, **kw: Any):
    return poll_entity(client, GP_INVOICE, store, DEFAULT_ROUTES, **kw)


def _queued(store: Store) -> list[str]:
    return sorted(r["record_key"].split("|")[-1] for r in store.deliveries(status="pending"))


def test_a_server_clock_ahead_never_drags_the_watermark_past_the_polls_start(store: Store) -> None:
    now = datetime.now(timezone.utc)
    ahead = now + timedelta(hours=3)
    client = ScriptedClient([_invoice("SKEW-1", ahead)])
    _poll(client, store, first_run="post")
    _, mark = store.watermark("gp", "TWO", GP_INVOICE.name)
    assert mark <= datetime.now(timezone.utc)
    assert [r["record_key"] for r in store.audit_rows("future_cursor")] == [_key("SKEW-1")]

    # The glitch is over: the next document carries real time and must still be read.
    client.rows.append(_invoice("AFTER-1", datetime.now(timezone.utc)))
    _poll(client, store, first_run="post")
    assert _queued(store) == ["AFTER-1", "SKEW-1"]


def test_the_servers_own_clock_caps_the_watermark_when_it_is_behind_ours(store: Store) -> None:
    now = datetime.now(timezone.utc)
    server = now - timedelta(minutes=30)  # the ERP's clock is half an hour behind ours
    stamped = server + timedelta(minutes=10)  # a document stamped "ahead" of the ERP's own clock
    client = ScriptedClient([_invoice("SRV-1", stamped)], server_time=server)
    _poll(client, store, first_run="post")
    _, mark = store.watermark("gp", "TWO", GP_INVOICE.name)
    assert mark == server


def test_a_row_below_the_watermark_is_delivered_and_audited_not_dropped(store: Store) -> None:
    now = datetime.now(timezone.utc)
    _poll(ScriptedClient([_invoice("FIRST", now - timedelta(minutes=1))]), store, first_run="post")
    # The server answers ">= watermark" with a row whose value reads lower (a format surprise).
    odd = ScriptedClient([_invoice("ODD-1", now - timedelta(days=2))])
    odd.pages = lambda entity, since, until=None, limit=None: iter([Page(rows=tuple(odd.rows), row_count=1)])
    res = _poll(odd, store, first_run="post")
    assert res.out_of_window == 1
    assert "ODD-1" in _queued(store)
    assert [r["record_key"] for r in store.audit_rows("out_of_window")] == [_key("ODD-1")]


def test_a_backfill_reads_only_its_window_and_says_what_it_left_out(store: Store) -> None:
    rows = [_invoice("IN-1", datetime(2026, 10, 5, tzinfo=timezone.utc)),
            _invoice("OUT-1", datetime(2026, 11, 5, tzinfo=timezone.utc))]
    res = _poll(ScriptedClient(rows), store, first_run="post",
                window=Window("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"))
    assert res.out_of_window == 1
    assert _queued(store) == ["IN-1"]
    assert [r["record_key"] for r in store.audit_rows("out_of_window")] == [_key("OUT-1")]


def test_an_entity_the_server_does_not_offer_stays_in_its_first_run_state(store: Store) -> None:
    res = _poll(ScriptedClient(missing=True), store, first_run="baseline")
    assert res.skipped and "no " in res.skipped
    assert store.watermark("gp", "TWO", GP_INVOICE.name) is None

    # The resource appears later with years of history: that is a first run (baseline), not news.
    history = [_invoice(f"OLD-{i}", datetime(2024, 1, 1 + i, tzinfo=timezone.utc)) for i in range(5)]
    res = _poll(ScriptedClient(history), store, first_run="baseline")
    assert res.new == 0 and res.filtered == 5
    assert _queued(store) == []


def test_a_dry_run_before_going_live_applies_the_first_run_baseline(store: Store) -> None:
    history = [_invoice(f"OLD-{i}", datetime(2024, 1, 1 + i, tzinfo=timezone.utc)) for i in range(3)]
    dry = _poll(ScriptedClient(history), store, first_run="baseline", dry_run=True)
    assert dry.dry_run_rows == 0  # the live run would post none of these
    live = _poll(ScriptedClient(history), store, first_run="baseline")
    assert live.new == 0 and _queued(store) == []
    assert dry.dry_run_rows == live.new


def test_a_lost_watermark_is_not_a_first_run_once_the_outbox_has_posted(store: Store) -> None:
    now = datetime.now(timezone.utc)
    _poll(ScriptedClient([_invoice("A-1", now - timedelta(days=3))]), store, first_run="post")
    with store.engine.begin() as conn:  # the watermark row is lost (restored backup, say)
        conn.execute(watermarks.delete().where(watermarks.c.entity == GP_INVOICE.name))
    rows = [_invoice("A-1", now - timedelta(days=3)), _invoice("NEW-1", now)]
    res = _poll(ScriptedClient(rows), store, first_run="baseline")
    assert res.new == 1 and _queued(store) == ["A-1", "NEW-1"]


def test_a_baseline_cut_short_carries_on_as_a_baseline(store: Store) -> None:
    history = [_invoice(f"OLD-{i}", datetime(2024, 1, 1 + i, tzinfo=timezone.utc)) for i in range(4)]

    class Crashing(ScriptedClient):
        def pages(self, entity, *, since, until=None, limit=None):
            yield Page(rows=tuple(self.rows[:2]), url="scripted", row_count=2)
            raise KeyboardInterrupt  # the process dies after the first page was committed

    with pytest.raises(KeyboardInterrupt):
        _poll(Crashing(history), store, first_run="baseline")
    assert store.watermark("gp", "TWO", GP_INVOICE.name) is None
    res = _poll(ScriptedClient(history), store, first_run="baseline")
    assert res.new == 0 and _queued(store) == []


def test_switching_the_syspro_transport_never_baselines(syspro_sim, syspro_client, store: Store) -> None:
    enet, odata = ({e.name: e for e in entities_for(t)}["ap_invoice"] for t in ("enet", "odata"))
    with syspro_client("enet") as client:
        first = poll_entity(client, enet, store, DEFAULT_ROUTES, first_run="baseline")
    assert first.new == 0 and first.filtered > 0
    syspro_sim.sim.insert_invoice(invoice="AFTER-SWITCH", amount="410.00")
    with syspro_client("odata") as client:
        res = poll_entity(client, odata, store, DEFAULT_ROUTES, first_run="baseline")
    assert _queued(store) == ["AFTER-SWITCH"] and res.new == 1
    assert store.watermark("syspro", client.company, "ap_invoice")[0] == "date"
