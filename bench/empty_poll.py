"""Cost of an empty poll: requests per entity, and the wall time of a run that finds nothing new.

Each source (SYSPRO e.net, SYSPRO OData, Dynamics GP, all on their simulators' seed data, in
their own processes) is polled once to set the watermarks (``first_run="baseline"``: nothing is
posted), then polled again with nothing changed:

* **requests per entity**: the simulator's request counters around each entity's poll, with
  one client for the whole run, as a flow does (e.net's Logon and Logoff are counted apart; GP's
  NTLM handshake legs are part of the first request's count);
* **core cycle** (no Prefect): the cycle the flow runs (``erp_slack.cycle``), timed — open the
  store, log on, poll every entity, drain the (empty) outbox, clear alerts, build the run
  summary, log off. The median of several runs;
* **flow** (Prefect): the real ``syspro-to-slack`` / ``gp-to-slack`` flows, run in a separate
  interpreter under ``prefect_test_harness`` (a temporary local API server, like the tests), on
  the same simulators and audit database: the first run after the server is up, and the median
  of the next ones. Flow minus core is the part spent in Prefect.

    python -m bench.empty_poll             # 5 core runs and 5 flow runs per source
    python -m bench.empty_poll --quick     # 3 core runs and 3 flow runs per source
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from typing import Any, Callable

from bench._sims import Row, print_machine, run_json, serve_remote, table, verdict

SOURCES = ("enet", "odata", "gp")
OPS = "#finance-alerts"


# --- building clients and entities from the simulators' addresses --------------------------------


def _syspro_config(url: str, transport: str) -> Any:
    from erp_slack.config import SysproConfig

    return SysproConfig(transport=transport, base_url=url, operator="ENET01", operator_password="secret",
                        company_id="EDU1", odata_password="odata-secret")


def _gp_config(url: str) -> Any:
    from erp_slack.config import GpConfig
    from simulators.gp import DEFAULT_COMPANY, DEFAULT_PASSWORD, DEFAULT_TENANT, DEFAULT_USER

    return GpConfig(base_url=url + "/GPService", tenant=DEFAULT_TENANT, company=DEFAULT_COMPANY,
                    username=DEFAULT_USER, password=DEFAULT_PASSWORD)


def _source(source: str, url: str) -> tuple[str, str, Callable[..., Any], tuple[Any, ...]]:
    """(source name, company, client factory, entities) for one of SOURCES."""
    from erp_slack.connect import gp_client, gp_entities, syspro_client, syspro_entities

    if source == "gp":
        cfg = _gp_config(url)
        return "gp", cfg.company, lambda audit: gp_client(cfg, audit=audit), gp_entities(cfg)
    cfg = _syspro_config(url, source)
    return "syspro", cfg.company_id, lambda audit: syspro_client(cfg, audit=audit), syspro_entities(cfg)


def _reset(sim: Any) -> None:
    sim.call("reset_counters")


def _counts(sim: Any, source: str) -> Counter[str]:
    return Counter(dict(sim.call("counters")))


# --- the core cycle ---------------------------------------------------------------------------------


def core_cycle(source: str, url: str, db: str, slack_url: str, slack_token: str, *, first_run: str = "baseline",
               between: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The core cycle the flow runs (``erp_slack.cycle.run_cycle``) without Prefect, timed with
    opening the store and building the run summary; ``between(entity)`` runs after each poll."""
    from erp_slack.cycle import SlackOut, poll_step, run_cycle
    from erp_slack.report import summary_markdown
    from erp_slack.slack.gateway import SlackGateway
    from erp_slack.store import Store

    name, company, make_client, entities = _source(source, url)
    started = time.perf_counter()
    store = Store(db)

    def poll(client: Any, entity: Any, *args: Any) -> Any:
        result = poll_step(client, entity, *args)
        if between is not None:
            between(entity.name)
        return result

    summary = run_cycle(make_client, entities, store, SlackOut(SlackGateway(slack_token, base_url=slack_url),
                                                               ops_channel=OPS),
                        source=name, company=company, first_run=first_run, poll=poll,
                        publish=lambda s: summary_markdown(s.as_dict(), store))
    store.dispose()
    return {"wall": time.perf_counter() - started, "rows": sum(p.rows_seen for p in summary.polls),
            "new": summary.new + summary.updated, "posted": summary.delivered_records}


# --- the flows under Prefect (own interpreter) ------------------------------------------------------


def prefect_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run each source's flow ``runs`` times under a temporary Prefect server; wall time per run."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.testing.utilities import prefect_test_harness

    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    with prefect_test_harness(server_startup_timeout=180):
        out["server_start"] = time.perf_counter() - t0
        from blocks import AuditDatabase, DynamicsGpCredentials, SlackBot, SysproCredentials
        from flows.gp import gp_to_slack
        from flows.syspro import syspro_to_slack

        SlackBot(token=spec["slack_token"], base_url=spec["slack_url"], ops_channel=OPS).save("slack", overwrite=True)
        AuditDatabase(url=spec["db"]).save("audit", overwrite=True)
        for source in spec["sources"]:
            url = spec["urls"][source]
            if source == "gp":
                cfg = _gp_config(url)
                DynamicsGpCredentials(base_url=cfg.base_url, tenant=cfg.tenant, company=cfg.company,
                                      username=cfg.username, password=cfg.password).save("gp", overwrite=True)
                run = lambda: gp_to_slack(gp_block="gp", slack_block="slack", audit_block="audit")  # noqa: E731
            else:
                SysproCredentials(transport=source, base_url=url, operator="ENET01", operator_password="secret",
                                  company_id="EDU1", odata_password="odata-secret").save(source, overwrite=True)
                run = lambda s=source: syspro_to_slack(  # noqa: E731
                    syspro_block=s, slack_block="slack", audit_block="audit")
            walls = []
            for _ in range(spec["runs"]):
                t = time.perf_counter()
                result = run()
                walls.append(time.perf_counter() - t)
                if result["delivered_records"] or sum(p["new"] + p["updated"] for p in result["polls"]):
                    raise RuntimeError(f"{source}: the 'empty' flow run found work: {result}")
            out[source] = walls
    return out


