"""The fault matrix: one fault per case, and the state it must leave behind.

Every case runs the real core (client → pipeline → SQL outbox → drainer) against the loopback
simulators (SYSPRO e.net and OData, Dynamics GP with real NTLM, Slack) and a real store (SQLite,
plus PostgreSQL when ``ERP_SLACK_TEST_PG_URL`` is set), injects one fault with the simulators'
``inject(...)`` switches or their control methods, and then asserts the FINAL state: the
delivery rows, the watermarks, the ``audit_events`` rows and the messages the Slack simulator
stored. A give-up is never silent: each one is tied to the audit row kind that records it and
leaves its rows ``pending``, ``sending`` (to be reconciled) or ``failed``. Cycles run the same
core cycle as the flow (``erp_slack.cycle``): what a failed run queued before failing is
delivered by that run, and one entity's failure leaves the others to be read.

    fault                              ends as / audit rows                      rows and watermark after it
    e.net session evicted or expired   one re-logon: relogon 1, logon 2          all sent once, watermark at the top
    e.net session refused on replay    SourceSessionExpired: relogon 1           pages so far sent, watermark kept
    SYSPRO 5xx, drops, read timeouts   recovers, or SourceUnavailable: retry 2   the same; next cycle: each sent once
    GP final 401; 403 on a resource     SourceAuthFailed / SourceAccessDenied     its watermark kept (a 403 lets the
                                       , no retry                                others flow); next cycle catches up
    GP 503, drops, read timeouts       SourceUnavailable: retry 2                its watermark kept; next cycle catches up
    audit database refuses a COMMIT    OperationalError, no poll row             watermark kept; next cycle catches up
    Slack 429 storm on every lane      waits each Retry-After: rate_limited      all sent once
    Slack 5xx, stored-then-failed      resends or finds it: reconciled           all sent once
    Slack 5xx past the attempt cap     delivery_deferred                         pending; a later drain sends once
    stored-then-failed, history down   reconcile_deferred, later reconciled      sending; found after the lease
    Slack token revoked                halt: slack_auth_failed                   pending; a new token sends each once
    Slack channel_not_found            delivery_failed per record                failed until fixed and requeued
    Slack Retry-After beyond the cap   delivery_deferred                         pending until the time Slack named

Every source failure also raises the ops alert (``alert_raised``) once, cleared by the next good
cycle.

Nothing really sleeps beyond scaled waits: SYSPRO and GP clients get a recording ``sleep``, the
SYSPRO idle clock is advanced, a read times out after 0.3 s, and the Slack simulator runs 20
times faster than Slack (a Retry-After of 2 s is 100 ms).

What ``test_e2e_*`` and ``test_send`` already prove is not repeated here: this file adds the
failure points they do not reach (mid-scan on the live transport, a refused re-logon, GP auth
failures after the handshake, a failing COMMIT, storms on every lane, give-ups and recovery).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from erp_slack.errors import (
    SourceAccessDenied,
    SourceAuthFailed,
    SourceSessionExpired,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.model import normalise
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.policy import SendPolicy
from erp_slack.slack.send import Drainer, DrainReport, DrainSettings
from erp_slack.sources import all_entities
from erp_slack.sources.gp.entities import ENTITIES as GP_ENTITIES
from erp_slack.sources.http import RetryPolicy
from erp_slack.sources.syspro.entities import entities_for
from erp_slack.store import NewDelivery, Store, utcnow
from simulators.syspro import INVALID_SESSION
from tests._cycle import Cycle, run_cycle
from tests._fixtures_gp import GpSimServer
from tests._fixtures_slack import SlackSimServer
from tests._fixtures_syspro import ClientFactory, SysproServed

OPS = "#finance-alerts"


# --- reading the final state back -----------------------------------------------------------------


def _uids(message: Mapping[str, Any]) -> list[str]:
    return list(((message.get("metadata") or {}).get("event_payload") or {}).get("deliveries") or [])


def erp_posts(slack: SlackSimServer) -> list[dict[str, Any]]:
    """Stored messages that carry deliveries (ops alerts carry none)."""
    return [m for m in slack.sim.posted() if _uids(m)]


def assert_each_sent_once(store: Store, slack: SlackSimServer) -> None:
    """Every routed row is ``sent``, and its uid is in exactly one stored message, in its channel."""
    rows = [r for r in store.deliveries(dry_run=False) if r["status"] != "filtered"]
    assert rows, "nothing was enqueued"
    assert Counter(r["status"] for r in rows) == {"sent": len(rows)}
    where: dict[str, list[str]] = {}
    for m in erp_posts(slack):
        for uid in _uids(m):
            where.setdefault(uid, []).append("#" + m["channel_name"])
    assert {r["uid"]: [r["channel"]] for r in rows} == where


def audit_kinds(store: Store, after_id: int = 0) -> Counter[str]:
    return Counter(a["kind"] for a in store.audit_rows() if a["id"] > after_id)


def last_audit_id(store: Store) -> int:
    rows = store.audit_rows()
    return rows[-1]["id"] if rows else 0


# --- a cycle as the flow runs it, and a client that breaks at a chosen page --------------------------


def flow_cycle(client: Any, entities: Sequence[Any], store: Store, slack: SlackSimServer) -> Cycle:
    """One cycle as the flow runs it (the core cycle, minus Prefect), alerting to ``OPS``: any
    failure raises the ops alert (posted once per failure streak) after delivering what is
    queued; a good cycle clears the alert."""
    return run_cycle(client, entities, store, slack, ops_channel=OPS)


def audit_hook(store: Store, source: str, company: str) -> Callable[[str, Mapping[str, Any]], None]:
    """The hook flows pass to clients: every client event becomes an audit row."""

    def hook(kind: str, details: Mapping[str, Any]) -> None:
        store.audit(kind, source=source, company=company, entity=details.get("entity"), details=dict(details))

    return hook


class BreakAfterPage:
    """A source client that calls ``arm()`` once the pipeline has taken ``after`` pages of ``entity``.

    Clients fetch lazily, so whatever ``arm`` does to the simulator hits the *next* request of the
    same read: a fault in the middle of a paged poll, after the earlier pages were committed.
    ``after=0`` arms before the first request.
    """

    def __init__(self, client: Any, entity: str, after: int, arm: Callable[[], None]) -> None:
        self._client, self._entity, self._after, self._arm = client, entity, after, arm
        self.source, self.company = client.source, client.company
        self.armed = False

    def pages(self, entity: Any, **kw: Any) -> Iterator[Any]:
        mine = entity.name == self._entity
        if mine and self._after == 0:
            self._fire()
        for n, page in enumerate(self._client.pages(entity, **kw), start=1):
            yield page
            if mine and n == self._after:
                self._fire()

    def _fire(self) -> None:
        if not self.armed:
            self.armed = True
            self._arm()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "BreakAfterPage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Before:
    """What the store and Slack held before the faulty cycle."""

    rows: list[dict[str, Any]]
    watermarks: dict[str, Any]
    posts: int
    audit_id: int


def snapshot(store: Store, slack: SlackSimServer, watermarks: dict[str, Any]) -> Before:
    return Before(store.deliveries(), watermarks, len(erp_posts(slack)), last_audit_id(store))


def assert_kept_its_place(store: Store, slack: SlackSimServer, before: Before, watermarks: dict[str, Any]) -> None:
    """The failed cycle moved no watermark and changed no earlier row; whatever pages it
    committed before failing were delivered after the failure (or wait as ``pending``), once."""
    assert watermarks == before.watermarks
    rows = store.deliveries()
    assert rows[: len(before.rows)] == before.rows
    committed = rows[len(before.rows):]
    assert {r["status"] for r in committed} <= {"pending", "sent"}
    assert len(erp_posts(slack)) - before.posts <= len(committed)


# --- SYSPRO -----------------------------------------------------------------------------------------


@dataclass
class SysproRig:
    """SYSPRO supplier invoices through one transport into the store and Slack, two rows a page."""

    transport: str
    served: SysproServed
    store: Store
    slack: SlackSimServer
    make: ClientFactory

    @property
    def sim(self) -> Any:
        return self.served.sim

    @property
    def entity(self) -> Any:
        return next(e for e in entities_for(self.transport) if e.name == "ap_invoice")

    @property
    def endpoint(self) -> str:
        """The simulator's request counter for invoice reads on this transport."""
        return "Query/Query" if self.transport == "enet" else "odata:ApInvoice"

    def client(self, **overrides: Any) -> Any:
        overrides.setdefault("audit", audit_hook(self.store, "syspro", self.served.company))
        overrides.setdefault("page_size", 2)
        return self.make(self.transport, **overrides)

    def cycle(self, client: Any = None) -> Cycle:
        return flow_cycle(client or self.client(), [self.entity], self.store, self.slack)

    def watermarks(self) -> dict[str, Any]:
        return {"ap_invoice": self.store.watermark("syspro", self.served.company, "ap_invoice")}

    def high(self) -> dict[str, Any]:
        """The watermark a complete read must leave: the newest TimeStamp, or the newest posting date."""
        rows = self.sim.rows("ApInvoice")
        if self.transport == "enet":
            return {"ap_invoice": ("rowversion", max(r["TimeStamp"] for r in rows))}
        return {"ap_invoice": ("date", max(r["JournalDate"] for r in rows))}

    def assert_caught_up(self) -> None:
        """Every invoice the ERP holds is in the outbox once, sent once, and the watermark is at the top."""
        keys = Counter(r["record_key"] for r in self.store.deliveries(entity="ap_invoice"))
        want = {f"{r['Supplier'].strip()}|{r['Invoice'].strip()}" for r in self.sim.rows("ApInvoice")}
        assert keys == Counter(want)
        assert_each_sent_once(self.store, self.slack)
        assert self.watermarks() == self.high()
        assert self.sim.sessions() == []  # every e.net session was logged off


