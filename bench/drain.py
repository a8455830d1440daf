"""Drain efficiency: the outbox drained into the Slack simulator with its rate limits on.

The simulator (own process) enforces Slack's model — one ``chat.postMessage`` per second per
channel (a burst of 2) and a workspace cap per minute, answering 429 + ``Retry-After`` above it —
with every rate sped up ``--time-scale`` times (default 5), so minutes of Slack time take seconds.
The drainer gets the same limits (``DrainSettings`` defaults: 1/s per channel with 1 % headroom
and a catch-up burst of 2, 300/min workspace, digests of up to 20 records once a channel holds
more than 5). Each configuration drains a fresh outbox of
N supplier invoices spread round-robin over C channels, from one ``Drainer.drain()`` call.

Per configuration (times in *Slack seconds*, i.e. real seconds × time scale):

* rate ÷ limit: accepted posts per second while a backlog exists — per channel ((posts − 1) over
  first-to-last post), or for the whole workspace when the workspace cap is what binds — divided
  by that configured limit;
* 429s: posts the simulator refused, and as a share of all posts;
* records/message, and messages sent vs the fewest the digest settings allow (a channel with
  ≤ 5 records gets single messages, a deeper one ceil(records / 20) digests);
* drain: from ``drain()`` to the last record visible in Slack, against the lower bound
  max(messages needed in the busiest channel / per-channel rate, all messages / workspace rate);
* the month-end case: 1,000 invoices in one channel, visible in under 2 minutes at Slack's real
  1 message/s (the scaled run's time × time scale).

Then the pace at Slack's real speed (×1) and at ×10, digests off so every record is a message:
25 messages in each of 1 and 4 channels, and two drainers (two runs on one audit database)
sharing one channel's 40 messages — the rate ÷ limit must be ≥ 0.98 with 0 × 429.

    python -m bench.drain              # N ∈ {1, 10, 100, 2000} × C ∈ {1, 4, 50}, + month-end
    python -m bench.drain --quick      # N ∈ {10, 100} × C ∈ {1, 4}, + month-end
    python -m bench.drain --pace-only  # only the pace at ×1 and ×10
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any

from bench._outbox import channel_names, fill, visible_deliveries
from bench._sims import LoadMeter, Row, print_machine, serve_remote, table, verdict
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.sources import all_entities
from erp_slack.store import Store

TARGET_RATE = 0.95
TARGET_PACE = 0.98
PACE_SCALES = (1.0, 10.0)
PACE_MESSAGES = 25
TARGET_429 = 0.01
TARGET_DRAIN = 1.10
MONTH_END = (1000, 1)
MONTH_END_LIMIT = 120.0


def min_messages(records: int, s: DrainSettings) -> int:
    """The fewest messages the digest settings allow for one channel's backlog."""
    return records if records <= s.digest_threshold else math.ceil(records / s.digest_max)


def run_one(sim: Any, n: int, c: int, settings: DrainSettings) -> dict[str, Any]:
    """Drain N records over C channels once; figures from the simulator's post log."""
    sim.call("reset")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/audit.db")
        per_channel = fill(store, n, channel_names(c))
        gateway = SlackGateway(sim.token, base_url=sim.url + "/api/", timeout=10)
        drainer = Drainer(store, gateway, all_entities(), settings=settings)
        meter = LoadMeter("self", sim.pid)
        start = time.monotonic()
        report = drainer.drain()
        meter.stop()
        left = store.counts()
        uids = {d["uid"] for d in store.deliveries()}
        store.dispose()
    posts = sim.call("post_log")
    messages = sim.call("posted")
    accepted = [p for p in posts if p.accepted]
    refused = [p for p in posts if not p.accepted]
    shown = visible_deliveries(messages)
    scale = settings.time_scale
    need = {ch: min_messages(k, settings) for ch, k in per_channel.items()}
    ch_bound = max(need.values()) / settings.rate_per_channel
    ws_bound = sum(need.values()) / (settings.workspace_per_minute / 60.0)
    binding = "channel" if ch_bound >= ws_bound else "workspace"
    if binding == "channel":
        pace = channel_pace(posts, scale)
        ratio = None if pace is None else pace / settings.rate_per_channel
    else:
        ts = sorted(p.t for p in accepted)
        ratio = ((len(ts) - 1) / ((ts[-1] - ts[0]) * scale)) / (settings.workspace_per_minute / 60.0)
    drain = (max(p.t for p in accepted) - start) * scale if accepted else float("nan")
    return {
        "n": n, "c": c, "channels_used": len(per_channel), "messages": len(accepted), "records": report.records,
        "min_messages": sum(need.values()), "refused": len(refused), "posts": len(posts), "ratio": ratio,
        "binding": binding, "drain": drain, "bound": max(ch_bound, ws_bound),
        "lost": len(uids - set(shown)), "duplicated": sum(1 for v in shown.values() if v > 1),
        "pending_left": left.get("pending", 0) + left.get("sending", 0), "others": meter.others,
    }


