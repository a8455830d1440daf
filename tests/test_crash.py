"""Crash suite: SIGKILL the pipeline at many points and prove nothing is lost or posted twice.

The pipeline runs in a child process (``tests/crash_child.py``: one poll cycle, then drain the
outbox) against the SYSPRO e.net or Dynamics GP simulator and the Slack simulator, all served on
loopback *in this process*. Each simulator is wrapped in a ``KillSwitch`` that counts the
requests matching an armed kill point and, at the n-th one, SIGKILLs the child either

* **before** the simulator sees the request (the child dies with the request in flight), or
* **after** the simulator handled it (for ``chat.postMessage``: after Slack *stored* the message)
  but before a byte of the reply is written, which is exactly "between a Slack post and
  recording its ts".

Then a fresh child starts (each run can carry its own kill point, so a crash can hit the
recovery of the previous crash), until a child exits 0, at most ``MAX_RUNS`` times. The final
state must equal a clean reference run against a fresh copy of the same seed:

* every delivery row ends as in the reference (``sent``; nothing ``pending``/``sending``);
* the delivered (entity, record key, version, event, channel) set is the reference's;
* every delivery uid is in exactly one Slack message's metadata, in the row's channel, and the
  row's recorded ``slack_ts`` is that message (nothing lost, nothing posted twice);
* no Slack message is unaccounted for;
* watermarks never move backwards between runs and end where the reference's end.

Random-time kills are seeded; the seed is printed (``CRASH_SEED`` overrides it). Timing is
never asserted: a random kill that lands after the child finished simply does not fire.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import parse_qsl

import pytest

from erp_slack.model import cursor_from_text
from erp_slack.slack.render import ARCHIVE_EVENT
from erp_slack.store import Store
from simulators._http import Request, Response, serve_on_loopback
from simulators.gp import GpSimulator
from simulators.slack import SlackSimulator
from simulators.syspro import SysproSimulator

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("crash_child.py")
MAX_RUNS = 10  # children per scenario before the suite gives up on recovery
CHILD_TIMEOUT = 90.0  # seconds; a hung child is a failure, not a wait
EXIT_INCOMPLETE = 3  # crash_child: the run ended with rows still pending or sending

# Small pages and small digests, so kills land mid-paging and mid-digest.
SYSPRO_PAGE = 3  # COMFND ReturnRows
GP_PAGE = 3  # the GP simulator's list page size
EXTRA_RECORDS = 20  # invoices added on top of each seed
DIGEST_THRESHOLD = 3
DIGEST_MAX = 4
TIME_SCALE = 1000.0  # the drainer's pacing runs this much faster; Slack's limits are off

SEED = int(os.environ.get("CRASH_SEED", "20240531"))
_GP_NOW = datetime(2024, 4, 2, 9, 0, tzinfo=timezone.utc)  # pinned: GP stamps are then the same every run


# --- simulators -------------------------------------------------------------------------------


def _syspro() -> SysproSimulator:
    sim = SysproSimulator()
    suppliers = ("0000001", "0000002", "0000004", "0000005")
    for i in range(EXTRA_RECORDS):
        sim.insert_invoice(supplier=suppliers[i % len(suppliers)], amount=f"{100 + 7 * i}.25",
                           reference=f"crash {i}")
    return sim


def _gp() -> GpSimulator:
    sim = GpSimulator(clock=lambda: _GP_NOW, page_size=GP_PAGE)
    vendors = ("ADVANCED0001", "CENTRALC0001", "ACETRAVE0001", "SMITHSON0001")
    for i in range(EXTRA_RECORDS):
        sim.add_invoice(vendors[i % len(vendors)], f"CR-{i:03d}", f"{200 + 11 * i}.50", posted=True)
    return sim


# --- kill points ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Which requests a kill point counts; ``test`` sees the reply only for ``after`` kills."""

    name: str
    app: str  # "erp" or "slack"
    test: Callable[[Request, Response | None], bool]


def _enet(endpoint: str) -> Match:
    return Match(f"enet {endpoint}", "erp", lambda req, resp: req.path.endswith("/" + endpoint))


def _slack(method: str) -> Match:
    return Match(method, "slack", lambda req, resp: req.path.endswith("/" + method))


def _gp_get(req: Request, resp: Response | None) -> bool:
    return req.method == "GET" and req.path.startswith("/GPService/")


def _gp_data(req: Request, resp: Response | None) -> bool:
    # A page of rows, not an NTLM handshake leg: only meaningful once the reply exists.
    return _gp_get(req, resp) and resp is not None and resp.status == 200


def _gp_soap(req: Request, resp: Response | None) -> bool:
    return req.method == "POST" and req.path.endswith("/DynamicsGPService.asmx")


