"""From a configuration file to Prefect: blocks, deployment parameters, in-process runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Sequence

from blocks import AuditDatabase, DynamicsGpCredentials, SlackBot, SysproCredentials
from erp_slack.config import AppConfig
from erp_slack.routing import DEFAULT_ROUTES

__all__ = ["BLOCK_NAMES", "apply_config", "run_flow", "flow_parameters", "print_summary"]

# The block names the deployments in prefect.yaml use by default.
BLOCK_NAMES = {"syspro": "syspro", "gp": "dynamics-gp", "slack": "slack", "audit": "audit"}
_FLOWS = {"syspro": "syspro-to-slack", "gp": "gp-to-slack"}
OPS_WEBHOOK = "erp-slack-ops"  # the notification block the server's missed-run automations use


def save_blocks(cfg: AppConfig) -> list[str]:
    """Save every configured system as a block; returns what was saved (no secrets)."""
    saved = []
    if cfg.syspro is not None:
        s = cfg.syspro
        SysproCredentials.of(s).save(BLOCK_NAMES["syspro"], overwrite=True)
        saved.append(f"block {BLOCK_NAMES['syspro']}: SYSPRO {s.transport} {s.base_url} "
                     f"company {', '.join(s.company_list())}")
    if cfg.dynamics_gp is not None:
        g = cfg.dynamics_gp
        DynamicsGpCredentials.of(g).save(BLOCK_NAMES["gp"], overwrite=True)
        saved.append(f"block {BLOCK_NAMES['gp']}: Dynamics GP {g.base_url} company {', '.join(g.company_list())}")
    sl = cfg.slack
    SlackBot.of(sl).save(BLOCK_NAMES["slack"], overwrite=True)
    saved.append(f"block {BLOCK_NAMES['slack']}: Slack bot, ops channel {sl.ops_channel or '(none)'}")
    AuditDatabase.of(cfg.audit).save(BLOCK_NAMES["audit"], overwrite=True)
    saved.append(f"block {BLOCK_NAMES['audit']}: audit store")
    if sl.ops_channel:
        ops_webhook(cfg).save(OPS_WEBHOOK, overwrite=True)
        saved.append(f"block {OPS_WEBHOOK}: the Prefect server's own line to {sl.ops_channel} (missed runs)")
    return saved


def ops_webhook(cfg: AppConfig) -> Any:
    """A notification block through which the Prefect server itself posts to the ops channel:
    it must speak when no flow runs at all (a worker that is down cannot)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    sl = cfg.slack
    api = sl.base_url or "https://slack.com/api/"
    return CustomWebhookNotificationBlock(
        name="erp-slack ops channel", url=api + "chat.postMessage", method="POST",
        headers={"Authorization": "Bearer {{token}}", "Content-Type": "application/json; charset=utf-8"},
        json_data={"channel": sl.ops_channel, "text": "{{subject}}\n{{body}}"},
        secrets={"token": sl.token.get_secret_value()},
        # A Slack API address of your own (a proxy, the simulator) may be a private one.
        allow_private_urls=sl.base_url is not None,
    )


def late_after(cfg: AppConfig, source: str) -> timedelta | None:
    """How long a source's scheduled runs may go without one completing before ops hear of it."""
    if source == "syspro" and cfg.syspro is not None:
        return cfg.syspro.late_after or 3 * timedelta(minutes=cfg.syspro.interval_minutes)
    if source == "gp" and cfg.dynamics_gp is not None:
        return cfg.dynamics_gp.late_after or timedelta(hours=26)
    return None


def _watch_runs(client: Any, cfg: AppConfig, dep: Any, label: str, late: timedelta | None) -> str | None:
    """Keep one Prefect automation per scheduled deployment: when no run of it has completed
    for ``late`` after the last one did, the server posts to the ops channel (once; the first
    run after the gap says runs are back: ``erp_slack.cycle.Watch.late_after``)."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    name = f"erp-slack: {label} has no completed run"
    for old in client.read_automations_by_name(name):
        client.delete_automation(old.id)
    if late is None or not cfg.slack.ops_channel:
        return None
    block = client.read_block_document_by_name(OPS_WEBHOOK, "custom-webhook")
    notify = dict(block_document_id=block.id)
    client.create_automation(AutomationCore(
        name=name,
        description=f"Created by erp-slack: tells {cfg.slack.ops_channel} when {label} misses its runs.",
        # After each completed run, expect the next within ``late``. Bucketed by deployment (not
        # one shared window, which Prefect re-opens every interval), firing ends the watch until
        # a run completes again: a long outage is one message, not one per interval.
        trigger=EventTrigger(
            after={"prefect.flow-run.Completed"}, expect={"prefect.flow-run.Completed"},
            for_each={"related:deployment:prefect.resource.id"},
            match_related={"prefect.resource.id": f"prefect.deployment.{dep.id}"},
            posture=Posture.Proactive, threshold=1, within=late,
        ),
        actions=[SendNotification(
            **notify, subject=f":warning: erp-slack: no run of {label} has completed for {_human(late)}",
            body="The worker may be down, or every run is failing: see the flow runs in the Prefect UI, "
                 "`erp-slack status`, and the worker's log.",
        )],
    ))
    return f"ops hear of it when no run of {label} completes for {_human(late)}"


def _human(d: timedelta) -> str:
    minutes = d.total_seconds() / 60
    if minutes < 1:
        return f"{d.total_seconds():g} seconds"
    return f"{minutes:g} minutes" if minutes < 120 else f"{minutes / 60:g} hours"


def flow_parameters(cfg: AppConfig, source: str) -> dict[str, Any]:
    """The deployment parameters a configuration implies for one source's flow."""
    section = cfg.syspro if source == "syspro" else cfg.dynamics_gp
    routes = [r.model_dump(mode="json", exclude_defaults=True) for r in (cfg.routes or DEFAULT_ROUTES)]
    params: dict[str, Any] = {"routes": routes}
    if section is not None:
        params["first_run"] = section.first_run
        if section.entities:
            params["entities"] = list(section.entities)
        if section.silence_after:
            params["silence_after"] = {k: _minutes(v) for k, v in section.silence_after.items()}
        late = late_after(cfg, source)
        if late is not None and cfg.slack.ops_channel:
            params["late_after"] = _minutes(late)
    return params


