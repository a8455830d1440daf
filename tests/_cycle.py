"""One poll cycle without Prefect, for end-to-end tests of the core against the simulators.

It does what the flow body does (flows/pipeline.py): poll each entity into the outbox, then
drain the outbox to Slack. Real HTTP on loopback, real SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from erp_slack.model import Entity
from erp_slack.pipeline import PollResult, Window, poll_entity
from erp_slack.routing import DEFAULT_ROUTES, Rule
from erp_slack.slack.send import DrainReport, Drainer, DrainSettings, SlackGateway
from erp_slack.sources import all_entities
from erp_slack.store import Store


@dataclass
class Cycle:
    polls: list[PollResult]
    drain: DrainReport | None

    @property
    def new(self) -> int:
        return sum(p.new for p in self.polls)

    @property
    def updated(self) -> int:
        return sum(p.updated for p in self.polls)

    @property
    def bad(self) -> int:
        return sum(p.bad for p in self.polls)


def run_cycle(
    client: Any,
    entities: Sequence[Entity],
    store: Store,
    slack: Any | None,
    *,
    rules: Sequence[Rule] = DEFAULT_ROUTES,
    window: Window = Window(),
    dry_run: bool = False,
    **drain_settings: Any,
) -> Cycle:
    """Poll ``entities`` through ``client`` into ``store``; drain to ``slack`` (a SlackSimServer) if given."""
    with client:
        polls = [poll_entity(client, e, store, rules, window=window, dry_run=dry_run) for e in entities]
    report = None
    if slack is not None and not dry_run:
        settings = DrainSettings(time_scale=slack.sim.time_scale, reconcile_after=0.5, **drain_settings)
        gateway = SlackGateway(slack.token, base_url=slack.url, timeout=5)
        report = Drainer(store, gateway, all_entities(), settings=settings).drain()
    return Cycle(polls, report)