def _gp_soap_data(req: Request, resp: Response | None) -> bool:
    return _gp_soap(req, resp) and resp is not None and resp.status == 200


def _slack_ok(resp: Response | None) -> bool:
    if resp is None:
        return True
    if resp.status != 200:
        return False
    try:
        return bool(json.loads(resp.body).get("ok"))
    except ValueError:
        return False


def _args(req: Request) -> dict[str, Any]:
    if "json" in req.headers.get("content-type", ""):
        return json.loads(req.body or b"{}")
    return dict(parse_qsl(req.body.decode("utf-8")))


def _post_records(req: Request) -> int:
    """How many delivery uids a chat.postMessage request carries in its metadata."""
    meta = _args(req).get("metadata") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    return len((meta.get("event_payload") or {}).get("deliveries") or [])


def _posts(kind: str) -> Match:
    """chat.postMessage requests: ``any``, ``digest`` (several records) or ``single``; an
    ``after`` kill counts only posts Slack stored."""

    def test(req: Request, resp: Response | None) -> bool:
        if not req.path.endswith("/chat.postMessage") or not _slack_ok(resp):
            return False
        n = _post_records(req)
        return kind == "any" or (kind == "digest" and n > 1) or (kind == "single" and n == 1)

    return Match(f"chat.postMessage ({kind})", "slack", test)


COMFND = _enet("Query/Query")
LOGON = _enet("Logon")
LOGOFF = _enet("Logoff")
GP_GET = Match("GP GET", "erp", _gp_get)
GP_DATA = Match("GP GET 200", "erp", _gp_data)
GP_SOAP = Match("GP SOAP", "erp", _gp_soap)
GP_SOAP_DATA = Match("GP SOAP 200", "erp", _gp_soap_data)
AUTH_TEST = _slack("auth.test")
CHANNELS = _slack("conversations.list")
HISTORY = _slack("conversations.history")
POST = _posts("any")
DIGEST = _posts("digest")
SINGLE = _posts("single")
EDIT = _slack("chat.update")
THREAD = _slack("conversations.replies")
PARENT = Match("chat.postMessage (archive parent)", "slack", lambda req, resp: (
    req.path.endswith("/chat.postMessage") and _slack_ok(resp)
    and ARCHIVE_EVENT in json.dumps(_args(req).get("metadata") or "")))
REPLY = Match("chat.postMessage (reply)", "slack", lambda req, resp: (
    req.path.endswith("/chat.postMessage") and _slack_ok(resp) and bool(_args(req).get("thread_ts"))))
MATCHES = (COMFND, LOGON, LOGOFF, GP_GET, GP_DATA, GP_SOAP, GP_SOAP_DATA, AUTH_TEST, CHANNELS, HISTORY, POST, DIGEST, SINGLE,
           EDIT, THREAD, REPLY, PARENT)


@dataclass(frozen=True)
class Kill:
    """SIGKILL the child at the ``n``-th request ``match`` counts, before or after the simulator
    handles it."""

    match: Match
    n: int
    after: bool

    @property
    def label(self) -> str:
        return f"{'after' if self.after else 'before'} {self.match.name} #{self.n}"


@dataclass(frozen=True)
class TimedKill:
    """SIGKILL the child at a seeded random time: ``fraction`` of most of a clean run, from ``ready``."""

    fraction: float

    @property
    def label(self) -> str:
        return f"random {self.fraction:.3f}"


Point = Kill | TimedKill


def before(match: Match, n: int) -> Kill:
    return Kill(match, n, after=False)


def after(match: Match, n: int) -> Kill:
    return Kill(match, n, after=True)


def _delivery_points() -> list[tuple[str, tuple[Point, ...]]]:
    """Kill points in delivery and reconciliation; the same for both sources."""
    return [
        ("enqueued-before-auth.test", (before(AUTH_TEST, 1),)),
        ("before-conversations.list", (before(CHANNELS, 1),)),
        ("post-1-in-flight", (before(POST, 1),)),
        ("post-1-stored-ts-lost", (after(POST, 1),)),
        ("post-3-stored-ts-lost", (after(POST, 3),)),
        ("post-8-stored-ts-lost", (after(POST, 8),)),
        ("post-14-stored-ts-lost", (after(POST, 14),)),
        ("single-2-stored-ts-lost", (after(SINGLE, 2),)),
        ("digest-2-in-flight", (before(DIGEST, 2),)),
        ("digest-1-stored-ts-lost", (after(DIGEST, 1),)),
        ("digest-3-stored-ts-lost", (after(DIGEST, 3),)),
        # Two crashes in a row: the second one hits the recovery of the first.
        ("post-2-then-history-in-flight", (after(POST, 2), before(HISTORY, 1))),
        ("post-2-then-history-found-not-recorded", (after(POST, 2), after(HISTORY, 1))),
        ("digest-1-then-history-found-not-recorded", (after(DIGEST, 1), after(HISTORY, 1))),
        ("post-2-unsent-then-history-1-answered", (before(POST, 2), after(HISTORY, 1))),
        ("post-5-then-repost-1", (after(POST, 5), after(POST, 1))),
        ("three-crashes", (after(DIGEST, 2), after(HISTORY, 1), after(POST, 1))),
    ]


