"""Two workers at once on one PostgreSQL store: nothing posted twice, no watermark moving back.

Prefect's process worker runs every flow run in its own process, and nothing stops a backfill
from running while the scheduled run polls the same SYSPRO company (the backfill deployment has
no concurrency limit), nor the drains of the SYSPRO and GP flows from emptying the same outbox
together. These tests do exactly that with real processes started at one barrier, against the
loopback simulators and a throwaway PostgreSQL schema (row locks, ``FOR UPDATE SKIP LOCKED``
and concurrent transactions are what is tested, so SQLite is not):

* a scheduled run and a backfill of an overlapping window (and, for good measure, two scheduled
  runs) poll and drain at once while the ERP keeps capturing invoices. Each run records the
  watermark after every page and every poll, and a third observer samples it all along: no
  sequence ever goes down, and after a last quiet cycle every document reaches Slack once;
* two drainers empty one backlog of several hundred rows over four channels: every row is
  posted exactly once, and both drainers really took part.

They run only where ``ERP_SLACK_TEST_PG_URL`` names a server, like every PostgreSQL variant
(``tests/_fixtures_store.py``), and say so as a skip elsewhere; ``.ci/run`` always sets the
URL, so CI runs them.
"""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from collections import Counter
from typing import Any, Iterator

import pytest

from erp_slack.cycle import SlackOut, poll_step, run_cycle
from erp_slack.pipeline import Window
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.sources import all_entities
from erp_slack.sources.syspro.client import connect
from erp_slack.sources.syspro.entities import entities_for
from erp_slack.store import NewDelivery, Store
from simulators._http import serve_on_loopback
from simulators.slack import SlackSimulator
from simulators.syspro import SysproSimulator
from tests._fixtures_store import PG_URL, _pg_schema_url

# Not `parametrize("db_url", ["postgres"], indirect=True)`: the store plugin already
# parametrizes every test that uses `db_url` (pytest then refuses a second parametrization), and
# would add a SQLite variant these tests have no meaning on.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: set ERP_SLACK_TEST_PG_URL (.ci/run always does)"),
]

COMPANY = "EDU1"
ENTITY_NAMES = ("ap_invoice", "ap_journal")  # every captured invoice adds one row to each
SPAWN = multiprocessing.get_context("spawn")  # a clean interpreter per worker, as Prefect's process worker
WAIT = 60.0  # seconds any process waits at the barrier or for a result before the test fails


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    yield from _pg_schema_url()


def _entities() -> list[Any]:
    return [e for e in entities_for("enet") if e.name in ENTITY_NAMES]


def _watermarks(store: Store) -> dict[str, int | None]:
    out = {}
    for name in ENTITY_NAMES:
        mark = store.watermark("syspro", COMPANY, name)
        out[name] = None if mark is None else mark[1]
    return out


def _gateway(slack_url: str, token: str) -> SlackGateway:
    return SlackGateway(token, base_url=slack_url, timeout=10)


# --- what each worker process runs ------------------------------------------------------------------


class _Recording:
    """A source client that records the stored watermark each time the pipeline takes a page."""

    def __init__(self, client: Any, store: Store, samples: list[dict[str, int | None]]) -> None:
        self._client, self._store, self._samples = client, store, samples
        self.source, self.company = client.source, client.company

    def pages(self, entity: Any, **kw: Any) -> Iterator[Any]:
        for page in self._client.pages(entity, **kw):
            yield page
            self._samples.append(_watermarks(self._store))  # this page is committed by now

    def __enter__(self) -> "_Recording":
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()


def flow_run(role: str, syspro_url: str, slack_url: str, token: str, db_url: str, window: tuple[Any, Any],
             start: Any, results: Any) -> None:
    """One flow run in its own process (the core cycle): poll both entities, then drain the outbox."""
    out: dict[str, Any] = {"role": role, "samples": [], "polls": [], "error": None}
    try:
        store = Store(db_url)  # opening migrates: both runs do it at once, as flow runs do

        def open_client(audit: Any) -> Any:
            client = connect("enet", base_url=syspro_url, operator="ENET01", operator_password="secret",
                             company=COMPANY, page_size=3, sleep=lambda s: None, audit=audit)
            return _Recording(client, store, out["samples"])

        def poll(*args: Any) -> Any:
            res = poll_step(*args)
            out["samples"].append(_watermarks(store))
            return res

        def drain(store: Store, gateway: Any, settings: Any, entities: Any, run_id: Any, pacer: Any) -> Any:
            return Drainer(store, gateway, entities, worker=role, settings=settings, flow_run_id=run_id).drain()

        slack = SlackOut(_gateway(slack_url, token), DrainSettings(time_scale=1000.0, reconcile_after=0.5))
        start.wait(WAIT)
        summary = run_cycle(open_client, _entities(), store, slack, source="syspro", company=COMPANY,
                            window=Window(*window), first_run="post", flow_run_id=role, poll=poll, drain=drain)
        out["polls"] = [p.as_dict() for p in summary.polls]
        out["records"], out["halted"] = summary.delivered_records, summary.halted
        store.dispose()
    except BaseException:  # noqa: BLE001 - everything goes back to the test, which fails on it
        out["error"] = traceback.format_exc()
    results.put(out)