def _minutes(d: timedelta) -> str:
    return f"{d.total_seconds() / 60:g}m"


def update_deployments(cfg: AppConfig) -> list[str]:
    """Write routes and entity choices into the source deployments on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    done = []
    with get_client(sync_client=True) as client:
        for source, flow_name in _FLOWS.items():
            section = cfg.syspro if source == "syspro" else cfg.dynamics_gp
            deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
            for dep in deployments:
                implied = flow_parameters(cfg, source)
                params = {**(dep.parameters or {}), **implied}
                for optional in ("entities", "silence_after", "late_after"):
                    if optional not in implied:
                        params.pop(optional, None)  # the file no longer sets it: drop the old value
                enabled = section is not None and section.enabled
                # A source not configured must not run on a schedule; re-enabling resumes it.
                update: dict[str, Any] = {"parameters": params, "paused": not enabled}
                client.update_deployment(dep.id, DeploymentUpdate(**update))
                changes = []
                for sched in client.read_deployment_schedules(dep.id):
                    new = _schedule_for(cfg, sched.slug)
                    if new is None:
                        continue
                    before, after = _describe_schedule(sched.schedule), _describe_schedule(new)
                    if before != after:
                        client.update_deployment_schedule(dep.id, sched.id, schedule=new)
                        changes.append(f"schedule now {after} (was {before})")
                    else:
                        changes.append(f"schedule unchanged: {after}")
                    watched = _watch_runs(client, cfg, dep, f"{flow_name}/{dep.name}",
                                          late_after(cfg, source) if enabled else None)
                    if watched:
                        changes.append(watched)
                done.append(f"deployment {flow_name}/{dep.name}: parameters updated"
                            + "".join(f"; {c}" for c in changes)
                            + ("" if enabled else " (paused: source not configured)"))
        done += _update_summaries(client, cfg)
    return done


SUMMARIES_FLOW = "erp-slack-summaries"
_CRON_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}


def summary_schedules(cfg: AppConfig) -> list[Any]:
    """One cron schedule per distinct summary time, days and time zone, in that zone (so a
    09:00 summary stays at 09:00 across daylight-saving changes)."""
    from prefect.client.schemas.schedules import CronSchedule

    crons: dict[tuple[str, str], None] = {}
    for s in cfg.slack.summaries:
        days = "*" if len(set(s.days)) == 7 else ",".join(str(d) for d in sorted({_CRON_DAYS[x] for x in s.days}))
        for at in s.at:
            crons[(f"{at.minute} {at.hour} * * {days}", s.timezone)] = None
    return [CronSchedule(cron=cron, timezone=tz) for cron, tz in sorted(crons)]


def _update_summaries(client: Any, cfg: AppConfig) -> list[str]:
    """Give the summaries deployment the schedules the configuration asks for (replacing what it
    had), and pause it when there is nothing to post."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    wanted = summary_schedules(cfg)
    done = []
    for dep in client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[SUMMARIES_FLOW]))):
        have = client.read_deployment_schedules(dep.id)
        if sorted(_describe_schedule(h.schedule) for h in have) != sorted(_describe_schedule(w) for w in wanted):
            for h in have:
                client.delete_deployment_schedule(dep.id, h.id)
            if wanted:
                client.create_deployment_schedules(dep.id, [(w, True) for w in wanted])
        client.update_deployment(dep.id, DeploymentUpdate(paused=not wanted))
        titles = ", ".join(f"{s.title!r} to {s.channel}" for s in cfg.slack.summaries)
        done.append(f"deployment {SUMMARIES_FLOW}/{dep.name}: "
                    + (f"{titles}; " + "; ".join(_describe_schedule(w) for w in wanted) if wanted
                       else "paused (no [[slack.summaries]] configured)"))
    return done