@pytest.fixture
def syspro_rig(request: pytest.FixtureRequest, syspro_sim: SysproServed, syspro_client: ClientFactory,
               store: Store, slack_sim_factory: Callable[..., SlackSimServer]) -> SysproRig:
    slack = slack_sim_factory(rate_limits=False, time_scale=1000.0)  # pacing is not the subject here
    return SysproRig(request.param, syspro_sim, store, slack, syspro_client)


@dataclass(frozen=True)
class SourceFault:
    """One row of a source fault table."""

    after: int  # pages of the entity taken before the fault is armed
    arm: Callable[[Any], None]  # what happens to the simulator then
    raises: type[Exception] | None = None  # the give-up, or None when the client recovers in the run
    match: str = ""
    tries: int = 0  # requests the broken read made after the fault was armed (give-ups)
    audit: Mapping[str, int] = field(default_factory=dict)  # audit rows the faulty cycle wrote
    client: Mapping[str, Any] = field(default_factory=dict)  # client overrides (a short timeout)
    transport: str = "enet"  # SYSPRO only
    page_size: int | None = None  # GP only: the simulator's page size (None: whole lists)


def _evict(sim: Any) -> None:
    sim.evict("ENET01")  # a person logs on at the desktop with the integration's operator


def _idle(sim: Any) -> None:
    sim.advance(sim.idle_timeout_seconds + 1)