def quiet_run(syspro_url: str, slack_url: str, token: str, store: Store) -> None:
    """A run in the test's own process (the core cycle), reading 50 rows a page."""
    run_cycle(
        lambda audit: connect("enet", base_url=syspro_url, operator="ENET01", operator_password="secret",
                              company=COMPANY, page_size=50, audit=audit),
        _entities(), store, SlackOut(_gateway(slack_url, token), DrainSettings(time_scale=1000.0)),
        source="syspro", company=COMPANY, first_run="post",
    )


def drain_run(worker: str, slack_url: str, token: str, db_url: str, digest_threshold: int, start: Any,
              results: Any) -> None:
    """One drainer in its own process."""
    out: dict[str, Any] = {"worker": worker, "error": None}
    try:
        store = Store(db_url)
        drainer = Drainer(store, _gateway(slack_url, token), all_entities(), worker=worker,
                          settings=DrainSettings(time_scale=20.0, reconcile_after=0.5,
                                                 digest_threshold=digest_threshold, digest_max=4))
        start.wait(WAIT)
        report = drainer.drain()
        out.update(records=report.records, messages=report.messages, rate_limited=report.rate_limited,
                   halted=report.halted)
        store.dispose()
    except BaseException:  # noqa: BLE001
        out["error"] = traceback.format_exc()
    results.put(out)


def _collect(procs: list[Any], results: Any) -> list[dict[str, Any]]:
    outs = []
    try:
        for _ in procs:
            outs.append(results.get(timeout=WAIT))
    finally:
        for p in procs:
            p.join(timeout=WAIT)
            if p.is_alive():
                p.kill()
    failed = [o["error"] for o in outs if o["error"]]
    assert not failed, "\n".join(failed)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return outs


# --- reading Slack back -----------------------------------------------------------------------------


def _uids(message: dict[str, Any]) -> list[str]:
    return list(((message.get("metadata") or {}).get("event_payload") or {}).get("deliveries") or [])


def assert_each_row_posted_once(store: Store, slack: SlackSimulator) -> None:
    """Every routed row is sent and its uid is in exactly one stored message, in its channel."""
    rows = [r for r in store.deliveries() if r["status"] != "filtered"]
    assert Counter(r["status"] for r in rows) == {"sent": len(rows)}
    where: dict[str, list[str]] = {}
    for m in slack.posted():
        for uid in _uids(m):
            where.setdefault(uid, []).append("#" + m["channel_name"])
    assert {r["uid"]: [r["channel"]] for r in rows} == where


def _non_decreasing(samples: list[dict[str, int | None]], who: str) -> None:
    for name in ENTITY_NAMES:
        seen = [s[name] for s in samples if s[name] is not None]
        back = [(a, b) for a, b in zip(seen, seen[1:]) if b < a]
        assert back == [], f"{who}: the {name} watermark moved back {back}"


# --- a scheduled run and a backfill at once ---------------------------------------------------------


@pytest.mark.parametrize("roles", [pytest.param(("scheduled", "backfill"), id="scheduled-and-backfill"),
                                   pytest.param(("scheduled", "scheduled-late"), id="two-scheduled-runs")])
