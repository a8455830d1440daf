"""A naive baseline, measured in the same run: one Prefect task per record calling chat.postMessage.

The same backlog of supplier invoices (N records over 4 channels) is delivered to the Slack
simulator at Slack's real rates (1 message/s per channel, burst 1; 300/min workspace; time scale 1)
by:

* **naive, sequential**: a flow calling one ``@task`` per record, one after the other; each task
  builds a ``WebClient`` with slack_sdk's *default* retry handlers (connection errors retried
  once, no 429 handling) and calls ``chat.postMessage`` with the same rendered message we send.
  No lanes, no batching, no Prefect retries; a failed task does not stop the flow;
* **naive, .map()**: the same task over all records with ``.map()`` (Prefect's default thread pool);
* **ours**: the product's ``deliver`` task (``Drainer``: a lane per channel, digests, 429 and
  ambiguity handling) in a flow; in the full run also with digests off (``digest_max=1``), to
  show what the lanes alone do.

Everything runs under one ``prefect_test_harness`` (a temporary local Prefect server) in a child
interpreter. Two scenarios: the rate limits alone, and the rate limits plus 3 posts whose
connection drops *after* Slack stored the message (a lost reply). Printed: records visible,
lost and duplicated (by the delivery ids in the messages' metadata), 429s, time to the last
visible record, the flow's wall time, records delivered per second of flow time, and our
figures as ratios to the sequential naive run.

    python -m bench.baseline           # 100 records over 4 channels; ours also without digests
    python -m bench.baseline --quick   # 60 records over 4 channels
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

from bench._sims import Row, print_machine, run_json, table, verdict

CHANNELS = 4
DROPS = 3


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """All variants under one temporary Prefect server; figures per (scenario, variant)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.testing.utilities import prefect_test_harness
    from slack_sdk import WebClient

    from bench._outbox import channel_names, fill, visible_deliveries
    from bench._sims import serve_remote
    from erp_slack.slack.gateway import SlackGateway
    from erp_slack.slack.render import render
    from erp_slack.slack.send import DrainSettings
    from erp_slack.sources import all_entities
    from erp_slack.store import Store
    from tasks import deliver

    @task(cache_policy=NO_CACHE)
    def post_one(base_url: str, token: str, channel: str, message: dict[str, Any]) -> None:
        WebClient(base_url=base_url, token=token).chat_postMessage(channel=channel, **message)

    @flow(name="naive-sequential", validate_parameters=False)
    def naive_sequential(base_url: str, token: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        for channel, message in items:
            post_one(base_url, token, channel, message, return_state=True)  # a failure does not stop the flow

    @flow(name="naive-map", validate_parameters=False)
    def naive_map(base_url: str, token: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        futures = post_one.map(base_url, token, [c for c, _ in items], [m for _, m in items])
        futures.wait()

    @flow(name="ours", validate_parameters=False)  # parameters are live objects, not JSON
    def ours(store: Store, gateway: SlackGateway, settings: DrainSettings) -> Any:
        return deliver(store, gateway, settings, all_entities(), None, None)

    out: dict[str, Any] = {}
    channels = channel_names(CHANNELS)
    with prefect_test_harness(server_startup_timeout=180), \
            serve_remote("slack", channels=channels, workspace_per_minute=300) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        base_url, token = sim.url + "/api/", sim.call("token")
        variants = ["naive-sequential", "naive-map", "ours"] + (["ours-no-digest"] if spec["no_digest"] else [])
        for scenario in ("rate limits", f"rate limits + {DROPS} lost replies"):
            for k, variant in enumerate(variants):
                sim.call("reset")
                if scenario != "rate limits":
                    sim.call("inject", "chat.postMessage", stored_then_failed=True, drop=True, times=DROPS)
                store = Store(f"sqlite:///{tmp}/{len(out)}.db")
                fill(store, spec["n"], channels, start=10_000 * len(out))
                uids = {d["uid"] for d in store.deliveries()}
                started = time.monotonic()
                if variant.startswith("naive"):
                    items = []
                    for ch in channels:
                        for d in store.claim("#" + ch, 100_000, worker="naive"):
                            items.append(("#" + ch, render([d], all_entities(), batch_uid=d.uid).as_kwargs()))
                    items.sort(key=lambda it: it[1]["metadata"]["event_payload"]["deliveries"][0])
                    (naive_sequential if variant == "naive-sequential" else naive_map)(base_url, token, items)
                else:
                    settings = DrainSettings(reconcile_after=1.0, **({"digest_max": 1} if variant == "ours-no-digest" else {}))
                    ours(store, SlackGateway(token, base_url=base_url), settings)
                ended = time.monotonic()
                store.dispose()
                posts = sim.call("post_log")
                shown = visible_deliveries(sim.call("posted"))
                accepted = [p.t for p in posts if p.accepted]
                last = max(accepted) - started if accepted else float("nan")
                visible = len(uids & set(shown))
                out[f"{scenario}|{variant}"] = {
                    "records": len(uids), "visible": visible, "lost": len(uids) - visible,
                    "duplicated": sum(1 for u in uids if shown.get(u, 0) > 1), "refused": len(posts) - len(accepted),
                    "messages": len(accepted), "last": last, "flow": ended - started,
                }
    return out


def _ratio(ours: float, theirs: float, fmt: str = "{:.2f}") -> str:
    if theirs == 0:
        return "n/a (0)" if ours == 0 else "∞"
    return fmt.format(ours / theirs) + "×"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 records, without the digests-off variant")
    parser.add_argument("--records", type=int, help="backlog size (default 100, quick 60)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        print(json.dumps(worker(json.loads(opts.worker))))
        return 0
    n = opts.records or (60 if opts.quick else 100)
    print_machine()
    print(f"# {n} supplier invoices over {CHANNELS} channels; Slack simulator at real rates (1 msg/s per channel, "
          f"burst 1, 300/min); everything under one temporary Prefect server")
    res = run_json(["-m", "bench.baseline", "--worker", json.dumps({"n": n, "no_digest": not opts.quick})],
                   env={"PREFECT_LOGGING_LEVEL": "CRITICAL"})
    rows: list[Row] = []
    ratio_rows: list[Row] = []
    for key, r in res.items():
        scenario, variant = key.split("|")
        rate = r["visible"] / r["flow"]  # records delivered per second of the whole flow run
        r["rate"] = rate
        rows.append(Row([scenario, variant, f"{r['visible']}/{r['records']}", str(r["lost"]), str(r["duplicated"]),
                         str(r["refused"]), str(r["messages"]), f"{r['last']:.1f}", f"{r['flow']:.1f}",
                         f"{rate:.1f}"], None))
    for key, r in res.items():
        scenario, variant = key.split("|")
        if not variant.startswith("ours"):
            continue
        base = res[f"{scenario}|naive-sequential"]
        ok = r["lost"] == 0 and r["duplicated"] == 0 and r["refused"] <= base["refused"] and r["rate"] >= base["rate"]
        ratio_rows.append(Row([
            scenario, variant, _ratio(r["rate"], base["rate"]), _ratio(r["refused"], base["refused"]),
            f"{r['lost']} vs {base['lost']}", f"{r['duplicated']} vs {base['duplicated']}",
        ], ok))
    print()
    print(table(["scenario", "variant", "visible", "lost", "duplicated", "429s", "messages", "last visible s",
                 "flow s", "records/s"], rows))
    print()
    print("ours ÷ naive (sequential), same backlog, same limits:")
    print(table(["scenario", "variant", "records/s ÷", "429s ÷", "lost (ours vs naive)", "duplicated (ours vs naive)"],
                ratio_rows))
    print()
    print("target: nothing lost or duplicated, fewer 429s and more records/s than the naive baseline")
    print(verdict("baseline", ratio_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