SYSPRO_FAULTS = {
    "enet-session-evicted-mid-scan": SourceFault(
        after=1, arm=_evict, audit={"relogon": 1, "logon": 2, "retry": 0, "alert_raised": 0}),
    "enet-session-expired-mid-scan": SourceFault(
        after=2, arm=_idle, audit={"relogon": 1, "logon": 2, "retry": 0, "alert_raised": 0}),
    "enet-session-refused-after-relogon": SourceFault(
        after=1, arm=lambda sim: sim.inject("error_text", text=INVALID_SESSION, times=2, path="Query/Query"),
        raises=SourceSessionExpired, match="UserID is invalid", tries=2,
        audit={"relogon": 1, "logon": 2, "retry": 0, "alert_raised": 1}),
    "enet-503-twice-then-ok": SourceFault(
        after=1, arm=lambda sim: sim.inject("status", status=503, times=2, path="Query/Query"),
        audit={"retry": 2, "relogon": 0, "alert_raised": 0}),
    "enet-503-three-times": SourceFault(
        after=1, arm=lambda sim: sim.inject("status", status=503, times=3, path="Query/Query"),
        raises=SourceUnavailable, match=r"SYSPRO e\.net answered HTTP 503", tries=3,
        audit={"retry": 2, "alert_raised": 1}),
    "enet-connection-dropped-three-times": SourceFault(
        after=1, arm=lambda sim: sim.inject("drop", times=3, path="Query/Query"),
        raises=SourceUnavailable, match="SYSPRO enet request failed", tries=3,
        audit={"retry": 2, "alert_raised": 1}),
    "odata-502-once-then-ok": SourceFault(
        transport="odata", after=1, arm=lambda sim: sim.inject("status", status=502, times=1, path="odata"),
        audit={"retry": 1, "alert_raised": 0}),
    "odata-503-three-times": SourceFault(
        transport="odata", after=1, arm=lambda sim: sim.inject("status", status=503, times=3, path="odata"),
        raises=SourceUnavailable, match="SYSPRO OData answered HTTP 503", tries=3,
        audit={"retry": 2, "alert_raised": 1}),
    "odata-read-timeout-once-then-ok": SourceFault(
        transport="odata", after=1, arm=lambda sim: sim.inject("delay", seconds=0.8, times=1, path="odata"),
        audit={"retry": 1, "alert_raised": 0}, client={"timeout": 0.3}),
    "odata-read-timeout-three-times": SourceFault(
        transport="odata", after=1, arm=lambda sim: sim.inject("delay", seconds=0.8, times=3, path="odata"),
        raises=SourceUnavailable, match="SYSPRO odata request failed: ReadTimeout", tries=3,
        audit={"retry": 2, "alert_raised": 1}, client={"timeout": 0.3}),
}


def _new_invoices(sim: Any) -> None:
    """Five invoices arrive between two cycles: with two rows a page, the next poll pages."""
    for n, supplier in enumerate(("0000001", "0000002", "0000003", "0000004", "0000005")):
        sim.insert_invoice(supplier=supplier, amount=f"{120 + n}.00", post_journal=False)