def test_overlapping_runs_never_post_twice_nor_move_a_watermark_back(pg_url: str, roles: tuple[str, str]) -> None:
    # One e.net session per operator would make the two runs evict each other (reference);
    # the subject here is the outbox and the watermark, so this site allows two.
    sim = SysproSimulator(operators={"ENET01": {"password": "secret", "companies": [COMPANY], "max_sessions": 2}})
    slack = SlackSimulator(rate_limits=False, time_scale=1000.0)
    store = Store(pg_url)
    with serve_on_loopback(sim) as syspro, serve_on_loopback(slack) as served:
        slack_url = served.url + "/api/"
        first = [sim.insert_invoice(supplier="0000002", amount=f"{10 + i}.00") for i in range(30)]

        # The scheduled run has been going for a while: the first 30 invoices are in Slack.
        quiet_run(syspro.url, slack_url, slack.token, store)
        before = _watermarks(store)

        # Meanwhile: 40 more invoices, and 5 of the first ones paid (a new version of each).
        for i in range(40):
            sim.insert_invoice(supplier="0000004", amount=f"{200 + i}.00")
        for inv in first[:5]:
            sim.pay_invoice(inv["Supplier"], inv["Invoice"])
        # The backfill re-reads from the 11th of the first invoices to well past today's rows:
        # posted, changed and never-seen rows alike.
        windows = {"scheduled": (None, None), "scheduled-late": (None, None),
                   "backfill": (first[10]["TimeStamp"], sim.rowversion + 10_000)}

        start, results = SPAWN.Barrier(3), SPAWN.Queue()
        procs = [
            SPAWN.Process(target=flow_run, args=(role, syspro.url, slack_url, slack.token, pg_url, windows[role],
                                                 start, results), name=role)
            for role in roles
        ]
        for p in procs:
            p.start()

        # While both run, the ERP keeps capturing invoices and a third observer samples the watermarks.
        observed: list[dict[str, int | None]] = []
        done = threading.Event()

        def observe() -> None:
            watcher = Store(pg_url, migrate=False)
            while not done.wait(0.002):
                observed.append(_watermarks(watcher))
            watcher.dispose()

        def capture() -> None:
            for i in range(15):
                sim.insert_invoice(supplier="0000005", amount=f"{500 + i}.00")
                done.wait(0.01)

        threads = [threading.Thread(target=observe), threading.Thread(target=capture)]
        start.wait(WAIT)
        for t in threads:
            t.start()
        try:
            outs = _collect(procs, results)
        finally:
            done.set()
            for t in threads:
                t.join(WAIT)

        by_role = {o["role"]: o for o in outs}
        for role, out in by_role.items():
            _non_decreasing([before, *out["samples"]], role)
            assert len(out["polls"]) == len(ENTITY_NAMES) and out["halted"] is None
        _non_decreasing([before, *observed], "observer")
        assert len(observed) > 10  # it really watched while they ran
        if "backfill" in by_role:
            for poll in by_role["backfill"]["polls"]:
                assert poll["watermark_after"] == poll["watermark_before"]  # a backfill never moves it
                assert poll["new"] + poll["updated"] + poll["duplicates"] > 0  # and it did overlap
        live = by_role["scheduled"]["polls"]
        assert all(int(p["watermark_after"]) >= before[p["entity"]] for p in live)

        # A last, quiet cycle catches whatever was captured after the runs read past it.
        quiet_run(syspro.url, slack_url, slack.token, store)

        # Every document is in the outbox once per version, announced as created once, and every
        # row reached Slack once; the watermarks stand at the newest rows.
        rows = store.deliveries()
        assert len({(r["entity"], r["record_key"], r["version"]) for r in rows}) == len(rows)
        for name, table in (("ap_invoice", "ApInvoice"), ("ap_journal", "ApJnlSummary")):
            entity = next(e for e in _entities() if e.name == name)
            keys = {"|".join(str(r[c]).strip() for c in entity.key) for r in sim.rows(table)}
            created = Counter(r["record_key"] for r in rows if r["entity"] == name and r["event"] == "created")
            assert created == Counter(keys)
        paid = {f"{inv['Supplier']}|{inv['Invoice']}" for inv in first[:5]}
        assert {r["record_key"] for r in rows if r["event"] != "created"} == paid
        assert_each_row_posted_once(store, slack)
        top = {n: max(r["TimeStamp"] for r in sim.rows(t)) for n, t in (("ap_invoice", "ApInvoice"),
                                                                          ("ap_journal", "ApJnlSummary"))}
        assert _watermarks(store) == top
    store.dispose()


# --- two drainers on one backlog --------------------------------------------------------------------

CHANNELS = ("#ap-invoices", "#purchasing", "#warehouse", "#gl-postings")


@pytest.mark.parametrize("digest_threshold", [pytest.param(1000, id="one-message-per-row"),
                                              pytest.param(5, id="digests-of-four")])
def test_two_drainers_post_every_row_of_one_backlog_exactly_once(pg_url: str, digest_threshold: int) -> None:
    store = Store(pg_url)
    items = [
        NewDelivery(record_key=f"0000001|INV-{i:04d}", version="v1", channel=CHANNELS[i % len(CHANNELS)],
                    status="pending", cursor=str(i),
                    fields={"supplier": "0000001", "invoice": f"INV-{i:04d}", "supplier_name": "Bike Parts",
                            "amount": f"{i}.00", "currency": "$"})
        for i in range(400)
    ]
    store.enqueue(source="syspro", company=COMPANY, entity="ap_invoice", items=items)
    slack = SlackSimulator(time_scale=20.0)  # Slack's real limits, 20 times faster
    with serve_on_loopback(slack) as served:
        start, results = SPAWN.Barrier(2), SPAWN.Queue()
        procs = [
            SPAWN.Process(target=drain_run, args=(w, served.url + "/api/", slack.token, pg_url, digest_threshold,
                                                  start, results), name=w)
            for w in ("drainer-a", "drainer-b")
        ]
        for p in procs:
            p.start()
        outs = _collect(procs, results)

        assert all(o["halted"] is None for o in outs)
        assert sum(o["records"] for o in outs) == 400
        assert_each_row_posted_once(store, slack)
        # Both really drained: each posted some of the rows, and each row was claimed by one of them.
        by_worker = Counter(r["claimed_by"] for r in store.deliveries())
        assert set(by_worker) == {"drainer-a", "drainer-b"}
        assert all(o["messages"] > 0 for o in outs)
        # Each paces its own lanes only, so the other's posts cost 429s: every one was audited.
        assert len(store.audit_rows("rate_limited")) == sum(o["rate_limited"] for o in outs)
    store.dispose()
