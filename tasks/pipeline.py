"""The pipeline's tasks: one per entity poll, one per delivery drain (never one per record)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from erp_slack.errors import ConfigError, SourceAccessDenied, SourceAuthFailed, SourceUnavailable, SourceUnreachable
from erp_slack.model import Entity
from erp_slack.pipeline import PollResult, Window, poll_entity
from erp_slack.routing import Rule
from erp_slack.slack.send import DrainReport, Drainer, DrainSettings, SlackGateway
from erp_slack.sources.base import SourceClient
from erp_slack.store import Store


def _retry_unless_auth(task: Task, task_run: TaskRun, state: State) -> bool:
    # A wrong password stays wrong: retrying would only lock the account.
    try:
        state.result()
    except (SourceAuthFailed, SourceAccessDenied):
        return False  # refused credentials or a refused resource stay refused until a person acts
    except SourceUnreachable:
        return False  # the client already retried the connection; the next scheduled run tries again
    except SourceUnavailable as exc:
        # SYSPRO marks a refusal of the query itself (no access to a table) as not transient.
        return getattr(exc, "transient", True)
    except (ConfigError, ValueError):
        return False  # a bad backfill window or setting fails the same way every time
    except Exception:
        return True
    return False


@task(
    retries=2, retry_delay_seconds=[10, 60], retry_jitter_factor=0.5, retry_condition_fn=_retry_unless_auth,
    cache_policy=NO_CACHE, task_run_name="extract {entity.name}",
)
def extract_entity(
    client: SourceClient, entity: Entity, store: Store, rules: Sequence[Rule], window: Window, dry_run: bool,
    first_run: str, flow_run_id: str | None,
) -> PollResult:
    """Poll one entity into the outbox (the watermark moves only on success)."""
    return poll_entity(client, entity, store, rules, window=window, dry_run=dry_run, first_run=first_run,
                       flow_run_id=flow_run_id)


@task(retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE, task_run_name="deliver to Slack")
def deliver(
    store: Store, gateway: SlackGateway, settings: DrainSettings, entities: Mapping[tuple[str, str], Entity],
    flow_run_id: str | None, pacer: Callable[[str], None] | None = None,
) -> DrainReport:
    """Drain the outbox to Slack at Slack's pace; retrying is safe (claims and reconciliation)."""
    return Drainer(store, gateway, entities, settings=settings, flow_run_id=flow_run_id, pacer=pacer).drain()