@pytest.mark.parametrize(
    "syspro_rig, case",
    [pytest.param(c.transport, c, id=name) for name, c in SYSPRO_FAULTS.items()],
    indirect=["syspro_rig"],
)
def test_syspro_fault(syspro_rig: SysproRig, case: SourceFault) -> None:
    rig, sim = syspro_rig, syspro_rig.sim
    rig.cycle()
    rig.assert_caught_up()
    _new_invoices(sim)
    before = snapshot(rig.store, rig.slack, rig.watermarks())
    slept = len(rig.make.slept)
    at_arm: list[int] = []

    def arm() -> None:
        at_arm.append(sim.counters[rig.endpoint])
        case.arm(sim)

    client = BreakAfterPage(rig.client(**case.client), "ap_invoice", case.after, arm)
    if case.raises is None:
        rig.cycle(client)
    else:
        with pytest.raises(case.raises, match=case.match):
            rig.cycle(client)
    assert client.armed

    wrote = audit_kinds(rig.store, before.audit_id)
    assert {k: wrote[k] for k in case.audit} == dict(case.audit)
    # Each wait between tries is recorded (never slept) and audited as one `retry` row.
    assert len(rig.make.slept) - slept == wrote["retry"]
    if case.raises is None:
        rig.assert_caught_up()
        assert wrote["poll"] == 1
        return

    # Bounded: exactly `tries` requests after the fault, then the give-up; the retries it made and
    # the alert are in the audit trail, and nothing moved.
    assert sim.counters[rig.endpoint] - at_arm[0] == case.tries
    assert wrote["poll"] == 0
    assert_kept_its_place(rig.store, rig.slack, before, rig.watermarks())
    committed = rig.store.deliveries()[len(before.rows):]
    assert len(rig.slack.sim.posted(OPS)) == 1
    assert sim.sessions() == []  # the failed run still logged off

    # The next cycle re-reads from the old watermark: what the failed one committed is recognised,
    # everything else is new, and every invoice reaches Slack once.
    again = rig.cycle()
    (poll,) = again.polls
    assert poll.duplicates >= len(committed)
    assert poll.new == 5 - len(committed)
    rig.assert_caught_up()
    assert audit_kinds(rig.store, before.audit_id)["alert_cleared"] == 1


# --- Dynamics GP ------------------------------------------------------------------------------------

_GP_NOW = datetime(2024, 4, 2, 9, 0, tzinfo=timezone.utc)  # pinned a little after the Fabrikam seed


@dataclass
class GpRig:
    served: GpSimServer
    store: Store
    slack: SlackSimServer
    slept: list[float] = field(default_factory=list)

    @property
    def sim(self) -> Any:
        return self.served.sim

    def client(self, **overrides: Any) -> Any:
        overrides.setdefault("audit", audit_hook(self.store, "gp", self.served.company))
        overrides.setdefault("sleep", self.slept.append)
        overrides.setdefault("retry", RetryPolicy(attempts=3, timeout=30.0))
        return self.served.client(**overrides)

    def cycle(self, client: Any = None) -> Cycle:
        return flow_cycle(client or self.client(), GP_ENTITIES, self.store, self.slack)

    def watermarks(self) -> dict[str, Any]:
        return {e.name: self.store.watermark("gp", self.served.company, e.name) for e in GP_ENTITIES}

    def assert_caught_up(self) -> None:
        """The newest version of every document GP serves is in the outbox, and all were sent once."""
        with self.served.client() as plain:
            want = {
                (e.name, rec.key): rec.version
                for e in GP_ENTITIES for page in plain.pages(e, since=None)
                for rec in (normalise(e, self.served.company, row) for row in page.rows)
            }
        latest = {(r["entity"], r["record_key"]): r["version"] for r in self.store.deliveries()}
        assert latest == want
        assert_each_sent_once(self.store, self.slack)
        assert None not in self.watermarks().values()


@pytest.fixture
def gp_rig(request: pytest.FixtureRequest, gp_sim_factory: Callable[..., GpSimServer], store: Store,
           slack_sim_factory: Callable[..., SlackSimServer]) -> GpRig:
    page_size = getattr(request, "param", None)
    served = gp_sim_factory(clock=lambda: _GP_NOW, page_size=page_size)
    return GpRig(served, store, slack_sim_factory(rate_limits=False, time_scale=1000.0))


def _gp_changes(sim: Any) -> None:
    """A posted batch of three invoices, a PO released and a vendor put on hold."""
    for n, vendor in enumerate(("ADVANCED0001", "ACETRAVE0001", "SMITHSON0001")):
        sim.add_invoice(vendor, f"FAULT-{n}", f"{310 + n}.00", batch="AP-FAULTS")
    sim.post_batch("AP-FAULTS")
    sim.set_po_status("PO2109", "Released")
    sim.update_vendor("CENTRALC0001", on_hold=True)


PAYABLES = "Purchasing/Payables/Transactions"
GP_FAULTS = {
    "final-401-after-the-handshake": SourceFault(
        after=0, arm=lambda sim: sim.inject("auth_401", path=PAYABLES),
        raises=SourceAuthFailed, match="refused the Windows credentials after the NTLM handshake", tries=1,
        audit={"auth_failed": 1, "retry": 0, "alert_raised": 1}),
    # Two documents a page, in key order: 641 | 644 650 (re-read by the lookback) | 700 (new) | …
    "final-401-mid-poll": SourceFault(
        page_size=2, after=3, arm=lambda sim: sim.inject("auth_401", path=PAYABLES),
        raises=SourceAuthFailed, match="after the NTLM handshake", tries=1,
        audit={"auth_failed": 1, "retry": 0, "alert_raised": 1}),
    # The company itself is readable: only the role's task for payables is missing.
    "403-on-one-resource": SourceFault(
        after=0, arm=lambda sim: sim.inject("status", status=403, path=PAYABLES),
        raises=SourceAccessDenied, match="GP refuses Purchasing/Payables/Transactions", tries=1,
        audit={"access_denied": 1, "auth_failed": 0, "logon": 1, "retry": 0, "alert_raised": 1}),
    "503-three-times": SourceFault(
        after=0, arm=lambda sim: sim.inject("status", times=3, path=PAYABLES),
        raises=SourceUnavailable, match=r"answered 503 .*\(gave up after 3 attempts\)", tries=3,
        audit={"retry": 2, "auth_failed": 0, "alert_raised": 1}),
    "503-twice-then-ok": SourceFault(
        after=0, arm=lambda sim: sim.inject("status", times=2, path=PAYABLES),
        audit={"retry": 2, "alert_raised": 0}),
    "connection-dropped-three-times": SourceFault(
        after=0, arm=lambda sim: sim.inject("drop", times=3, path=PAYABLES),
        raises=SourceUnavailable, match=r"cannot reach GP Service .*\(gave up after 3 attempts\)", tries=3,
        audit={"retry": 2, "alert_raised": 1}),
    "read-timeout-three-times": SourceFault(
        after=0, arm=lambda sim: sim.inject("delay", times=3, path=PAYABLES, seconds=0.8),
        raises=SourceUnavailable, match=r"timed out .*\(gave up after 3 attempts\)", tries=3,
        audit={"retry": 2, "alert_raised": 1}, client={"timeout": (5.0, 0.3)}),
}


