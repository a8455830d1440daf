"""Microsoft Dynamics GP: the Service Based Architecture REST client and the entity table."""

from erp_slack.sources.gp.client import GpClient
from erp_slack.sources.gp.entities import ENTITIES

__all__ = ["GpClient", "ENTITIES"]
