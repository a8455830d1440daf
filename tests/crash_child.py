"""Child process of the crash suite (``tests/test_crash.py``): one poll cycle, then exit.

The parent serves the simulators and kills this process with SIGKILL at chosen points, then
starts a fresh one, until a run completes. One run is the core cycle the flow runs
(``erp_slack.cycle.run_cycle``) without Prefect: poll every entity of one source into the SQL
outbox, then drain the outbox to Slack. Started as::

    python tests/crash_child.py --source syspro --db sqlite:////tmp/x/audit.db \\
        --erp-url http://127.0.0.1:PORT --slack-url http://127.0.0.1:PORT/api/ [--page-size N] ...

Secrets come from the environment, never argv (``ps`` shows argv): ``CRASH_ERP_PASSWORD`` and
``CRASH_SLACK_TOKEN``.

Protocol with the parent:

* ``ready`` on stdout once the imports are done (random-time kills count from there);
* exit 0: a complete run (every entity polled, nothing left ``pending`` or ``sending``);
* exit 3: the run finished but the outbox is not empty (the parent starts another child);
* anything else is a failure the parent reports with this process's stderr.

Imports are kept to the core (no Prefect, no pydantic configuration layer), because child
start-up is most of the suite's running time. The schema is created by the parent before the
first child starts, so ``Store`` is opened without running Alembic.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

# Run as a script, so the repository root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erp_slack.cycle import SlackOut, Undelivered, run_cycle  # noqa: E402
from erp_slack.slack.gateway import SlackGateway  # noqa: E402
from erp_slack.slack.send import DrainSettings  # noqa: E402
from erp_slack.store import Store  # noqa: E402

EXIT_COMPLETE = 0
EXIT_INCOMPLETE = 3
EXIT_BROKEN = 4  # rows ended failed/dead: a delivery was refused, not crashed


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--source", choices=("syspro", "gp", "gp-ws"), required=True)
    p.add_argument("--db", required=True, help="SQLAlchemy URL of the audit store (schema already created)")
    p.add_argument("--erp-url", required=True, help="SYSPRO origin, or GP's /GPService root")
    p.add_argument("--erp-user", required=True, help="SYSPRO operator or GP DOMAIN\\user")
    p.add_argument("--company", required=True, help="SYSPRO company id or GP company name")
    p.add_argument("--tenant", default="DefaultTenant", help="GP tenant")
    p.add_argument("--page-size", type=int, default=500, help="SYSPRO COMFND ReturnRows")
    p.add_argument("--slack-url", required=True, help="Slack Web API base URL ending in /api/")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--digest-threshold", type=int, default=5)
    p.add_argument("--digest-max", type=int, default=20)
    p.add_argument("--archive", action="store_true", help="route GL journal entries to monthly archive threads")
    return p.parse_args(argv)


def _client(args: argparse.Namespace, password: str, audit: Any) -> Any:
    if args.source == "syspro":
        from erp_slack.sources.syspro.client import connect

        return connect(
            "enet", base_url=args.erp_url, operator=args.erp_user, company=args.company,
            operator_password=password, company_password="", timeout=10.0, audit=audit,
            page_size=args.page_size,
        )
    if args.source == "gp-ws":  # Dynamics GP over Web Services (SOAP)
        from erp_slack.sources.gp.webservices import GpWebServicesClient

        return GpWebServicesClient(args.erp_url, args.company, args.erp_user, password, timeout=10.0, audit=audit)
    from erp_slack.sources.gp.client import GpClient

    return GpClient(args.erp_url, args.tenant, args.company, args.erp_user, password, timeout=10.0, audit=audit)


def _entities(args: argparse.Namespace) -> tuple[Any, ...]:
    if args.source == "syspro":
        from erp_slack.sources.syspro.entities import entities_for

        return entities_for("enet")
    from erp_slack.sources.gp.entities import ENTITIES

    return ENTITIES


def _rules(args: argparse.Namespace) -> tuple[Any, ...]:
    from erp_slack.routing import DEFAULT_ROUTES, Rule

    if not args.archive:
        return DEFAULT_ROUTES
    return (Rule(name="GL by month", entity="gl_journal", channel="#gl-postings", archive="month"), *DEFAULT_ROUTES)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    password = os.environ["CRASH_ERP_PASSWORD"]
    token = os.environ["CRASH_SLACK_TOKEN"]
    print("ready", flush=True)

    store = Store(args.db, migrate=False)
    # Only one child runs at a time, so every claim left ``sending`` belongs to a dead child:
    # a lease of zero makes this drainer reconcile all of them at once.
    settings = DrainSettings(
        lease=timedelta(0), time_scale=args.time_scale, digest_threshold=args.digest_threshold,
        digest_max=args.digest_max, reconcile_after=0.5, max_seconds=60.0,
    )
    slack = SlackOut(SlackGateway(token, base_url=args.slack_url, timeout=10), settings)
    try:
        summary = run_cycle(lambda audit: _client(args, password, audit), _entities(args), store, slack,
                            source=args.source, company=args.company, first_run="post", rules=_rules(args))
    except Undelivered as exc:  # refused rows are counted below
        summary = exc.summary
    halted = summary.halted

    counts = store.counts()
    store.dispose()
    if counts.get("failed") or counts.get("dead"):
        print(f"rows refused: {counts}", file=sys.stderr, flush=True)
        return EXIT_BROKEN
    if halted or counts.get("pending") or counts.get("sending"):
        print(f"incomplete: halted={halted!r} counts={counts}", file=sys.stderr, flush=True)
        return EXIT_INCOMPLETE
    return EXIT_COMPLETE


if __name__ == "__main__":
    sys.exit(main())