def _gp_fault_count(sim: Any) -> int:
    return sum(v for k, v in sim.counters().items() if k.startswith("fault_"))


@pytest.mark.parametrize(
    "gp_rig, case", [pytest.param(c.page_size, c, id=name) for name, c in GP_FAULTS.items()], indirect=["gp_rig"]
)
def test_gp_fault(gp_rig: GpRig, case: SourceFault) -> None:
    rig, sim = gp_rig, gp_rig.sim
    rig.cycle()
    rig.assert_caught_up()
    _gp_changes(sim)
    before = snapshot(rig.store, rig.slack, rig.watermarks())
    slept = len(rig.slept)

    client = BreakAfterPage(rig.client(**case.client), "payables_invoice", case.after, lambda: case.arm(sim))
    if case.raises is None:
        rig.cycle(client)
    else:
        with pytest.raises(case.raises, match=case.match) as info:
            rig.cycle(client)
    assert client.armed

    wrote = audit_kinds(rig.store, before.audit_id)
    assert {k: wrote[k] for k in case.audit} == dict(case.audit)
    assert len(rig.slept) - slept == wrote["retry"]
    if case.raises is None:
        rig.assert_caught_up()
        return

    assert _gp_fault_count(sim) == case.tries  # bounded: no request beyond the policy's attempts
    if case.raises is SourceAuthFailed:
        (refusal,) = [a for a in rig.store.audit_rows("auth_failed") if a["id"] > before.audit_id]
        assert refusal["details"]["status"] == info.value.status  # 401 or 403, as the client saw it
        assert sim.password not in json.dumps(rig.store.audit_rows(), default=str)
    # A refused log-on or a server out of reach stops the run; any other failure of one entity
    # leaves the others to be read (and their changes delivered).
    stops = isinstance(info.value, (SourceAuthFailed, SourceUnreachable))
    assert wrote["poll"] == (0 if stops else len(GP_ENTITIES) - 1)
    marks = rig.watermarks()
    assert marks["payables_invoice"] == before.watermarks["payables_invoice"]
    rows = rig.store.deliveries()
    assert rows[: len(before.rows)] == before.rows
    committed = [r for r in rows[len(before.rows):] if r["entity"] == "payables_invoice"]
    assert bool(committed) == (case.after > 0)  # a mid-poll fault leaves the first page queued
    assert len(rig.slack.sim.posted(OPS)) == 1

    rig.cycle()
    # 3 invoices, a PO and a vendor changed: each is in the outbox once, whichever run read it.
    assert len(rig.store.deliveries()) - len(before.rows) == 5
    rig.assert_caught_up()


# --- the audit database refuses a COMMIT -----------------------------------------------------------


