"""Freshness: from a row inserted in an ERP simulator to its message in the Slack simulator.

A poll loop runs the core cycle (poll every entity, then drain to Slack) every ``--interval``
seconds, as a schedule would, against each source in turn: SYSPRO e.net, SYSPRO OData and
Dynamics GP (simulators in their own processes; Slack at its real rate, 1 message/s per channel).
Meanwhile supplier invoices are inserted one at a time at random moments of the poll interval;
each insert is timed until a message naming that invoice is stored by the Slack simulator (its
``ts``, i.e. when Slack accepted it). Target: every invoice visible within one poll interval
plus 5 seconds.

    python -m bench.freshness              # 5 s interval, 5 invoices per source
    python -m bench.freshness --quick      # 2 s interval, 3 invoices per source
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from bench._sims import Row, print_machine, serve_remote, table, verdict
from bench.empty_poll import core_cycle

SOURCES = ("enet", "odata", "gp")
SLACK_MARGIN = 5.0
TIMEOUT = 60.0


class PollLoop:
    """Runs the core cycle of one source every ``interval`` seconds in a thread."""

    def __init__(self, source: str, url: str, db: str, slack_url: str, token: str, interval: float) -> None:
        self.args = (source, url, db, slack_url, token)
        self.interval = interval
        self.cycles: list[tuple[float, int]] = []  # (seconds, records posted) per cycle
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{source}", daemon=True)

    def __enter__(self) -> "PollLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                done = core_cycle(*self.args)
                self.cycles.append((done["wall"], done["posted"]))
            except Exception as exc:  # reported in the table; the loop keeps its schedule
                self.errors.append(f"{type(exc).__name__}: {exc}")
            due += self.interval
            self._stop.wait(max(0.0, due - time.monotonic()))


def _insert(source: str, sim: Any, n: int) -> str:
    """Insert one new supplier invoice; returns the text its message will carry."""
    tag = f"FRESH-{source.upper()}-{n:03d}"
    if source == "gp":
        sim.call("add_invoice", "ACETRAVE0001", tag, "1234.50", posted=True)
    else:
        sim.call("insert_invoice", supplier="0000001", invoice=tag, amount="1234.50", post_journal=False)
    return tag


def _seen_at(slack: Any, tag: str) -> float | None:
    for m in slack.call("posted"):
        if tag in json.dumps([m.get("text"), m.get("blocks")]):
            return float(m["ts"])
    return None


def measure(source: str, sim: Any, slack: Any, interval: float, count: int, rng: random.Random) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/audit.db"
        slack_url, token = slack.url + "/api/", slack.call("token")
        core_cycle(source, sim.url, db, slack_url, token)  # watermarks; what exists is not posted
        latencies: list[float | None] = []
        with PollLoop(source, sim.url, db, slack_url, token, interval) as loop:
            for n in range(count):
                time.sleep(rng.uniform(0, interval))  # a random moment of the poll interval
                inserted = time.time()
                tag = _insert(source, sim, n)
                seen = None
                while seen is None and time.time() - inserted < TIMEOUT:
                    time.sleep(0.05)
                    seen = _seen_at(slack, tag)
                latencies.append(None if seen is None else seen - inserted)
        return {"latencies": latencies, "cycles": loop.cycles, "errors": loop.errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s interval, 3 invoices per source")
    parser.add_argument("--interval", type=float, help="poll interval in seconds (default 5, quick 2)")
    parser.add_argument("--count", type=int, help="invoices per source (default 5, quick 3)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the insert moments")
    opts = parser.parse_args(argv)
    interval = opts.interval or (2.0 if opts.quick else 5.0)
    count = opts.count or (3 if opts.quick else 5)
    rng = random.Random(opts.seed)
    limit = interval + SLACK_MARGIN
    print_machine()
    print(f"# poll loop every {interval:g} s (core cycle: poll all entities, then drain); Slack at 1 msg/s per channel")
    rows: list[Row] = []
    with serve_remote("syspro") as syspro, serve_remote("gp") as gp, serve_remote("slack") as slack:
        for source in SOURCES:
            r = measure(source, gp if source == "gp" else syspro, slack, interval, count, rng)
            got = [x for x in r["latencies"] if x is not None]
            missing = len(r["latencies"]) - len(got)
            ok = not missing and not r["errors"] and max(got) <= limit
            idle = [w for w, posted in r["cycles"] if not posted]
            busy = [w for w, posted in r["cycles"] if posted]
            rows.append(Row([
                source, str(count), f"{statistics.median(got):.2f}" if got else "–", f"{max(got):.2f}" if got else "–",
                str(missing), f"{statistics.median(idle) * 1000:.0f}" if idle else "–",
                f"{statistics.median(busy) * 1000:.0f}" if busy else "–", f"{limit:g}",
                "; ".join(r["errors"][:2]) or "none",
            ], ok))
            print(f"  {source}: {['%.2f' % x if x is not None else 'never' for x in r['latencies']]}",
                  file=sys.stderr, flush=True)
    print()
    print(table(["source", "invoices", "median s", "max s", "not seen", "empty cycle ms", "cycle that posts ms",
                 "limit s", "loop errors"], rows))
    print()
    print("A cycle that posts lasts about one Slack interval longer: after its post the channel's lane waits "
          "its interval before it finds the outbox empty (the message itself is visible at once).")
    print()
    print(f"target: every invoice visible in Slack within the poll interval + {SLACK_MARGIN:g} s (≤ {limit:g} s)")
    print(verdict("freshness", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
