"""Pytest fixtures serving the syspro simulator on loopback.

* ``syspro_sim``: a fresh ``SysproSimulator`` served on ``127.0.0.1:0`` for one test, with the seed
  credentials and both API base URLs.
* ``syspro_audit``: a list that records audit events (``kinds`` lists their kinds).
* ``syspro_client``: a factory ``make(transport="enet", **overrides)`` building clients against
  ``syspro_sim`` that never really sleep (waits land in ``make.slept``) and are closed at teardown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import pytest

from simulators._http import serve_on_loopback
from simulators.syspro import ENET_PREFIX, ODATA_PREFIX, SysproSimulator


@dataclass
class SysproServed:
    """A running simulator: ``url`` is the origin; the credentials are the seed's."""

    sim: SysproSimulator
    url: str
    operator: str = "ENET01"
    password: str = "secret"
    company: str = "EDU1"
    company_password: str = ""
    odata_password: str = "odata-secret"

    @property
    def enet_url(self) -> str:
        return self.url + ENET_PREFIX

    @property
    def odata_url(self) -> str:
        return self.url + ODATA_PREFIX


class AuditLog(list):
    """Audit events as (kind, details) pairs."""

    def __call__(self, kind: str, details: Mapping[str, Any]) -> None:
        self.append((kind, dict(details)))

    @property
    def kinds(self) -> list[str]:
        return [k for k, _ in self]


@dataclass
class ClientFactory:
    served: SysproServed
    audit: AuditLog
    slept: list[float] = field(default_factory=list)
    made: list[Any] = field(default_factory=list)

    def __call__(self, transport: str = "enet", **overrides: Any) -> Any:
        from erp_slack.sources.syspro.client import connect

        s = self.served
        kwargs: dict[str, Any] = dict(
            base_url=s.url, operator=s.operator, company=s.company, operator_password=s.password,
            company_password=s.company_password, odata_password=s.odata_password, audit=self.audit,
            sleep=self.slept.append, timeout=5.0,
        )
        kwargs.update(overrides)
        client = connect(transport, **kwargs)
        self.made.append(client)
        return client


@pytest.fixture
def syspro_sim() -> Iterator[SysproServed]:
    """A fresh SYSPRO simulator on loopback for this test."""
    sim = SysproSimulator()
    with serve_on_loopback(sim) as served:
        yield SysproServed(sim=sim, url=served.url)


@pytest.fixture
def syspro_audit() -> AuditLog:
    """Records the audit events clients emit."""
    return AuditLog()


@pytest.fixture
def syspro_client(syspro_sim: SysproServed, syspro_audit: AuditLog) -> Iterator[Callable[..., Any]]:
    """Build SYSPRO clients against ``syspro_sim``; all are closed when the test ends."""
    factory = ClientFactory(syspro_sim, syspro_audit)
    yield factory
    for client in factory.made:
        client.close()
