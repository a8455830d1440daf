"""``erp-slack``: everything a person runs by hand.

    erp-slack demo                         simulators + SQLite, both flows once, a summary
    erp-slack config validate FILE         check a configuration file
    erp-slack config apply FILE            save it as Prefect blocks and deployment parameters
    erp-slack run {syspro,gp} --config F   one poll cycle in this process
    erp-slack check --config FILE          ping every configured system; posts nothing
    erp-slack up [--config FILE]           local Prefect server, work pool, deployments, worker
    erp-slack down                         stop the worker and server `up` started
    erp-slack report --config FILE         what was posted, filtered, failed (Markdown or CSV)
    erp-slack requeue --config FILE        put failed (or dead) deliveries back in the queue
    erp-slack simulators                   run the three simulators in the foreground

Prefect is imported only inside the commands that need it, after the environment is set.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

__all__ = ["main"]


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _load(path: str) -> Any:
    from erp_slack.config import load_config

    return load_config(path)


def _describe(cfg: Any) -> list[str]:
    """What a configuration points at, with every secret left out."""
    lines = []
    if cfg.syspro is not None:
        s = cfg.syspro
        lines.append(f"SYSPRO ({s.transport}) {s.base_url} operator {s.operator} company {', '.join(s.company_list())}"
                     f"{'' if s.enabled else ' (disabled)'}")
    if cfg.dynamics_gp is not None:
        g = cfg.dynamics_gp
        lines.append(f"Dynamics GP {g.base_url} tenant {g.tenant} company {', '.join(g.company_list())} as {g.username}"
                     f"{'' if g.enabled else ' (disabled)'}")
    lines.append(f"Slack {cfg.slack.base_url or 'https://slack.com/api/'}; ops channel {cfg.slack.ops_channel or '(none)'}")
    from erp_slack.store import redact_url

    lines.append(f"Audit store {redact_url(cfg.audit.url.get_secret_value())}")
    lines.append(f"{len(cfg.routes) or 'default'} routing rules")
    for sm in cfg.slack.summaries:
        lines.append(f"Summary {sm.title!r} to {sm.channel} at {', '.join(t.strftime('%H:%M') for t in sm.at)} "
                     f"{sm.timezone}" + ("" if len(sm.days) == 7 else f" on {', '.join(sm.days)}"))
    return lines


# --- commands -----------------------------------------------------------------------------


def cmd_config_validate(args: argparse.Namespace) -> int:
    cfg = _load(args.file)
    console = _console()
    console.print(f"[green]OK[/green] {args.file}")
    for line in _describe(cfg):
        console.print(f"  {line}")
    return 0


def _prepare_prefect() -> None:
    from cli.up import prepare_prefect

    prepare_prefect()


def cmd_config_apply(args: argparse.Namespace) -> int:
    _prepare_prefect()
    from cli.apply import apply_config

    cfg = _load(args.file)
    console = _console()
    with console.status("Saving blocks…"):
        saved = apply_config(cfg, deployments=not args.no_deployments)
    for line in saved:
        console.print(f"  {line}")
    console.print("[green]Configuration applied.[/green]")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _prepare_prefect()
    from cli.apply import BLOCK_NAMES, apply_config, print_summary, run_flow

    if not args.debug:
        _console_without_tracebacks()
    cfg = _load(args.config)
    console = _console()
    with console.status("Saving blocks…"):
        apply_config(cfg, deployments=False)
    if args.source == "summaries":
        from flows.summaries import erp_summaries

        if not cfg.slack.summaries:
            raise SystemExit("error: the configuration has no [[slack.summaries]]")
        with console.status("Posting the summaries that are due…"):
            # Here a person waits for the answer: no retries (the deployment's runs have them).
            outcomes = erp_summaries.with_options(retries=0)(slack_block=BLOCK_NAMES["slack"],
                                                             audit_block=BLOCK_NAMES["audit"])
        for o in outcomes:
            console.print(f"{o['summary']}: {o['status']}" + (f" ({o['documents']} documents)"
                                                             if o["status"] == "posted" else ""))
        return 0
    what = "backfill" if (args.since or args.until) else "poll cycle"
    with console.status(f"Running one {what} of {args.source}{' (dry run)' if args.dry_run else ''}…"):
        summary = run_flow(args.source, cfg, dry_run=args.dry_run, since=args.since, until=args.until,
                           entities=args.entities.split(",") if args.entities else None, company=args.company)
    print_summary(console, summary)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from erp_slack.check import format_table, run_checks
    from erp_slack.routing import DEFAULT_ROUTES

    cfg = _load(args.config)
    console = _console()
    with console.status("Checking connections…"):
        results = run_checks(cfg, cfg.routes or list(DEFAULT_ROUTES))
    print(format_table(results))
    failed = [r for r in results if not r.ok]
    print()
    print(f"{len(results) - len(failed)} OK, {len(failed)} failed")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from erp_slack.report import report_markdown, write_csv

    store = _store(args)
    if args.csv:
        for path in write_csv(store, args.csv, days=args.days):
            print(f"wrote {path}")
    else:
        print(report_markdown(store, days=args.days))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from erp_slack.report import status_markdown

    print(status_markdown(_store(args)))
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    store = _store(args)
    n = store.requeue(status=args.status, channel=args.channel, to=args.to)
    moved = f" and moved to {args.to}" if args.to else ""
    store.audit("requeued", channel=args.to or args.channel,
                message=f"{n} {args.status} deliveries put back to pending{moved}")
    print(f"{n} {args.status} deliveries put back to pending{moved}; the next run delivers them.")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from cli.up import up

    return up(args)


def cmd_down(args: argparse.Namespace) -> int:
    from cli.up import down

    return down(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import demo

    return demo(args)


def cmd_simulators(args: argparse.Namespace) -> int:
    from cli.demo import serve_simulators_forever

    return serve_simulators_forever(args)


def _console_without_tracebacks() -> None:
    """Prefect's console log shows a failed run's traceback; at the terminal one line says it
    (``main``). Only the console handlers leave the traceback out — every other handler gets
    the record whole, so the flow run in the Prefect UI still fails with the full error — and
    ``--debug`` shows it here too. Prefect re-creates its handlers when a temporary server
    starts, so the class is adjusted rather than today's instances."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    format_record = PrefectConsoleHandler.format

    def format_without_traceback(self: logging.Handler, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return format_record(self, record)

    PrefectConsoleHandler.format = format_without_traceback  # type: ignore[method-assign]


def _store(args: argparse.Namespace) -> Any:
    from erp_slack.store import Store

    if args.db:
        return Store(args.db)
    if args.config:
        return Store(_load(args.config).audit.url.get_secret_value())
    raise SystemExit("give --config FILE or --db URL")


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="erp-slack", description="ERP (SYSPRO, Dynamics GP) → Slack notifications.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run both flows once against local simulators and show what was posted")
    d.add_argument("--keep", metavar="DIR", help="keep the demo's database and Prefect home in DIR")
    d.add_argument("--time-scale", type=float, default=10.0, help="how much faster than Slack's real rate to post")
    d.set_defaults(fn=cmd_demo)

    c = sub.add_parser("config", help="validate or apply a configuration file")
    csub = c.add_subparsers(dest="action", required=True)
    v = csub.add_parser("validate", help="check a configuration file")
    v.add_argument("file")
    v.set_defaults(fn=cmd_config_validate)
    a = csub.add_parser("apply", help="save the file as Prefect blocks and deployment parameters")
    a.add_argument("file")
    a.add_argument("--no-deployments", action="store_true", help="save blocks only")
    a.set_defaults(fn=cmd_config_apply)

    r = sub.add_parser("run", help="run one poll cycle of a source (or post the summaries due) in this process")
    r.add_argument("source", choices=["syspro", "gp", "summaries"])
    r.add_argument("--config", required=True)
    r.add_argument("--dry-run", action="store_true", help="record what would be posted; post nothing")
    r.add_argument("--since", help="backfill from this cursor value (date, timestamp or rowversion)")
    r.add_argument("--until", help="backfill up to (not including) this cursor value")
    r.add_argument("--entities", help="comma-separated entity names (default: all)")
    r.add_argument("--company", help="only this company (default: every company of the source)")
    r.add_argument("--debug", action="store_true", help="show Python tracebacks of a failed run")
    r.set_defaults(fn=cmd_run)

    k = sub.add_parser("check", help="log on to every configured system and check Slack; posts nothing")
    k.add_argument("--config", required=True)
    k.set_defaults(fn=cmd_check)

    u = sub.add_parser("up", help="one-machine production: server, work pool, blocks, deployments, worker")
    u.add_argument("--config", help="apply this configuration file too")
    u.add_argument("--project-dir", default=".", help="where prefect.yaml is (default: here)")
    u.add_argument("--no-worker", action="store_true", help="set everything up but do not start a worker")
    u.add_argument("--detach", action="store_true", help="leave the server and worker running in the background")
    u.add_argument("--port", type=int, default=4200, help="port of the local Prefect server (default 4200)")
    u.add_argument("--host", default="127.0.0.1",
                   help="address the Prefect server listens on (0.0.0.0 for workers on other hosts)")
    u.add_argument("--database", help="PostgreSQL URL for the Prefect server's own database (several hosts)")
    u.set_defaults(fn=cmd_up)

    dn = sub.add_parser("down", help="stop the worker and the Prefect server `up` started (keeps all data)")
    dn.set_defaults(fn=cmd_down)

    for name, fn, helptext in (("status", cmd_status, "per entity: last poll, last change, watermark, what waits"),
                               ("report", cmd_report, "counts of posted, filtered, failed deliveries"),
                               ("requeue", cmd_requeue, "put failed deliveries back to pending (rows failed as "
                                "'unverifiable' may already be in Slack: check the channel first, a requeue "
                                "may post them twice)")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--config")
        s.add_argument("--db", help="audit database URL (instead of --config)")
        if name == "report":
            s.add_argument("--days", type=int, default=7)
            s.add_argument("--csv", help="write CSV here instead of printing Markdown")
        elif name == "requeue":
            s.add_argument("--status", choices=["failed", "dead"], default="failed")
            s.add_argument("--channel", help="only rows routed to this channel")
            s.add_argument("--to", help="send them to this channel instead (after fixing a wrong route)")
        s.set_defaults(fn=fn)

    m = sub.add_parser("simulators", help="run the SYSPRO, GP and Slack simulators until Ctrl-C")
    m.set_defaults(fn=cmd_simulators)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Before Prefect is imported (it reads its settings then): no telemetry from any Prefect
    # server this command starts; a finance server has no business calling out.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # `run` and `demo` start a temporary Prefect server when none is configured; on a busy
    # machine it can take longer than Prefect's default wait (CI saw a run fail on it).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from sqlalchemy.exc import SQLAlchemyError

    from erp_slack.errors import ConfigError, ErpSlackError

    try:
        return int(args.fn(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except ErpSlackError as exc:
        if getattr(args, "debug", False):
            raise
        advice = getattr(exc, "advice", "")
        print(f"error: {exc}" + (f" — {advice}" if advice else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except SQLAlchemyError as exc:
        # The audit database: unreachable, wrong driver, wrong path. The URL is not repeated.
        print(f"audit database error: {type(exc).__name__}: {getattr(exc, 'orig', exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