def _random_points(rng: random.Random, scenarios: int = 4, kills: int = 3) -> list[tuple[str, tuple[Point, ...]]]:
    """Scenarios of ``kills`` random-time kills each, one per run (a later one may hit recovery)."""
    out = []
    for i in range(scenarios):
        points = tuple(TimedKill(round(rng.random(), 3)) for _ in range(kills))
        out.append((f"random-{i + 1}", points))
    return out


def _scenarios() -> list[Any]:
    rng = random.Random(SEED)
    syspro: list[tuple[str, tuple[Point, ...]]] = [
        ("before-logon", (before(LOGON, 1),)),
        ("logon-answered-session-orphaned", (after(LOGON, 1),)),
        ("comfnd-1-in-flight", (before(COMFND, 1),)),
        ("comfnd-2-in-flight", (before(COMFND, 2),)),
        ("comfnd-4-in-flight", (before(COMFND, 4),)),
        ("comfnd-7-answered-not-read", (after(COMFND, 7),)),
        ("comfnd-11-in-flight", (before(COMFND, 11),)),
        ("comfnd-16-in-flight", (before(COMFND, 16),)),
        ("comfnd-23-answered-not-read", (after(COMFND, 23),)),
        ("comfnd-27-in-flight", (before(COMFND, 27),)),
        ("comfnd-last-in-flight", (before(COMFND, -1),)),
        ("polled-before-logoff", (before(LOGOFF, 1),)),
        ("comfnd-9-then-comfnd-20", (before(COMFND, 9), before(COMFND, 20))),
        *_delivery_points(),
        *_random_points(rng),
    ]
    gp: list[tuple[str, tuple[Point, ...]]] = [
        ("ntlm-negotiate-in-flight", (before(GP_GET, 1),)),
        ("ntlm-challenge-answered-not-read", (after(GP_GET, 1),)),
        ("ntlm-authenticate-in-flight", (before(GP_GET, 2),)),
        ("get-3-in-flight", (before(GP_GET, 3),)),
        ("page-2-answered-not-read", (after(GP_DATA, 2),)),
        ("get-5-in-flight", (before(GP_GET, 5),)),
        ("page-6-answered-not-read", (after(GP_DATA, 6),)),
        ("get-9-in-flight", (before(GP_GET, 9),)),
        ("get-12-in-flight", (before(GP_GET, 12),)),
        ("page-14-answered-not-read", (after(GP_DATA, 14),)),
        ("get-last-in-flight", (before(GP_GET, -1),)),
        ("get-4-then-get-10", (before(GP_GET, 4), before(GP_GET, 10))),
        *_delivery_points(),
        *_random_points(rng),
    ]
    # GP over Web Services: the company lookup, list calls and by-key calls, killed in flight or
    # answered and not yet read (the delivery side is the same code, covered above).
    gp_ws: list[tuple[str, tuple[Point, ...]]] = [
        ("company-lookup-in-flight", (before(GP_SOAP, 1),)),
        ("list-answered-not-read", (after(GP_SOAP_DATA, 2),)),
        ("by-key-4-in-flight", (before(GP_SOAP, 4),)),
        ("by-key-9-answered-not-read", (after(GP_SOAP_DATA, 9),)),
        ("call-last-in-flight", (before(GP_SOAP, -1),)),
        ("call-3-then-call-12", (before(GP_SOAP, 3), before(GP_SOAP, 12))),
    ]
    return [pytest.param(src, pts, id=f"{src}-{name}")
            for src, table in (("syspro", syspro), ("gp", gp), ("gp-ws", gp_ws)) for name, pts in table]


# --- the child process ------------------------------------------------------------------------


