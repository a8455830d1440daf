"""One run without Prefect, for end-to-end tests of the core against the simulators.

It calls the same core cycle the flow runs (``erp_slack.cycle.run_cycle``): real HTTP on
loopback, real SQL, the real failure policy; only Prefect's tasks are plain functions here.
"""

from __future__ import annotations

from typing import Any, Sequence

from erp_slack.cycle import RunSummary, SlackOut
from erp_slack.cycle import run_cycle as core_cycle
from erp_slack.model import Entity
from erp_slack.pipeline import Window
from erp_slack.routing import DEFAULT_ROUTES, Rule
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import DrainSettings
from erp_slack.store import Store

Cycle = RunSummary


def slack_out(slack: Any, ops_channel: str | None = None, **drain_settings: Any) -> SlackOut:
    """Delivery to a SlackSimServer, at its time scale; alerts go to ``ops_channel``."""
    settings = DrainSettings(time_scale=slack.sim.time_scale, **{"reconcile_after": 0.5, **drain_settings})
    return SlackOut(SlackGateway(slack.token, base_url=slack.url, timeout=5), settings, ops_channel=ops_channel)


def run_cycle(
    client: Any,
    entities: Sequence[Entity],
    store: Store,
    slack: Any | None,
    *,
    rules: Sequence[Rule] = DEFAULT_ROUTES,
    window: Window = Window(),
    dry_run: bool = False,
    first_run: str = "post",
    ops_channel: str | None = None,
    **drain_settings: Any,
) -> RunSummary:
    """Poll ``entities`` through ``client`` into ``store``; deliver to ``slack`` (a SlackSimServer) if given.

    The client was made with its own audit hook, so the cycle's is not passed to it.
    """
    return core_cycle(
        lambda audit: client, entities, store, slack_out(slack, ops_channel, **drain_settings) if slack is not None else None,
        source=client.source, company=client.company, rules=rules, window=window, dry_run=dry_run,
        first_run=first_run,
    )