def channel_pace(posts: list[Any], scale: float) -> float | None:
    """Accepted posts per Slack second after each channel's first, over its first-to-last span."""
    by_channel: dict[str, list[float]] = defaultdict(list)
    for p in posts:
        if p.accepted:
            by_channel[p.channel].append(p.t)
    busy = [ts for ts in by_channel.values() if len(ts) > 1]
    span = sum(ts[-1] - ts[0] for ts in busy) * scale
    return sum(len(ts) - 1 for ts in busy) / span if busy else None


def run_pace(sim: Any, n: int, c: int, drainers: int, settings: DrainSettings) -> dict[str, Any]:
    """Drain n single messages over c channels with ``drainers`` drainers on one audit database."""
    sim.call("reset")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/audit.db")
        fill(store, n, channel_names(c))
        gateway = SlackGateway(sim.token, base_url=sim.url + "/api/", timeout=10)
        reports: list[Any] = []
        threads = [threading.Thread(target=lambda: reports.append(
            Drainer(store, gateway, all_entities(), settings=settings).drain())) for _ in range(drainers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        left = store.counts()
        uids = {d["uid"] for d in store.deliveries()}
        store.dispose()
    posts = sim.call("post_log")
    shown = visible_deliveries(sim.call("posted"))
    pace = channel_pace(posts, settings.time_scale)
    return {
        "ratio": None if pace is None else pace / settings.rate_per_channel, "posts": len(posts),
        "refused": sum(1 for p in posts if not p.accepted), "messages": sum(1 for p in posts if p.accepted),
        "complete": uids == set(shown) and max(shown.values(), default=1) == 1
        and left.get("pending", 0) + left.get("sending", 0) == 0,
        "by_drainer": [r.messages for r in reports],
    }


def pace_table() -> tuple[list[Row], int, int]:
    """The pace at ×1 and ×10: one simulator per scale, digests off."""
    rows: list[Row] = []
    refused = posts = 0
    for scale in PACE_SCALES:
        settings = DrainSettings(time_scale=scale, reconcile_after=0.5, digest_threshold=10**6)
        with serve_remote("slack", channels=channel_names(4), time_scale=scale,
                          workspace_per_minute=int(settings.workspace_per_minute)) as sim:
            sim.token = sim.call("token")
            for label, n, c, d in [(f"{PACE_MESSAGES} msgs in 1 channel", PACE_MESSAGES, 1, 1),
                                   (f"{PACE_MESSAGES} msgs in each of 4 channels", 4 * PACE_MESSAGES, 4, 1),
                                   ("two drainers, 40 msgs in 1 channel", 40, 1, 2)]:
                r = run_pace(sim, n, c, d, settings)
                refused, posts = refused + r["refused"], posts + r["posts"]
                ok = r["ratio"] is not None and r["ratio"] >= TARGET_PACE and r["refused"] == 0 and r["complete"]
                rows.append(Row([f"×{scale:g}", label, f"{r['ratio']:.3f}", str(r["refused"]),
                                 " + ".join(map(str, r["by_drainer"])), "yes" if r["complete"] else "NO"], ok))
                print(f"  pace ×{scale:g} {label}: {r['ratio']:.3f}", file=sys.stderr, flush=True)
    return rows, refused, posts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N ∈ {10, 100}, C ∈ {1, 4} and the month-end case")
    parser.add_argument("--pace-only", action="store_true", help="only the pace at ×1 and ×10")
    parser.add_argument("--time-scale", type=float, default=5.0, help="Slack seconds per real second (default 5)")
    opts = parser.parse_args(argv)
    if opts.pace_only:
        print_machine()
        return print_pace()
    backlogs, channels = ([10, 100], [1, 4]) if opts.quick else ([1, 10, 100, 2000], [1, 4, 50])
    configs = [(n, c) for c in channels for n in backlogs] + [MONTH_END]
    scale = opts.time_scale
    settings = DrainSettings(time_scale=scale, reconcile_after=0.5)
    print_machine()
    print(f"# Slack simulator: 1 msg/s per channel (burst 2), {settings.workspace_per_minute:.0f}/min workspace, "
          f"time scale {scale:g}; drainer: digests of ≤ {settings.digest_max} above {settings.digest_threshold} "
          f"pending, headroom {settings.headroom}, catch-up burst {settings.channel_burst}")
    rows: list[Row] = []
    totals = {"refused": 0, "posts": 0}
    month_end: dict[str, Any] | None = None
    with serve_remote("slack", channels=channel_names(max(channels)), time_scale=scale,
                      workspace_per_minute=int(settings.workspace_per_minute)) as sim:
        sim.token = sim.call("token")
        for n, c in configs:
            r = run_one(sim, n, c, settings)
            share = r["refused"] / max(1, r["posts"])
            totals["refused"] += r["refused"]
            totals["posts"] += r["posts"]
            drain_ratio = r["drain"] / r["bound"]
            ok_rate = r["ratio"] is None or r["ratio"] >= TARGET_RATE
            complete = r["lost"] == 0 and r["duplicated"] == 0 and r["pending_left"] == 0
            ok = ok_rate and share <= TARGET_429 and drain_ratio <= TARGET_DRAIN and complete
            label = f"{n:,} over {c}" + (f" ({r['channels_used']} used)" if r["channels_used"] < c else "")
            if (n, c) == MONTH_END:
                month_end = r
                label = f"month-end: {label}"
                ok = complete and r["drain"] < MONTH_END_LIMIT and share <= TARGET_429
            rows.append(Row([
                label, r["binding"], "n/a" if r["ratio"] is None else f"{r['ratio']:.3f}",
                f"{r['refused']} ({share:.1%})", f"{r['records'] / max(1, r['messages']):.1f}",
                f"{r['messages']} / {r['min_messages']}", f"{r['drain']:.1f}", f"{r['bound']:.1f}",
                f"{drain_ratio:.2f}", f"{r['lost']}/{r['duplicated']}", f"{r['others']:.1f}",
            ], ok))
            print(f"  {label}: {r['drain']:.1f} Slack s, {r['refused']} × 429", file=sys.stderr, flush=True)
    print()
    print(table(["backlog (records over channels)", "binding limit", "rate ÷ limit", "429s (share)", "records/msg",
                 "msgs sent / fewest", "drain s", "bound s", "drain ÷ bound", "lost/dup", "other load"], rows))
    print()
    print(f"targets: rate ÷ limit ≥ {TARGET_RATE} while a backlog exists; 429s ≤ {TARGET_429:.0%} of posts; "
          f"drain ≤ {TARGET_DRAIN:.2f} × bound; nothing lost, duplicated or left pending; month-end "
          f"({MONTH_END[0]:,} invoices, one channel) visible in < {MONTH_END_LIMIT:.0f} s at 1 msg/s")
    print(f"all configurations: {totals['refused']} × 429 in {totals['posts']} posts "
          f"({totals['refused'] / max(1, totals['posts']):.1%})")
    if month_end is not None:
        print(f"month-end: {month_end['records']:,} invoices in {month_end['messages']} messages, last one visible "
              f"after {month_end['drain']:.1f} s at Slack's real rate ({month_end['drain'] / scale:.1f} s at ×{scale:g})")
    print(verdict("drain", rows))
    return print_pace()


def print_pace() -> int:
    settings = DrainSettings()
    print()
    print(f"# pace: digests off, Slack simulator burst 2; drainer headroom {settings.headroom}, "
          f"catch-up burst {settings.channel_burst}")
    rows, refused, posts = pace_table()
    print()
    print(table(["scale", "backlog", "rate ÷ limit", "429s", "messages per drainer", "once each"], rows))
    print()
    print(f"target: rate ÷ limit ≥ {TARGET_PACE} at ×1 and ×10 with 0 × 429; {refused} × 429 in {posts} posts")
    print(verdict("pace", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