class _Child:
    """One child process; killed through a pidfd, so a signal can never reach a recycled pid."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], stderr_path: Path) -> None:
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.PIPE, stderr=self._stderr)
        self._pidfd = os.pidfd_open(self.proc.pid) if hasattr(os, "pidfd_open") else None

    def kill(self) -> None:
        """SIGKILL and return once the process is dead (not yet reaped), so no reply can reach it."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            select.select([self._pidfd], [], [], 10.0)  # readable once the process has exited
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
            threading.Event().wait(0.001)

    def wait_ready(self) -> bool:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip() == b"ready"

    def wait(self) -> int:
        try:
            rc = self.proc.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            pytest.fail(f"child {self.proc.pid} hung for {CHILD_TIMEOUT} s:\n{self.stderr()}")
        return rc

    def stderr(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class KillSwitch:
    """A simulator app wrapped so the parent can SIGKILL the child at an exact request.

    ``arm`` a ``Kill`` before the child starts and ``attach`` the child once it runs; every
    request is also tallied per ``Match`` (the reference run's tallies size the kill points).
    """

    def __init__(self, name: str, app: Any) -> None:
        self.name, self.app = name, app
        self.tally: Counter[str] = Counter()
        self.fired: list[str] = []
        self._lock = threading.Lock()
        self._kill: Kill | None = None
        self._seen = 0
        self._child: _Child | None = None
        self._attached = threading.Event()
        self._threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def arm(self, kill: Kill | None) -> None:
        with self._lock:
            self._kill = kill if kill is not None and kill.match.app == self.name else None
            self._seen = 0
            self._child = None
            self._attached.clear()

    def attach(self, child: _Child) -> None:
        self._child = child
        self._attached.set()

    def disarm(self) -> None:
        with self._lock:
            self._kill = None

    def handle(self, request: Request) -> Response:
        self._threads.add(threading.current_thread())
        kill = self._kill
        if kill is not None and not kill.after and self._hit(kill, request, None):
            return self._fire(kill)
        response = self.app.handle(request)
        with self._lock:
            self.tally.update(m.name for m in MATCHES if m.app == self.name and m.test(request, response))
        if kill is not None and kill.after and self._hit(kill, request, response):
            return self._fire(kill)
        return response

    def _hit(self, kill: Kill, request: Request, response: Response | None) -> bool:
        with self._lock:
            if self._kill is not kill or not kill.match.test(request, response):
                return False
            self._seen += 1
            if self._seen != kill.n:
                return False
            self._kill = None  # one kill per run
            return True

    def _fire(self, kill: Kill) -> Response:
        if not self._attached.wait(30.0):
            raise RuntimeError("a kill point was reached before the parent knew the child")
        assert self._child is not None
        self.fired.append(kill.label)  # before the kill: the parent reads it as soon as the child is dead
        self._child.kill()
        # Close the connection without answering; the child is already dead either way.
        return Response(drop=True)

    def quiesce(self) -> None:
        """Wait until the dead child's connections are closed and their requests handled, so a
        request it had already sent cannot land while the next child reconciles."""
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join(timeout=10.0)
                if t.is_alive():
                    raise RuntimeError(f"{self.name} simulator thread {t.name} still busy after the child died")


# --- one scenario -----------------------------------------------------------------------------


@dataclass
class Run:
    """One child: what was armed, how it ended (``-SIGKILL`` when killed), which kills fired."""

    point: Point | None
    rc: int
    fired: list[str]
    seconds: float  # from "ready" to exit
    stderr: str
    delay: float | None = None  # a random kill's delay after "ready"

    def describe(self) -> str:
        armed = "clean" if self.point is None else self.point.label
        if self.delay is not None:
            armed += f" (+{self.delay * 1000:.0f} ms)"
        return f"{armed} → {'killed' if self.rc == -signal.SIGKILL else f'exit {self.rc}'}"


@dataclass
class Rig:
    """Fresh simulators (wrapped in kill switches) served on loopback, and an empty audit store."""

    source: str
    erp: Any
    slack: SlackSimulator
    erp_switch: KillSwitch
    slack_switch: KillSwitch
    erp_url: str
    slack_url: str
    db_path: Path
    workdir: Path
    extra: tuple[str, ...] = ()  # more crash_child arguments
    runs: list[Run] = field(default_factory=list)
    watermarks: list[dict[tuple[str, str, str], tuple[str, Any]]] = field(default_factory=list)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        cmd = [sys.executable, str(CHILD), "--source", self.source, "--db", self.db_url,
               "--slack-url", self.slack_url, "--time-scale", str(TIME_SCALE),
               "--digest-threshold", str(DIGEST_THRESHOLD), "--digest-max", str(DIGEST_MAX), *self.extra]
        env = dict(os.environ, CRASH_SLACK_TOKEN=self.slack.token)
        if self.source == "syspro":
            cmd += ["--erp-url", self.erp_url, "--erp-user", "ENET01", "--company", "EDU1",
                    "--page-size", str(SYSPRO_PAGE)]
            env["CRASH_ERP_PASSWORD"] = "secret"
        elif self.source == "gp-ws":
            cmd += ["--erp-url", self.erp_url + "/DynamicsGPWebServices", "--erp-user", self.erp.username,
                    "--company", self.erp.company]
            env["CRASH_ERP_PASSWORD"] = self.erp.password
        else:
            cmd += ["--erp-url", self.erp_url + "/GPService", "--erp-user", self.erp.username,
                    "--company", self.erp.company, "--tenant", self.erp.tenant]
            env["CRASH_ERP_PASSWORD"] = self.erp.password
        return cmd, env

    def run_child(self, point: Point | None, clean_seconds: float) -> Run:
        """Start one child with ``point`` armed and wait for it to exit or die."""
        for switch in (self.erp_switch, self.slack_switch):
            switch.arm(point if isinstance(point, Kill) else None)
        cmd, env = self.command()
        child = _Child(cmd, env, self.workdir / f"child-{len(self.runs)}.stderr")
        timer: threading.Timer | None = None
        delay: float | None = None
        try:
            for switch in (self.erp_switch, self.slack_switch):
                switch.attach(child)
            ready = child.wait_ready()
            started = time.monotonic()
            if isinstance(point, TimedKill) and ready:
                # 50-800 ms, scaled to (most of) the clean run so random kills land inside a run.
                delay = min(0.8, max(0.05, point.fraction * 0.85 * clean_seconds))
                timer = threading.Timer(delay, child.kill)
                timer.start()
            rc = child.wait()
            seconds = time.monotonic() - started
            if timer is not None:
                timer.cancel()
                timer.join()
            for switch in (self.erp_switch, self.slack_switch):
                switch.disarm()
                switch.quiesce()
            fired = self.erp_switch.fired[:] + self.slack_switch.fired[:]
            if isinstance(point, TimedKill) and rc == -signal.SIGKILL:
                fired.append(point.label)
            self.erp_switch.fired.clear()
            self.slack_switch.fired.clear()
            run = Run(point, rc, fired, seconds, child.stderr(), delay)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
            child.close()
        self.runs.append(run)
        self.watermarks.append(_watermarks(self.db_path))
        return run

    def recover(self, points: Sequence[Point], clean_seconds: float) -> Run:
        """Run children, the i-th with ``points[i]`` armed, until one completes."""
        for i in range(MAX_RUNS):
            run = self.run_child(points[i] if i < len(points) else None, clean_seconds)
            if run.rc == 0:
                return run
            if run.rc == -signal.SIGKILL and run.fired:
                continue
            if run.rc == EXIT_INCOMPLETE:
                continue
            pytest.fail(f"child run {i + 1} ({run.point and run.point.label}) exited {run.rc}:\n{run.stderr}")
        pytest.fail(f"no complete run after {MAX_RUNS} children: {[r.rc for r in self.runs]}\n{self.runs[-1].stderr}")


@contextlib.contextmanager
def _rig(source: str, workdir: Path) -> Iterator[Rig]:
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if source == "syspro":
            erp: Any = _syspro()
        else:
            erp = stack.enter_context(_gp())
        slack = SlackSimulator(rate_limits=False, time_scale=TIME_SCALE)
        erp_switch, slack_switch = KillSwitch("erp", erp), KillSwitch("slack", slack)
        erp_served = stack.enter_context(serve_on_loopback(erp_switch))
        slack_served = stack.enter_context(serve_on_loopback(slack_switch))
        if source != "syspro":
            erp.url = erp_served.url  # GP's next links are absolute
        db_path = workdir / "audit.db"
        Store(f"sqlite:///{db_path}").dispose()  # the schema exists before any child can die in a migration
        yield Rig(source, erp, slack, erp_switch, slack_switch, erp_served.url, slack_served.url + "/api/",
                  db_path, workdir)


# --- reading the outcome ----------------------------------------------------------------------


def _query(db_path: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db_path)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _watermarks(db_path: Path) -> dict[tuple[str, str, str], tuple[str, Any]]:
    return {
        (r["source"], r["company"], r["entity"]): (r["kind"], cursor_from_text(r["kind"], r["value"]))
        for r in _query(db_path, "SELECT source, company, entity, kind, value FROM watermarks")
    }


def _deliveries(db_path: Path) -> list[dict[str, Any]]:
    return [dict(r) for r in _query(
        db_path,
        "SELECT uid, entity, record_key, version, event, channel, status, slack_ts, batch_uid "
        "FROM deliveries WHERE dry_run = 0 ORDER BY id",
    )]


def _delivered_set(rows: Sequence[dict[str, Any]]) -> set[tuple[str, str, str, str, str]]:
    return {(r["entity"], r["record_key"], r["version"], r["event"], r["channel"])
            for r in rows if r["status"] == "sent"}


def _assert_each_sent_row_posted_once(
    rows: Sequence[dict[str, Any]], slack: SlackSimulator
) -> set[tuple[str, str, str, str, str]]:
    """Slack's side of "exactly once": each sent row's uid is in one message, the one its ts names.

    Returns what Slack shows as (entity, record key, version, event, channel).
    """
    sent = {r["uid"]: r for r in rows if r["status"] == "sent"}
    # An archive parent carries no deliveries (its thread does): checked by the archive tests.
    messages = [m for m in slack.posted() if (m["metadata"] or {}).get("event_type") != ARCHIVE_EVENT]
    carried: Counter[str] = Counter()
    for m in messages:
        meta = m["metadata"] or {}
        assert meta.get("event_type") == "erp_notification_posted", f"message without delivery metadata: {m['text']!r}"
        uids = (meta.get("event_payload") or {}).get("deliveries") or []
        assert uids, f"message {m['ts']} names no deliveries"
        carried.update(uids)
    unknown = sorted(u for u in carried if u not in sent)
    assert not unknown, f"Slack carries deliveries that are not sent rows: {unknown}"
    twice = sorted((sent[u]["entity"], sent[u]["record_key"], n) for u, n in carried.items() if n > 1)
    assert not twice, f"posted more than once (entity, key, times): {twice}"
    lost = sorted((r["entity"], r["record_key"]) for u, r in sent.items() if u not in carried)
    assert not lost, f"marked sent but in no Slack message: {lost}"
    for m in messages:
        payload = m["metadata"]["event_payload"]
        for uid in payload["deliveries"]:
            row = sent[uid]
            where = f"{uid} ({row['entity']} {row['record_key']})"
            assert "#" + m["channel_name"] == row["channel"], f"{where} posted in #{m['channel_name']}"
            assert row["slack_ts"] == m["ts"], f"{where} recorded ts {row['slack_ts']}, posted as {m['ts']}"
            assert row["batch_uid"] == payload.get("batch"), f"{where} recorded another batch than it was posted in"
    return {(r["entity"], r["record_key"], r["version"], r["event"], r["channel"]) for r in sent.values()}


@dataclass(frozen=True)
class Reference:
    """What a clean single run of one source produces."""

    delivered: frozenset[tuple[str, str, str, str, str]]
    statuses: Counter[str]
    watermarks: dict[tuple[str, str, str], tuple[str, Any]]
    tally: Counter[str]
    seconds: float


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Reference]:
    """A clean run per source against a fresh copy of its seed (made once per module)."""
    made: dict[str, Reference] = {}

    def get(source: str) -> Reference:
        if source not in made:
            with _rig(source, tmp_path_factory.mktemp(f"reference-{source}")) as rig:
                run = rig.recover((), clean_seconds=1.0)
                assert len(rig.runs) == 1, "the clean reference run did not complete in one child"
                rows = _deliveries(rig.db_path)
                assert rows and all(r["status"] == "sent" for r in rows), Counter(r["status"] for r in rows)
                _assert_each_sent_row_posted_once(rows, rig.slack)
                made[source] = Reference(
                    delivered=frozenset(_delivered_set(rows)),
                    statuses=Counter(r["status"] for r in rows),
                    watermarks=rig.watermarks[-1],
                    tally=rig.erp_switch.tally + rig.slack_switch.tally,
                    seconds=run.seconds,
                )
                print(f"\ncrash suite seed {SEED} (CRASH_SEED repeats it); reference {source}: {len(rows)} rows, "
                      f"{len(rig.slack.posted())} messages, {run.seconds:.2f} s after start-up; "
                      f"requests {dict(made[source].tally)}")
        return made[source]

    return get


