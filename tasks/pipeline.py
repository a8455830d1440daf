"""The pipeline's tasks: one per entity poll, one per delivery drain (never one per record)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from erp_slack.cycle import drain_step, poll_step
from erp_slack.errors import ConfigError, SourceAccessDenied, SourceAuthFailed, SourceUnavailable, SourceUnreachable
from erp_slack.model import Entity
from erp_slack.pipeline import PollResult, Window
from erp_slack.routing import Rule
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import DrainReport, DrainSettings
from erp_slack.sources.base import SourceClient
from erp_slack.store import Store

# Failures a task retry cannot cure: refused credentials or a refused resource stay refused
# until a person acts; a server out of reach was already retried by the client (the next
# scheduled run tries again); a bad backfill window or setting fails the same way every time.
_FINAL = (SourceAuthFailed, SourceAccessDenied, SourceUnreachable, ConfigError, ValueError)


def _retry_unless_final(task: Task, task_run: TaskRun, state: State) -> bool:
    try:
        state.result()
    except _FINAL:
        return False
    except SourceUnavailable as exc:
        return exc.retriable  # a refused request (SourceRefused) fails the same way again
    except Exception:
        return True
    return False


@task(
    retries=2, retry_delay_seconds=[10, 60], retry_jitter_factor=0.5, retry_condition_fn=_retry_unless_final,
    cache_policy=NO_CACHE, task_run_name="extract {entity.name}",
)
def extract_entity(
    client: SourceClient, entity: Entity, store: Store, rules: Sequence[Rule], window: Window, dry_run: bool,
    first_run: str, flow_run_id: str | None,
) -> PollResult:
    """Poll one entity into the outbox (the watermark moves only on success)."""
    return poll_step(client, entity, store, rules, window, dry_run, first_run, flow_run_id)


@task(retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE, task_run_name="deliver to Slack")
def deliver(
    store: Store, gateway: SlackGateway, settings: DrainSettings, entities: Mapping[tuple[str, str], Entity],
    flow_run_id: str | None, pacer: Callable[[str], None] | None = None,
) -> DrainReport:
    """Drain the outbox to Slack at Slack's pace; retrying is safe (claims and reconciliation)."""
    return drain_step(store, gateway, settings, entities, flow_run_id, pacer)
