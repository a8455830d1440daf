"""The offline demo: SYSPRO, GP and Slack simulators on loopback, both flows once, a summary.

Everything lives in a temporary folder (Prefect home, SQLite audit store) that is removed at the
end unless ``--keep DIR`` is given; nothing is left running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["demo", "serve_simulators_forever", "simulators_running"]


@contextlib.contextmanager
def simulators_running(time_scale: float = 1.0) -> Iterator[dict[str, Any]]:
    """The three simulators served on loopback (free ports), with what a config needs."""
    from simulators._http import serve_on_loopback
    from simulators.gp import GpSimulator
    from simulators.slack import SlackSimulator
    from simulators.syspro import SysproSimulator

    syspro, gp, slack = SysproSimulator(), GpSimulator(), SlackSimulator(time_scale=time_scale)
    with serve_on_loopback(syspro) as s, serve_on_loopback(gp) as g, serve_on_loopback(slack) as k:
        yield {
            "syspro": syspro, "gp": gp, "slack": slack,
            "syspro_url": s.url, "gp_url": g.url + "/GPService", "slack_url": k.url + "/api/",
        }


def demo_config(sims: dict[str, Any], audit_url: str, time_scale: float) -> Any:
    """A configuration pointing at the running simulators (their seeded credentials)."""
    from datetime import datetime, timezone

    from erp_slack.config import parse_config
    from erp_slack.routing import DEFAULT_ROUTES

    gp = sims["gp"]
    routes = [r.model_dump(mode="json", exclude_defaults=True) for r in DEFAULT_ROUTES]
    # GL postings go to their month's archive thread; AP journals stay in the channel.
    routes.insert(-1, {"name": "GL postings by month", "entity": "gl_journal", "channel": "#gl-postings",
                       "archive": "month"})
    now = datetime.now(timezone.utc)
    return parse_config({
        "syspro": {"transport": "enet", "base_url": sims["syspro_url"], "operator": "ENET01",
                   "operator_password": "secret", "company_id": "EDU1", "first_run": "post"},
        "dynamics_gp": {"base_url": sims["gp_url"], "tenant": gp.tenant, "company": "Fabrikam, Inc.",
                        "username": gp.username, "password": gp.password, "first_run": "post"},
        "slack": {"token": sims["slack"].token, "base_url": sims["slack_url"], "ops_channel": "#finance-alerts",
                  "time_scale": time_scale,
                  # Due a moment ago, so the demo's run of the summaries posts it.
                  "summaries": [{"title": "Purchase orders not yet received", "channel": "#purchasing",
                                 "at": [f"{now:%H:%M}"], "entity": "purchase_order",
                                 "statuses": ["New", "Released", "Change Order"]}]},
        "audit": {"url": audit_url},
        "routes": routes,
    })


def demo(args: argparse.Namespace) -> int:
    home = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="erp-slack-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    # A private Prefect home: the demo never touches the user's own Prefect data or server.
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from rich.console import Console

    from cli.apply import BLOCK_NAMES, apply_config, print_summary, run_flow

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    audit_url = f"sqlite:///{home / 'audit.db'}"
    try:
        step(console, "Starting the SYSPRO, Dynamics GP and Slack simulators on loopback")
        with simulators_running(args.time_scale) as sims:
            console.print(f"  SYSPRO {sims['syspro_url']}, GP {sims['gp_url']}, Slack {sims['slack_url']}")
            cfg = demo_config(sims, audit_url, args.time_scale)
            step(console, "Starting a private Prefect API and saving the configuration as blocks (about 10 s)")
            apply_config(cfg, deployments=False)
            for source, label in (("syspro", "SYSPRO"), ("gp", "Dynamics GP")):
                step(console, f"Running the {label} flow: poll each entity, queue, deliver to Slack")
                summary = run_flow(source, cfg)
                print_summary(console, summary)
            step(console, "A purchase order moves on in Dynamics GP (released, then received): "
                          "the GP flow runs after each change")
            sims["gp"].set_po_status("PO2109", "Released")
            print_summary(console, run_flow("gp", cfg))
            sims["gp"].receive_po("PO2109")
            print_summary(console, run_flow("gp", cfg))
            step(console, "Posting the scheduled summary that is due (the summaries deployment does this at its times)")
            from flows.summaries import erp_summaries

            erp_summaries(slack_block=BLOCK_NAMES["slack"], audit_block=BLOCK_NAMES["audit"])
            _print_slack(console, sims["slack"])
            _print_previews(console, sims["slack"])
            _print_living(console, sims["slack"])
            _print_archive(console, sims["slack"])
            _print_summary_message(console, sims["slack"])
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    console.print()
    console.print("Next: copy erp-slack.example.toml, point it at your systems, run "
                  "`erp-slack check --config FILE`, then `erp-slack up --config FILE`.")
    if args.keep:
        console.print(f"Audit store kept at {home / 'audit.db'}: try `erp-slack report --db {audit_url}`.")
    return 0


def step(console: Any, text: str) -> None:
    """One progress line, printed at once (a spinner shows nothing when output is not a terminal)."""
    console.print(f"[bold]→ {text}…[/bold]")
    sys.stdout.flush()


def _print_previews(console: Any, slack: Any, count: int = 4) -> None:
    """A few messages as a person sees them in Slack: one per channel, an update if there is one."""
    from erp_slack.slack.render import preview

    shown: list[dict[str, Any]] = []
    by_channel: dict[str, dict[str, Any]] = {}
    for m in slack.posted():
        by_channel.setdefault(m["channel_name"], m)
    shown += list(by_channel.values())[: count - 1]
    update = next((m for m in slack.posted() if "What changed" in str(m.get("blocks"))), None)
    if update is not None and update not in shown:
        shown.append(update)
    console.print()
    console.print("[bold]What people see in Slack[/bold] (text rendering of the Block Kit messages):")
    for m in shown:
        console.print()
        console.print(f"#{m['channel_name']}", style="bold")
        console.print(preview(m.get("blocks") or []), markup=False, highlight=False)


def _print_living(console: Any, slack: Any) -> None:
    """A document's living message as it stands now, with the replies in its thread."""
    from erp_slack.slack.render import ARCHIVE_EVENT, preview

    posted = slack.posted()
    threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in posted:
        if m.get("thread_ts") and m["thread_ts"] != m["ts"]:
            threads.setdefault((m["channel"], m["thread_ts"]), []).append(m)
    parent = next((m for m in posted if (m["channel"], m["ts"]) in threads
                   and (m.get("metadata") or {}).get("event_type") != ARCHIVE_EVENT), None)
    if parent is None:
        return
    console.print()
    console.print("[bold]One message per document[/bold]: its first message, edited to show where it "
                  f"stands ({len(parent['edits'])} edits), and a reply in its thread per change:")
    console.print()
    console.print(f"#{parent['channel_name']}", style="bold")
    console.print(preview(parent.get("blocks") or []), markup=False, highlight=False)
    for reply in threads[(parent["channel"], parent["ts"])]:
        console.print("  ↳ " + preview(reply.get("blocks") or []), markup=False, highlight=False)