def _resolve(points: Sequence[Point], ref: Reference) -> tuple[Point, ...]:
    """The first run repeats the clean run until its kill, so its count must be one the clean
    run reaches (-1 means the last); later runs recover, and their kills are checked by firing."""
    out: list[Point] = []
    for i, p in enumerate(points):
        if isinstance(p, Kill) and i == 0:
            total = ref.tally[p.match.name]
            n = total if p.n == -1 else p.n
            assert 1 <= n <= total, f"kill point {p.label}: the clean run makes only {total} such requests"
            p = Kill(p.match, n, p.after)
        assert not isinstance(p, Kill) or p.n >= 1, f"{p.label}: only the first run's count can be relative"
        out.append(p)
    return tuple(out)


# --- the test ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "points"), _scenarios())
def test_sigkill_then_restart_loses_and_repeats_nothing(
    source: str, points: tuple[Point, ...], references: Callable[[str], Reference], tmp_path: Path
) -> None:
    ref = references(source)
    points = _resolve(points, ref)
    with _rig(source, tmp_path) as rig:
        rig.recover(points, ref.seconds)

        # Every deterministic kill point was reached, in the run it was armed for.
        for i, p in enumerate(points):
            if isinstance(p, Kill):
                assert i < len(rig.runs) and rig.runs[i].fired == [p.label], (
                    f"run {i + 1} should have been killed {p.label}; runs: {[(r.rc, r.fired) for r in rig.runs]}"
                )
        kills = sum(1 for r in rig.runs if r.rc == -signal.SIGKILL)
        print(f"\n{source}: {kills} kill(s) survived; " + "; ".join(r.describe() for r in rig.runs))

        # Watermarks only ever move forward, and end where a clean run leaves them.
        for earlier, later in zip(rig.watermarks, rig.watermarks[1:]):
            for key, (kind, value) in earlier.items():
                assert key in later, f"watermark {key} disappeared"
                assert later[key][0] == kind and later[key][1] >= value, (
                    f"watermark {key} moved back: {value} → {later[key][1]}"
                )
        assert rig.watermarks[-1] == ref.watermarks, "watermarks end elsewhere than after a clean run"

        # The outbox: the same record versions as a clean run, all sent (nothing pending or sending).
        rows = _deliveries(rig.db_path)
        stuck = sorted((r["entity"], r["record_key"], r["status"]) for r in rows if r["status"] != "sent")
        assert not stuck, f"rows not sent after recovery: {stuck}"
        delivered = _delivered_set(rows)
        assert not sorted(ref.delivered - delivered), f"lost: {sorted(ref.delivered - delivered)}"
        assert not sorted(delivered - ref.delivered), f"not in a clean run: {sorted(delivered - ref.delivered)}"
        assert Counter(r["status"] for r in rows) == ref.statuses

        # Slack: each delivery exactly once, in the message its row names.
        assert _assert_each_sent_row_posted_once(rows, rig.slack) == ref.delivered