def _schedule_for(cfg: AppConfig, slug: str | None) -> Any:
    """The schedule the configuration asks for, for the schedule slugs prefect.yaml defines.

    GP's daily run is a cron in the configured time zone, so it keeps its local time across
    daylight-saving changes (on the night a spring-forward skips the hour, it runs at the first
    time that exists, and the next day at its own time again).
    """
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    if slug == "syspro-interval" and cfg.syspro is not None:
        return IntervalSchedule(interval=timedelta(minutes=cfg.syspro.interval_minutes),
                                anchor_date=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")), timezone="UTC")
    if slug == "gp-daily" and cfg.dynamics_gp is not None:
        sched = cfg.dynamics_gp.schedule
        return CronSchedule(cron=f"{sched.at.minute} {sched.at.hour} * * *", timezone=sched.timezone)
    return None


def _describe_schedule(schedule: Any) -> str:
    """A schedule as a person says it ("every 10 minutes", "daily at 07:30 Europe/Berlin")."""
    cron = getattr(schedule, "cron", None)
    if cron is not None:
        fields = cron.split()
        tz = getattr(schedule, "timezone", None) or "UTC"
        if len(fields) == 5 and fields[2:4] == ["*", "*"] and fields[0].isdigit() and fields[1].isdigit():
            days = "daily" if fields[4] == "*" else _cron_days(fields[4])
            return f"{days} at {int(fields[1]):02d}:{int(fields[0]):02d} {tz}"
        return f"cron {cron} {tz}"
    interval = getattr(schedule, "interval", None)
    if interval is None:
        return str(schedule)
    minutes = interval.total_seconds() / 60
    return f"every {minutes:g} minutes"


def _cron_days(field: str) -> str:
    names = {str(n): d.title() for d, n in _CRON_DAYS.items()}
    return ",".join(names.get(x, x) for x in field.split(","))


def apply_config(cfg: AppConfig, *, deployments: bool = True) -> list[str]:
    """Save blocks, then (if a server has our deployments) their parameters."""
    lines = save_blocks(cfg)
    if deployments:
        lines += update_deployments(cfg) or ["no deployments found yet (run `erp-slack up` to create them)"]
    return lines


def run_flow(
    source: str, cfg: AppConfig, *, dry_run: bool = False, since: str | None = None, until: str | None = None,
    entities: Sequence[str] | None = None, company: str | None = None,
) -> dict[str, Any]:
    """Run one cycle of a source's flow in this process, with the configuration's routes."""
    from erp_slack.routing import Rule

    section = cfg.syspro if source == "syspro" else cfg.dynamics_gp
    if company and section is not None and company not in section.company_list():
        raise SystemExit(f"error: unknown company {company!r}; [{'syspro' if source == 'syspro' else 'dynamics_gp'}] "
                         f"has {', '.join(section.company_list())}")
    params = flow_parameters(cfg, source)
    routes = [Rule.model_validate(r) for r in params["routes"]]
    chosen = list(entities) if entities else params.get("entities")
    common = dict(entities=chosen, routes=routes, dry_run=dry_run, since=since, until=until,
                  first_run=params.get("first_run", "baseline"), silence_after=params.get("silence_after"),
                  company=company,
                  slack_block=BLOCK_NAMES["slack"], audit_block=BLOCK_NAMES["audit"])
    if source == "syspro":
        if cfg.syspro is None:
            raise SystemExit("the configuration has no [syspro] section")
        from flows.syspro import syspro_to_slack

        return syspro_to_slack(syspro_block=BLOCK_NAMES["syspro"], **common)
    if cfg.dynamics_gp is None:
        raise SystemExit("the configuration has no [dynamics_gp] section")
    from flows.gp import gp_to_slack

    return gp_to_slack(gp_block=BLOCK_NAMES["gp"], **common)


def print_summary(console: Any, summary: dict[str, Any]) -> None:
    """A run's summary as a table on the console: per entity what was read, then delivery (per
    company when the run polled several)."""
    from rich.table import Table

    if "companies" in summary:
        for one in summary["companies"].values():
            print_summary(console, one)
        return

    from erp_slack.model import readable_watermark

    table = Table(title=f"{summary['source']} · company {summary['company']}" + (" (dry run)" if summary["dry_run"] else ""))
    for col in ("entity", "rows read", "new", "updated", "held back", "dry run", "quarantined", "read up to"):
        table.add_column(col)
    for p in summary["polls"]:
        table.add_row(p["entity"], str(p["rows_seen"]), str(p["new"]), str(p["updated"]), str(p["filtered"]),
                      str(p["dry_run_rows"]), str(p["bad"]), readable_watermark(p["watermark_after"]))
    console.print(table)
    console.print(
        f"Delivered {summary['delivered_records']} records in {summary['messages']} Slack messages; "
        f"{summary['failed']} failed, {summary['dead']} dead, {summary['pending_left']} pending"
        + (f", {summary['in_flight']} still sending under a claim." if summary.get("in_flight") else ".")
    )