# --- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.empty_poll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-prefect", action="store_true", help="skip the flow runs (no Prefect server)")
    parser.add_argument("--prefect-worker", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.prefect_worker:
        print(json.dumps(prefect_worker(json.loads(opts.prefect_worker))))
        return 0
    core_runs, flow_runs = (3, 3) if opts.quick else (5, 5)
    print_machine()
    rows: list[Row] = []
    with serve_remote("syspro") as syspro, serve_remote("gp") as gp, \
            serve_remote("slack", rate_limits=False) as slack, tempfile.TemporaryDirectory() as tmp:
        sims = {"enet": syspro, "odata": syspro, "gp": gp}
        slack_url, token = slack.url + "/api/", slack.call("token")
        dbs = {s: f"sqlite:///{tmp}/{s}.db" for s in SOURCES}
        figures: dict[str, dict[str, Any]] = {}
        for source in SOURCES:
            sim = sims[source]
            core_cycle(source, sim.url, dbs[source], slack_url, token)  # sets the watermarks, posts nothing
            # Requests per entity in one empty run with one client.
            per_entity: dict[str, int] = {}
            session: Counter[str] = Counter()
            _reset(sim)

            def after(entity: str, sim: Any = sim, source: str = source) -> None:
                c = _counts(sim, source)
                per_entity[entity] = _data_requests(source, c)
                session.update(_session_requests(source, c))
                _reset(sim)

            slack.call("reset")
            core_cycle(source, sim.url, dbs[source], slack_url, token, between=after)
            session.update(_session_requests(source, _counts(sim, source)))  # the Logoff comes last
            walls = [core_cycle(source, sim.url, dbs[source], slack_url, token)["wall"] for _ in range(core_runs)]
            slack_calls = len(slack.call("calls")) // (core_runs + 1)
            figures[source] = {"per_entity": per_entity, "session": session, "core": walls,
                               "slack_calls": slack_calls}
        flows: dict[str, Any] = {}
        if not opts.no_prefect:
            spec = {"sources": list(SOURCES), "urls": {s: sims[s].url for s in SOURCES}, "db": None,
                    "slack_url": slack_url, "slack_token": token, "runs": flow_runs}
            for source in SOURCES:  # one interpreter per source keeps each flow's audit db apart
                spec.update(sources=[source], db=dbs[source])
                got = run_json(["-m", "bench.empty_poll", "--prefect-worker", json.dumps(spec)],
                               env={"PREFECT_LOGGING_LEVEL": "WARNING"})
                flows[source] = got[source]
                flows.setdefault("server_start", []).append(got["server_start"])
    for source in SOURCES:
        f = figures[source]
        counts = f["per_entity"]
        extra = ", ".join(f"{k} {v}" for k, v in sorted(f["session"].items())) or "none"
        core = statistics.median(f["core"])
        ok = all(n == 1 for n in counts.values())
        cells = [source, " ".join(f"{k}={v}" for k, v in counts.items()), extra, str(f["slack_calls"]),
                 f"{core * 1000:.0f}"]
        if source in flows:
            first, rest = flows[source][0], flows[source][1:]
            warm = statistics.median(rest) if rest else first
            spread = f" ({min(rest):.2f}–{max(rest):.2f})" if len(rest) > 1 else ""
            cells += [f"{first:.2f}", f"{warm:.2f}{spread}", f"{warm - core:.2f} ({(warm - core) / warm:.0%})"]
        else:
            cells += ["–", "–", "–"]
        rows.append(Row(cells, ok))
    print()
    print(table(["source", "requests per entity (empty poll)", "session requests", "Slack calls/run",
                 "core cycle ms (median)", "flow s (1st)", "flow s: median of rest (min–max)", "Prefect s (share)"], rows))
    print()
    if flows:
        print(f"Prefect test server start-up (not counted above): "
              f"{', '.join(f'{t:.1f}' for t in flows['server_start'])} s")
    print("target: one request per entity (plus Logon/Logoff per run on e.net)")
    print(verdict("empty poll", rows))
    return 0


def _data_requests(source: str, counts: Counter[str]) -> int:
    """Requests that read data (not the session's Logon/Logoff, not NTLM challenge legs)."""
    if source == "gp":
        return sum(v for k, v in counts.items() if k.startswith("GET "))
    return sum(v for k, v in counts.items() if k not in ("Logon", "Logoff"))


def _session_requests(source: str, counts: Counter[str]) -> Counter[str]:
    """Requests that open or close the session: e.net Logon/Logoff, GP's NTLM challenge legs."""
    if source == "gp":
        legs = counts.get("api", 0) - _data_requests(source, counts)
        return Counter({"NTLM legs": legs} if legs else {})
    return Counter({k: v for k, v in counts.items() if k in ("Logon", "Logoff")})


if __name__ == "__main__":
    sys.exit(main())