class RefuseCommit:
    """The database refuses the COMMIT of the ``skip + 1``-th transaction that writes ``table``.

    The transaction really ran its statements; its COMMIT then fails with the OperationalError
    SQLAlchemy raises when the server refuses one (a full disk, a restart, a failover), and the
    pool rolls the transaction back. Every other transaction commits normally.
    """

    def __init__(self, store: Store, table: str, *, skip: int = 0) -> None:
        self._write = re.compile(rf"^\s*(INSERT\s+INTO|UPDATE)\s+\"?{table}\"?\s", re.I)
        self._engine = store.engine
        self._skip = skip
        self._doomed: set[Any] = set()
        self._lock = threading.Lock()
        self.refused = 0
        event.listen(self._engine, "before_cursor_execute", self._watch)
        event.listen(self._engine, "commit", self._commit)
        event.listen(self._engine, "rollback", self._forget)

    def _watch(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self._write.match(statement):
            with self._lock:
                self._doomed.add(conn)

    def _commit(self, conn: Any) -> None:
        with self._lock:
            if conn not in self._doomed:
                return
            self._doomed.discard(conn)
            if self._skip:
                self._skip -= 1
                return
            if self.refused:
                return
            self.refused += 1
        raise OperationalError("COMMIT", {}, Exception("could not write to the database: disk full"))

    def _forget(self, conn: Any) -> None:
        with self._lock:
            self._doomed.discard(conn)

    def remove(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._watch)
        event.remove(self._engine, "commit", self._commit)
        event.remove(self._engine, "rollback", self._forget)


@pytest.mark.parametrize("syspro_rig", ["enet"], indirect=True)
@pytest.mark.parametrize(
    "table, skip, queued",
    [
        pytest.param("deliveries", 0, 0, id="first-page-of-the-outbox"),
        # Pages of two: the first page is two new invoices (the row that set the watermark is not re-read).
        pytest.param("deliveries", 1, 2, id="second-page-of-the-outbox"),
        pytest.param("watermarks", 0, 5, id="watermark-advance"),
    ],
)
def test_audit_database_refuses_a_commit(syspro_rig: SysproRig, table: str, skip: int, queued: int) -> None:
    rig = syspro_rig
    rig.cycle()
    _new_invoices(rig.sim)
    before = snapshot(rig.store, rig.slack, rig.watermarks())

    fault = RefuseCommit(rig.store, table, skip=skip)
    try:
        with pytest.raises(OperationalError, match="disk full"):
            rig.cycle()
    finally:
        fault.remove()
    assert fault.refused == 1

    # The refused transaction left nothing behind; what committed before it waits as pending.
    assert_kept_its_place(rig.store, rig.slack, before, rig.watermarks())
    assert len(rig.store.deliveries()) - len(before.rows) == queued
    wrote = audit_kinds(rig.store, before.audit_id)
    assert wrote["poll"] == 0 and wrote["alert_raised"] == 1

    again = rig.cycle()
    assert again.polls[0].new == 5 - queued
    rig.assert_caught_up()


# --- Slack ------------------------------------------------------------------------------------------

CHANNELS = ("#ap-invoices", "#purchasing", "#warehouse", "#gl-postings")


def seed(store: Store, per_channel: int, channels: Sequence[str] = CHANNELS, prefix: str = "INV") -> None:
    """``per_channel`` pending supplier-invoice notices in each channel."""
    items = [
        NewDelivery(record_key=f"0000001|{prefix}-{ch.strip('#')}-{i:03d}", version="v1", channel=ch,
                    status="pending", cursor=str(i),
                    fields={"supplier": "0000001", "invoice": f"{prefix}-{i:03d}", "supplier_name": "Bike Parts",
                            "amount": "100.00", "currency": "$"})
        for ch in channels for i in range(per_channel)
    ]
    store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=items)


def drain(store: Store, slack: SlackSimServer, *, token: str | None = None, gateway: SlackGateway | None = None,
          policy: SendPolicy = SendPolicy(), **settings: Any) -> DrainReport:
    settings.setdefault("reconcile_after", 0.5)
    gateway = gateway or SlackGateway(token or slack.token, base_url=slack.url, timeout=5)
    return Drainer(store, gateway, all_entities(), policy=policy,
                   settings=DrainSettings(time_scale=slack.sim.time_scale, **settings)).drain()


def post_calls(slack: SlackSimServer, channel: str | None = None) -> list[Any]:
    cid = slack.sim.channel_id(channel) if channel else None
    return [c for c in slack.sim.calls if c.method == "chat.postMessage" and cid in (None, c.channel)]


def test_429_storm_on_every_channel_waits_each_retry_after_and_delivers_once(store: Store, slack_sim) -> None:
    seed(store, 6)
    for ch in CHANNELS:
        slack_sim.sim.inject("chat.postMessage", retry_after=2, times=3, channel=ch)  # 2 s = 100 ms here

    report = drain(store, slack_sim, digest_threshold=1000)  # one message per record: six per lane

    assert report.halted is None
    assert_each_sent_once(store, slack_sim)
    wait = 2 / slack_sim.sim.time_scale
    waited = 0.0
    for ch in CHANNELS:
        calls = post_calls(slack_sim, ch)
        refused = [c for c in calls if c.injected]
        assert len(refused) == 3 and all(c.status == 429 for c in refused)
        for c in refused:
            nxt = next(d for d in calls if d.t > c.t)
            assert nxt.t - c.t >= wait * 0.95, f"{ch} resent {nxt.t - c.t:.3f} s after a 2 s Retry-After"
            waited += nxt.t - c.t
        assert report.lanes[ch].rate_limited >= 3
        # The refused batch was sent again as the same batch: its row counts every attempt.
        first = store.deliveries(channel=ch)[0]
        assert first["attempts"] >= 4
    # The lanes waited at the same time: their waits add up to more than the whole drain took.
    posts = post_calls(slack_sim)
    assert waited > posts[-1].t - posts[0].t
    assert len(store.audit_rows("rate_limited")) == report.rate_limited >= 12


