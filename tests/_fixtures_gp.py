"""Pytest fixtures serving the Dynamics GP simulator on loopback.

``gp_sim`` gives each test a fresh ``GpSimulator`` (Fabrikam seed data) over plain HTTP on
``127.0.0.1`` with a free port; ``gp_sim_tls`` serves one over HTTPS with a fresh ``trustme`` CA
and exposes the CA bundle path. ``gp_sim_factory`` builds more with any constructor argument.
Each yields a ``GpSimServer`` that can also build a ``GpClient`` pointed at it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from simulators.gp import GpSimulator

__all__ = ["GpSimServer", "gp_sim", "gp_sim_tls", "gp_sim_factory"]


@dataclass(frozen=True)
class GpSimServer:
    """A served GP simulator: what a test needs to point a client at it.

    Attributes:
        sim: The simulator, for control calls (``post_batch``, ``inject``, ``counters`` ...).
        url: The server root (``http://127.0.0.1:<port>`` or ``https://localhost:<port>``).
        base_url: ``<url>/GPService``, the ``base_url`` a ``GpClient`` takes.
        tenant: Tenant name in the URLs.
        company: The seeded company's name (``Fabrikam, Inc.``).
        username: The seeded Windows account (``CONTOSO\\svc-gp-poll``).
        password: Its password when the server started.
        ca_path: CA bundle (PEM) to pass as ``verify=`` when served over TLS, else None.
        transport: ``"sba"`` (REST, ``GpClient``) or ``"webservices"`` (SOAP,
            ``GpWebServicesClient``): the client ``client()`` builds; the simulator serves both.
    """

    sim: GpSimulator
    url: str
    base_url: str
    tenant: str
    company: str
    username: str
    password: str
    ca_path: str | None = None
    transport: str = "sba"

    @property
    def webservices_url(self) -> str:
        """``<url>/DynamicsGPWebServices``, the ``base_url`` of the Web Services transport."""
        return f"{self.url}/DynamicsGPWebServices"

    def client(self, **kwargs: Any) -> Any:
        """A client of this server's ``transport``; keyword arguments override the defaults.

        Defaults: the seeded credentials, ``verify=ca_path`` over TLS, a short timeout and a
        retry policy that never really sleeps.
        """
        from erp_slack.sources.gp.client import GpClient
        from erp_slack.sources.http import RetryPolicy

        kwargs.setdefault("verify", self.ca_path if self.ca_path else True)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("sleep", lambda seconds: None)
        kwargs.setdefault("retry", RetryPolicy(attempts=3, timeout=30.0))
        if self.transport == "webservices":
            from erp_slack.sources.gp.webservices import GpWebServicesClient

            kwargs.pop("tenant", None)
            return GpWebServicesClient(
                kwargs.pop("base_url", self.webservices_url),
                kwargs.pop("company", self.company),
                kwargs.pop("username", self.username),
                kwargs.pop("password", self.password),
                **kwargs,
            )
        return GpClient(
            kwargs.pop("base_url", self.base_url),
            kwargs.pop("tenant", self.tenant),
            kwargs.pop("company", self.company),
            kwargs.pop("username", self.username),
            kwargs.pop("password", self.password),
            **kwargs,
        )


@pytest.fixture
def gp_sim_factory() -> Iterator[Callable[..., GpSimServer]]:
    """Build served simulators on demand: ``gp_sim_factory(page_size=2, tls=True)``.

    ``tls`` picks HTTPS, ``transport`` the client ``client()`` builds; every other keyword goes
    to ``GpSimulator``. All are shut down and
    their temporary files removed when the test ends.
    """
    with contextlib.ExitStack() as stack:

        def make(*, tls: bool = False, transport: str = "sba", **kwargs: Any) -> GpSimServer:
            sim = stack.enter_context(GpSimulator(**kwargs))
            served = stack.enter_context(sim.serve(tls=tls))
            return GpSimServer(
                sim=sim, url=served.url, base_url=f"{served.url}/GPService", tenant=sim.tenant,
                company=sim.company, username=sim.username, password=sim.password, ca_path=sim.ca_path,
                transport=transport,
            )

        yield make


@pytest.fixture
def gp_sim(gp_sim_factory: Callable[..., GpSimServer]) -> GpSimServer:
    """A fresh default simulator over plain HTTP (payload envelope, unpaged, GL exposed)."""
    return gp_sim_factory()


@pytest.fixture
def gp_sim_tls(gp_sim_factory: Callable[..., GpSimServer]) -> GpSimServer:
    """A fresh default simulator over HTTPS; ``ca_path`` is the trustme CA bundle to verify with."""
    return gp_sim_factory(tls=True)