# --- living messages ------------------------------------------------------------------------------

# Kill points around a document's living message: the edit in flight or made and not recorded,
# the thread reply in flight or stored with its answer lost, and a second kill in the recovery.
_LIVING = [
    ("edit-1-in-flight", (before(EDIT, 1),)),
    ("edit-1-made-not-recorded", (after(EDIT, 1),)),
    ("edit-2-made-not-recorded", (after(EDIT, 2),)),
    ("reply-1-in-flight", (before(REPLY, 1),)),
    ("reply-1-stored-ts-lost", (after(REPLY, 1),)),
    ("reply-3-stored-ts-lost", (after(REPLY, 3),)),
    ("reply-2-stored-then-thread-read-not-recorded", (after(REPLY, 2), after(THREAD, 1))),
    ("edit-1-made-then-reply-1-stored", (after(EDIT, 1), after(REPLY, 1))),
    *_random_points(random.Random(SEED + 1), scenarios=2, kills=2),
]


def _move_orders(gp: GpSimulator) -> dict[str, tuple[str, str]]:
    """Move three posted orders on; returns the state each message showed and must show now."""
    gp.set_po_status("PO2109", "Released")
    gp.receive_po("PO2109")  # the poll sees where it ended: New → Received
    gp.receive_po("PO2107")
    gp.set_po_status("PO3000", "Released")
    return {"PO2109": ("New", "Received"), "PO2107": ("Released", "Received"), "PO3000": ("New", "Released")}