@pytest.mark.parametrize(
    "fault, reconciled",
    [
        pytest.param(dict(status=503, times=2), 0, id="5xx-before-storing-twice"),
        pytest.param(dict(stored_then_failed=True), 1, id="stored-then-500"),
        pytest.param(dict(stored_then_failed=True, drop=True), 1, id="stored-then-connection-dropped"),
    ],
)
def test_ambiguous_failures_on_every_lane_are_reconciled_then_sent_once(
    store: Store, slack_sim, fault: dict[str, Any], reconciled: int
) -> None:
    seed(store, 12)  # deeper than the digest threshold: each lane sends one 12-record digest
    for ch in CHANNELS:
        slack_sim.sim.inject("chat.postMessage", channel=ch, **fault)

    report = drain(store, slack_sim)

    assert report.halted is None
    assert_each_sent_once(store, slack_sim)
    assert {len(_uids(m)) for m in erp_posts(slack_sim)} == {12}
    history = Counter(c.channel for c in slack_sim.sim.calls if c.method == "conversations.history")
    for ch in CHANNELS:
        tries = 1 + fault.get("times", 1) if not fault.get("stored_then_failed") else 1
        assert len(post_calls(slack_sim, ch)) == tries
        # Never resent without looking in the channel first.
        assert history[slack_sim.sim.channel_id(ch)] == tries - 1 + reconciled
        assert {r["attempts"] for r in store.deliveries(channel=ch)} == {tries}
    found = store.audit_rows("reconciled")
    assert len(found) == reconciled * len(CHANNELS)
    assert all(a["message"].endswith(": found in channel history") for a in found)


def test_5xx_storm_past_the_attempt_cap_defers_the_lane_and_a_later_drain_sends_once(store: Store, slack_sim) -> None:
    seed(store, 3, channels=["#ap-invoices", "#purchasing"])
    slack_sim.sim.inject("chat.postMessage", status=503, times=3, channel="#purchasing")
    policy = SendPolicy(max_attempts=3, defer_for=timedelta(0))

    first = drain(store, slack_sim, policy=policy)

    # Bounded: three posts of the same batch, each checked against history, then a give-up that
    # is audited and leaves every row of the lane pending; the other lane was not held up.
    assert len(post_calls(slack_sim, "#purchasing")) == 3
    (deferred,) = store.audit_rows("delivery_deferred")
    assert deferred["channel"] == "#purchasing" and deferred["message"] == "HTTP 503 after 3 attempts"
    rows = store.deliveries(channel="#purchasing")
    assert [r["status"] for r in rows] == ["pending"] * 3
    assert [r["attempts"] for r in rows] == [3, 0, 0]
    assert rows[0]["last_error"] == "HTTP 503 after 3 attempts"
    assert first.lanes["#ap-invoices"].records == 3 and first.lanes["#purchasing"].records == 0

    drain(store, slack_sim, policy=policy)
    assert_each_sent_once(store, slack_sim)


def test_stored_then_failed_while_history_is_down_is_reconciled_after_the_lease(store: Store, slack_sim) -> None:
    seed(store, 2, channels=["#ap-invoices"])
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True)
    slack_sim.sim.inject("conversations.history", status=503)

    drain(store, slack_sim)

    # Slack has the message but we could not check: the batch stays claimed, never resent blindly.
    (deferred,) = store.audit_rows("reconcile_deferred")
    assert deferred["message"].startswith("HTTP 500; history unavailable")
    assert [r["status"] for r in store.deliveries()] == ["sending", "pending"]
    batch = store.deliveries()[0]["batch_uid"]
    assert len(erp_posts(slack_sim)) == 1

    drain(store, slack_sim, lease=timedelta(0))  # a later drain, once the claim's lease ran out

    assert_each_sent_once(store, slack_sim)
    assert [a["message"] for a in store.audit_rows("reconciled")] == ["stale claim found in Slack"]
    assert [c.status for c in post_calls(slack_sim) if c.args["metadata"]["event_payload"]["batch"] == batch] == [500]


class RevokeAfter(SlackGateway):
    """A gateway whose token is revoked in Slack right after its ``n``-th successful post."""

    def __init__(self, slack: SlackSimServer, n: int) -> None:
        super().__init__(slack.token, base_url=slack.url, timeout=5)
        self._slack, self._n, self._posts = slack, n, 0
        self._lock = threading.Lock()

    def post(self, channel: str, message: Any, **kw: Any) -> Any:
        posted = super().post(channel, message, **kw)
        with self._lock:
            self._posts += 1
            if self._posts == self._n:
                self._slack.sim.revoke_token(self._slack.token)
        return posted


@pytest.mark.parametrize("when", ["before-the-drain", "mid-drain"])
def test_revoked_token_keeps_rows_pending_and_the_new_token_delivers_each_once(
    store: Store, slack_sim_factory, when: str
) -> None:
    slack_sim = slack_sim_factory(rate_limits=False)  # no 429 may hold a batch when the lanes halt
    seed(store, 4)
    if when == "before-the-drain":
        slack_sim.sim.revoke_token(slack_sim.token)
        report = drain(store, slack_sim, digest_threshold=1000)
    else:
        report = drain(store, slack_sim, digest_threshold=1000, gateway=RevokeAfter(slack_sim, 3))

    assert report.halted is not None and "token_revoked" in report.halted
    refusals = store.audit_rows("slack_auth_failed")
    assert refusals and all("token_revoked" in a["message"] for a in refusals)
    posted = {uid for m in erp_posts(slack_sim) for uid in _uids(m)}
    statuses = Counter(r["status"] for r in store.deliveries())
    # Whatever reached Slack is recorded as sent; everything else waits, none lost or failed.
    assert statuses == +Counter({"sent": len(posted), "pending": 16 - len(posted)})
    assert {r["uid"] for r in store.deliveries(status="sent")} == posted
    assert (len(posted) >= 3) == (when == "mid-drain")

    # The app is reinstalled and the block gets the new token: the rest goes out, nothing twice.
    slack_sim.sim.add_token("xoxb-reinstalled", bot_name="erp-bot")
    again = drain(store, slack_sim, token="xoxb-reinstalled", digest_threshold=1000)
    assert again.halted is None
    assert_each_sent_once(store, slack_sim)


