"""SYSPRO: e.net Solutions REST and OData clients, and the entity tables."""

from erp_slack.sources.syspro.client import SysproEnetClient, SysproODataClient, connect
from erp_slack.sources.syspro.entities import ENTITIES, ENTITIES_ODATA, entities_for

__all__ = ["SysproEnetClient", "SysproODataClient", "connect", "ENTITIES", "ENTITIES_ODATA", "entities_for"]