def _print_archive(console: Any, slack: Any, replies: int = 3) -> None:
    """A period's archive thread: its parent with the period's totals, and its first replies."""
    from erp_slack.slack.render import ARCHIVE_EVENT, preview

    posted = slack.posted()
    parent = next((m for m in posted if (m.get("metadata") or {}).get("event_type") == ARCHIVE_EVENT), None)
    if parent is None:
        return
    thread = [m for m in posted if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]]
    console.print()
    console.print(f"[bold]A month's archive thread[/bold]: one parent per period with its running totals, each "
                  f"posting a reply ({len(thread)} {'reply' if len(thread) == 1 else 'replies'}):")
    console.print()
    console.print(f"#{parent['channel_name']}", style="bold")
    console.print(preview(parent.get("blocks") or []), markup=False, highlight=False)
    for reply in thread[:replies]:
        console.print("  ↳ " + preview(reply.get("blocks") or []), markup=False, highlight=False)
    if len(thread) > replies:
        console.print(f"  ↳ … {len(thread) - replies} more")


def _print_summary_message(console: Any, slack: Any) -> None:
    """The scheduled summary as posted."""
    from erp_slack.slack.render import SUMMARY_EVENT, preview

    message = next((m for m in slack.posted() if (m.get("metadata") or {}).get("event_type") == SUMMARY_EVENT), None)
    if message is None:
        return
    console.print()
    console.print("[bold]A scheduled summary[/bold] (at set times of day: the documents now in a state):")
    console.print()
    console.print(f"#{message['channel_name']}", style="bold")
    console.print(preview(message.get("blocks") or []), markup=False, highlight=False)


def _print_slack(console: Any, slack: Any) -> None:
    from rich.table import Table

    table = Table(title="What the Slack simulator received")
    for col in ("channel", "messages", "records", "first message"):
        table.add_column(col)
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for m in slack.posted():
        by_channel.setdefault(m["channel_name"], []).append(m)
    for name, msgs in sorted(by_channel.items()):
        records = sum(len(((m.get("metadata") or {}).get("event_payload") or {}).get("deliveries", [])) for m in msgs)
        table.add_row(f"#{name}", str(len(msgs)), str(records), (msgs[0]["text"] or "")[:70])
    console.print(table)


def serve_simulators_forever(args: argparse.Namespace) -> int:
    """Run the three simulators until Ctrl-C, printing where they are and how to log on."""
    import threading

    with simulators_running() as sims:
        gp = sims["gp"]
        syspro_root, gp_root = sims["syspro_url"], sims["gp_url"].removesuffix("/GPService")
        slack_root = sims["slack_url"].removesuffix("/api/")
        print(f"SYSPRO  {syspro_root}  operator ENET01 / secret, company EDU1 (OData password odata-secret)")
        print(f"GP      {sims['gp_url']}  tenant {gp.tenant}, company Fabrikam, Inc., user {gp.username} / {gp.password}")
        print(f"Slack   {sims['slack_url']}  token {sims['slack'].token}")
        print()
        print("Control them from another shell (no authentication; loopback only):")
        print(f"  new SYSPRO invoice:  curl -X POST {syspro_root}/__sim/invoices "
              """-d '{"supplier": "0000001", "amount": "1234.50"}'""")
        print(f"  pay it:              curl -X POST {syspro_root}/__sim/invoices/pay "
              """-d '{"supplier": "0000001", "invoice": "INV-90001"}'""")
        print(f"  new GP invoice:      curl -X POST {gp_root}/__sim/add_invoice "
              """-d '{"vendor_id": "ACETRAVE0001", "document_number": "INV-1", "amount": "99.00", "posted": true}'""")
        print(f"  what Slack got:      curl {slack_root}/__sim/messages")
        print("Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0
