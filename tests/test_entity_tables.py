"""Every entity is complete: a template, a default route, and data in its simulator.

Adding an entity means its declaration and its template (plus a default route and seed rows for
the simulator); these tests fail for an entity that misses one. Each entity is really read from
its simulator and every record it yields is routed by the defaults.
"""

from __future__ import annotations

from string import Formatter
from typing import Any

import pytest

from erp_slack.model import normalise
from erp_slack.routing import DEFAULT_ROUTES, route
from erp_slack.slack.templates import TEMPLATES
from erp_slack.sources import all_entities
from erp_slack.sources.gp.entities import ENTITIES as GP_ENTITIES
from erp_slack.sources.syspro.entities import ENTITIES_ENET, ENTITIES_ODATA


def _read_all(client: Any, entity: Any) -> list[Any]:
    records = []
    with client:
        for page in client.pages(entity, since=None):
            records += [normalise(entity, client.company, row) for row in page.rows]
    return records


def _check(entity: Any, records: list[Any]) -> None:
    assert records, f"{entity.source}.{entity.name}: the simulator holds no {entity.table} rows"
    for record in records:
        decision = route(record, entity, DEFAULT_ROUTES)
        assert decision.channel, f"{entity.source}.{entity.name} {record.key}: {decision.reason}"
    for name in (entity.amount_field, entity.party_field, entity.status_field, entity.currency_field):
        assert name is None or name in entity.fields


def test_every_entity_has_a_template_whose_headline_it_can_fill() -> None:
    # Slots a source lacks are left out of a message; a headline must read whole.
    for entity in all_entities().values():
        template = TEMPLATES[entity.template]
        wanted = {name for _, name, _, _ in Formatter().parse(template.headline) if name}
        assert wanted <= set(entity.fields), f"{entity.name}: the headline needs {wanted - set(entity.fields)}"


@pytest.mark.parametrize("transport, entities", [("enet", ENTITIES_ENET), ("odata", ENTITIES_ODATA)])
def test_every_syspro_entity_has_simulator_data_and_a_default_route(syspro_client, transport, entities) -> None:
    for entity in entities:
        _check(entity, _read_all(syspro_client(transport), entity))


def test_every_gp_entity_has_simulator_data_and_a_default_route(gp_sim) -> None:
    for entity in GP_ENTITIES:
        _check(entity, _read_all(gp_sim.client(), entity))