@pytest.mark.parametrize("points", [pytest.param(pts, id=name) for name, pts in _LIVING])
def test_sigkill_around_a_living_message_edit_neither_loses_nor_repeats_the_edit_or_the_reply(
    points: tuple[Point, ...], tmp_path: Path
) -> None:
    """Orders posted on a first run move on in GP; the run that edits their messages and replies
    in their threads is killed at each point, then restarted until it completes."""
    with _rig("gp", tmp_path) as rig:
        rig.recover((), clean_seconds=1.0)  # the first run posts every order: their living messages
        rig.erp.add_po("ADVANCED0001", [("100XLG", "Green Phone", 5, "119.00")], po_number="PO3000")
        rig.recover((), clean_seconds=1.0)
        first = {m["ts"]: m for m in rig.slack.posted("#purchasing")}
        states = _move_orders(rig.erp)
        start = len(rig.runs)
        rig.recover(points, clean_seconds=1.0)

        for i, p in enumerate(points):
            if isinstance(p, Kill):
                assert rig.runs[start + i].fired == [p.label], [(r.rc, r.fired) for r in rig.runs]
        rows = _deliveries(rig.db_path)
        assert [r for r in rows if r["status"] != "sent"] == []
        _assert_each_sent_row_posted_once(rows, rig.slack)  # each change replied exactly once

        posted = rig.slack.posted("#purchasing")
        assert [m["ts"] for m in posted if m.get("thread_ts") in (None, m["ts"])] == list(first)  # no new message
        for po, (before_state, final) in states.items():
            (message,) = [m for m in posted if m["ts"] in first and f"Purchase order {po}" in json.dumps(m["blocks"])]
            changes = [r for r in rows if r["record_key"] == po and r["event"] != "created"]
            thread = [m for m in posted if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]]
            assert len(thread) == len(changes) >= 1
            # The message shows the final state (the edit is not lost) and went there straight: an
            # edit made again after a kill shows the same content, never an older state.
            shown = [_status_of(e["blocks"]) for e in message["edits"]] + [_status_of(message["blocks"])]
            assert [s for i, s in enumerate(shown) if i == 0 or s != shown[i - 1]] == [before_state, final], shown
        print(f"\nliving: {sum(1 for r in rig.runs if r.rc == -signal.SIGKILL)} kill(s) survived; "
              + "; ".join(r.describe() for r in rig.runs[start:]))