def test_missing_channel_fails_its_rows_until_the_channel_exists_and_they_are_requeued(
    store: Store, slack_sim
) -> None:
    seed(store, 3, channels=["#ap-invoices", "#ap-europe"])  # #ap-europe does not exist yet

    drain(store, slack_sim)

    failed = store.deliveries(channel="#ap-europe")
    assert [(r["status"], r["last_error"]) for r in failed] == [("failed", "channel_not_found")] * 3
    audited = store.audit_rows("delivery_failed")
    assert sorted(a["record_key"] for a in audited) == sorted(r["record_key"] for r in failed)
    assert {a["message"] for a in audited} == {"channel_not_found"}
    assert {r["status"] for r in store.deliveries(channel="#ap-invoices")} == {"sent"}

    # Another drain neither retries nor drops them: they wait for a person.
    drain(store, slack_sim)
    assert store.deliveries(channel="#ap-europe") == failed
    assert len(store.audit_rows("delivery_failed")) == 3

    slack_sim.sim.add_channel("ap-europe")
    assert store.requeue(channel="#ap-europe") == 3
    drain(store, slack_sim)
    assert_each_sent_once(store, slack_sim)


def test_retry_after_beyond_the_cap_defers_the_batch_until_then(store: Store, slack_sim) -> None:
    seed(store, 1, channels=["#warehouse"])
    slack_sim.sim.inject("chat.postMessage", retry_after=900, channel="#warehouse")
    policy = SendPolicy(max_retry_after=300.0)

    drain(store, slack_sim, policy=policy)
    drain(store, slack_sim, policy=policy)  # too early: the row is not ready yet

    # Not held for 15 minutes and not dropped: given back with the time Slack named, and audited.
    (deferred,) = store.audit_rows("delivery_deferred")
    assert deferred["channel"] == "#warehouse"
    assert len(store.audit_rows("rate_limited")) == 1
    (row,) = store.deliveries()
    assert (row["status"], row["attempts"]) == ("pending", 1)
    not_before = row["next_attempt_at"]
    not_before = not_before if not_before.tzinfo else not_before.replace(tzinfo=timezone.utc)  # SQLite: naive UTC
    assert not_before > utcnow() + timedelta(seconds=800)
    assert len(post_calls(slack_sim)) == 1 and erp_posts(slack_sim) == []


# --- regressions: races that once posted a record twice ----------------------------------------


def test_drain_budget_running_out_before_reconciliation_never_reposts(store: Store, slack_sim: SlackSimServer) -> None:
    # The post is stored but its reply fails; the drain's time is up while it waits to look.
    seed(store, 1, channels=["#ap-invoices"])
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True)
    drain(store, slack_sim, reconcile_after=4, max_seconds=0.1)
    assert store.counts() == {"sending": 1}  # kept claimed: it may be in Slack
    drain(store, slack_sim, lease=timedelta(0))
    assert_each_sent_once(store, slack_sim)


def test_a_second_drainer_taking_over_during_a_long_retry_after_does_not_double_post(
    store: Store, slack_sim: SlackSimServer
) -> None:
    seed(store, 1, channels=["#ap-invoices"])
    slack_sim.sim.inject("chat.postMessage", retry_after=60)  # 3 s at the simulator's scale
    first = threading.Thread(target=drain, args=(store, slack_sim))
    first.start()
    deadline = time.monotonic() + 10
    while not any(c.status == 429 for c in post_calls(slack_sim)) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The first drainer is waiting out Retry-After; its claim is older than this drainer's
    # lease, so it takes the batch over and posts it while the first one still waits.
    time.sleep(0.6)
    drain(store, slack_sim, lease=timedelta(seconds=0.5))
    first.join()
    assert_each_sent_once(store, slack_sim)
    assert audit_kinds(store)["claim_lost"] == 1


def test_requeue_to_a_corrected_channel(store: Store, slack_sim: SlackSimServer) -> None:
    seed(store, 2, channels=["#ap-invoice"])  # a route with a typo
    drain(store, slack_sim)
    assert store.counts() == {"failed": 2}
    assert store.requeue(status="failed", channel="#ap-invoice", to="#ap-invoices") == 2
    drain(store, slack_sim)
    assert_each_sent_once(store, slack_sim)
    assert {m["channel_name"] for m in erp_posts(slack_sim)} == {"ap-invoices"}
