"""Backfill throughput and memory: N rows from each simulator through extract → transform → outbox.

For each source (SYSPRO OData, SYSPRO e.net, Dynamics GP) and each size (10k, 100k, 1M rows) a
fresh worker interpreter runs one dry-run poll of one entity (``poll_entity(..., dry_run=True)``:
every row is read, normalised, routed and written to the outbox as ``dry-run``, nothing is
posted) against a simulator in a third process holding N generated rows. Peaks therefore never
mix: the worker reports its own ``VmHWM``, the simulator its own.

Printed per run: rows/s (wall clock, end to end), rows per CPU-second of the worker (what the
code costs, whatever else the machine was doing), the worker's peak RSS and how much of it the
run added over the idle, imported worker, the simulator's peak RSS, and the other load on the
machine, and how the wall time splits between the worker's CPU, the simulator's CPU and the rest
(waiting, I/O). Targets: ≥ 5,000 rows/s, peak RSS ≤ 300 MB, peak at 1M ≤ 1.3 × peak at 10k.

    python -m bench.backfill            # 10k, 100k, 1M rows × 3 sources (about 8 minutes)
    python -m bench.backfill --quick    # 10k and 50k rows
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from typing import Any

from bench._sims import LoadMeter, Row, cpu_seconds, print_machine, rss_mb, run_json, serve_remote, table, verdict

SOURCES = ("odata", "enet", "gp")
TARGET_ROWS_PER_S = 5000.0
TARGET_PEAK_MB = 300.0
TARGET_GROWTH = 1.3


def _client_and_entity(source: str, url: str) -> tuple[Any, Any]:
    if source in ("enet", "odata"):
        from erp_slack.sources.syspro.client import connect
        from erp_slack.sources.syspro.entities import entities_for

        entity = next(e for e in entities_for(source) if e.name == "ap_invoice")
        client = connect(source, base_url=url, operator="ENET01", company="EDU1", operator_password="secret",
                         odata_password="odata-secret")
        return client, entity
    from erp_slack.sources.gp.client import GpClient
    from erp_slack.sources.gp.entities import PAYABLES_INVOICE
    from simulators.gp import DEFAULT_COMPANY, DEFAULT_PASSWORD, DEFAULT_TENANT, DEFAULT_USER

    return GpClient(url + "/GPService", DEFAULT_TENANT, DEFAULT_COMPANY, DEFAULT_USER, DEFAULT_PASSWORD), PAYABLES_INVOICE


def worker(source: str, n: int) -> dict[str, Any]:
    """One dry-run backfill of ``n`` generated rows; runs in its own interpreter."""
    from erp_slack.pipeline import poll_entity
    from erp_slack.routing import DEFAULT_ROUTES
    from erp_slack.store import Store

    kind, options = ("gp", {"page_size": 1000}) if source == "gp" else ("syspro", {})
    with serve_remote(kind, **options) as sim, tempfile.TemporaryDirectory() as tmp:
        if source == "gp":
            sim.call("generate", "payables", n)  # ModifiedDate 1 ms apart from a day ago
        else:
            # 1,000 invoices a day, the last of them yesterday: a backfill reads the past.
            days = -(-n // 1000)
            sim.call("bulk_generate", "ApInvoice", n, start=(date.today() - timedelta(days=days + 1)).isoformat(),
                     per_day=1000)
        store = Store(f"sqlite:///{tmp}/audit.db")
        client, entity = _client_and_entity(source, sim.url)
        idle = rss_mb()["VmRSS"]
        meter = LoadMeter("self", sim.pid)
        cpu0, sim_cpu0 = cpu_seconds(), cpu_seconds(sim.pid)
        started = time.perf_counter()
        with client:
            result = poll_entity(client, entity, store, DEFAULT_ROUTES, dry_run=True)
        wall = time.perf_counter() - started
        cpu, sim_cpu = cpu_seconds() - cpu0, cpu_seconds(sim.pid) - sim_cpu0
        meter.stop()
        written = store.counts().get("dry-run", 0)
        store.dispose()
        return {
            "source": source, "n": n, "rows": result.rows_seen, "written": written, "pages": result.pages,
            "bad": result.bad, "wall": wall, "cpu": cpu, "sim_cpu": sim_cpu, "idle_mb": idle,
            "peak_mb": rss_mb()["VmHWM"], "sim_peak_mb": sim.rss()["VmHWM"], "others": meter.others,
        }


HEADERS = ["source", "rows asked", "rows read", "wall s", "rows/s", "rows/CPU-s", "wall: worker CPU / sim CPU / rest s",
           "peak RSS MB (run adds)", "peak ÷ first", "sim peak MB", "other load (cores)"]


def figures(results: list[dict[str, Any]]) -> list[Row]:
    """One table row per worker result; the peak is compared with the source's first (smallest) size."""
    rows: list[Row] = []
    first_peak: dict[str, float] = {}
    for r in results:
        first = first_peak.setdefault(r["source"], r["peak_mb"])
        rate = r["rows"] / r["wall"]
        growth = r["peak_mb"] / first
        ok = (rate >= TARGET_ROWS_PER_S and r["peak_mb"] <= TARGET_PEAK_MB
              and growth <= TARGET_GROWTH and r["written"] == r["rows"])
        rest = r["wall"] - r["cpu"] - r["sim_cpu"]
        rows.append(Row([
            r["source"], f"{r['n']:,}", f"{r['rows']:,}", f"{r['wall']:.1f}", f"{rate:,.0f}",
            f"{r['rows'] / max(r['cpu'], 1e-9):,.0f}", f"{r['cpu']:.1f} / {r['sim_cpu']:.1f} / {rest:.1f}",
            f"{r['peak_mb']:.0f} (+{r['peak_mb'] - r['idle_mb']:.0f})", f"{growth:.2f}", f"{r['sim_peak_mb']:.0f}",
            f"{r['others']:.1f}",
        ], ok))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 50k rows only")
    parser.add_argument("--sizes", help="comma list of row counts (overrides the default sizes)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma list of odata, enet, gp")
    parser.add_argument("--worker", nargs=2, metavar=("SOURCE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args(argv)
    if opts.worker:
        print(json.dumps(worker(opts.worker[0], int(opts.worker[1]))))
        return 0

    sizes = [int(s) for s in opts.sizes.split(",")] if opts.sizes else (
        [10_000, 50_000] if opts.quick else [10_000, 100_000, 1_000_000])
    sources = [s.strip() for s in opts.sources.split(",") if s.strip()]
    print_machine()
    print(f"# dry-run backfill of one entity per source (SYSPRO ApInvoice, GP payables); sizes {sizes}")
    results: list[dict[str, Any]] = []
    for source in sources:
        for n in sizes:
            r = run_json(["-m", "bench.backfill", "--worker", source, str(n)])
            results.append(r)
            print(f"  {source} {n:>9,}: {r['rows'] / r['wall']:,.0f} rows/s, peak {r['peak_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
    rows = figures(results)
    print()
    print(table(HEADERS, rows))
    print()
    print(f"targets: rows/s ≥ {TARGET_ROWS_PER_S:,.0f}; peak RSS ≤ {TARGET_PEAK_MB:.0f} MB; peak ÷ peak of the "
          f"smallest size ≤ {TARGET_GROWTH}; every row read is written to the outbox")
    print(verdict("backfill", rows))
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
