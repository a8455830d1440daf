"""Prefect blocks: one per external system. They hold settings and build core clients.

Register them with ``prefect block register -m blocks`` (``erp-slack up`` does it for you).
"""

from blocks.audit import AuditDatabase
from blocks.gp import DynamicsGpCredentials
from blocks.slack import SlackBot
from blocks.syspro import SysproCredentials

__all__ = ["AuditDatabase", "DynamicsGpCredentials", "SlackBot", "SysproCredentials", "ALL_BLOCKS"]

ALL_BLOCKS = (SysproCredentials, DynamicsGpCredentials, SlackBot, AuditDatabase)