def _status_of(blocks: Sequence[dict[str, Any]]) -> str:
    for block in blocks:
        for f in block.get("fields") or []:
            if f["text"].startswith("*Status*\n"):
                return f["text"].split("\n", 1)[1]
    return ""


# --- archive threads -------------------------------------------------------------------------------

# Kill points around a period's archive parent: its post in flight or stored with the answer lost
# (found again in the channel's history, never posted twice), its refresh edit made and not
# recorded, a reply in its thread stored with the answer lost, and kills in the recovery.
_ARCHIVE = [
    ("parent-in-flight", (before(PARENT, 1),)),
    ("parent-stored-ts-lost", (after(PARENT, 1),)),
    ("parent-stored-then-history-read-not-recorded", (after(PARENT, 1), after(HISTORY, 1))),
    ("parent-refresh-made-not-recorded", (after(EDIT, 1),)),
    ("reply-1-stored-ts-lost", (after(REPLY, 1),)),
    ("reply-1-in-flight", (before(REPLY, 1),)),
    ("parent-stored-ts-lost-then-reply-stored-ts-lost", (after(PARENT, 1), after(REPLY, 1))),
    *_random_points(random.Random(SEED + 2), scenarios=2, kills=2),
]


@pytest.mark.parametrize("points", [pytest.param(pts, id=name) for name, pts in _ARCHIVE])
def test_sigkill_around_an_archive_thread_leaves_one_parent_per_period_totalling_its_replies(
    points: tuple[Point, ...], tmp_path: Path
) -> None:
    """SYSPRO's GL entries are routed to their month's archive thread; the first run is killed at
    each point, then restarted until it completes."""
    with _rig("syspro", tmp_path) as rig:
        rig.extra = ("--archive",)
        rig.recover(points, clean_seconds=1.0)
        for i, p in enumerate(points):
            if isinstance(p, Kill):
                assert rig.runs[i].fired == [p.label], [(r.rc, r.fired) for r in rig.runs]
        rows = _deliveries(rig.db_path)
        assert [r for r in rows if r["status"] != "sent"] == []
        _assert_each_sent_row_posted_once(rows, rig.slack)

        posted = rig.slack.posted("#gl-postings")
        parents = [m for m in posted if m["metadata"]["event_type"] == ARCHIVE_EVENT]
        titles = [m["blocks"][0]["text"]["text"] for m in parents]
        assert titles and len(titles) == len(set(titles)), titles  # one parent per period, never two
        by_ts = {m["ts"]: m for m in posted}
        archived = [r for r in rows if r["entity"] == "gl_journal"]
        assert archived
        for parent in parents:
            replies = [m for m in posted if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]]
            uids = [u for m in replies for u in m["metadata"]["event_payload"]["deliveries"]]
            # The parent's final state counts every reply in its thread (an edit lost to a kill is made again).
            assert f"GL journal entries*: {len(uids)}" in json.dumps(parent["blocks"]), (titles, len(uids))
        for r in archived:  # every GL entry is a reply in a parent's thread
            assert by_ts[r["slack_ts"]].get("thread_ts") in {p["ts"] for p in parents}, r
        print(f"\narchive: {sum(1 for r in rig.runs if r.rc == -signal.SIGKILL)} kill(s) survived; "
              + "; ".join(r.describe() for r in rig.runs))
