"""Pytest fixtures serving the Slack simulator on loopback.

``slack_sim`` gives each test a fresh ``SlackSimulator`` (seeded Acme Bearings workspace) on
``127.0.0.1`` with a free port. ``slack_sim_factory`` builds more, with any constructor argument,
for tests that need another time scale, rate limits off, or two workspaces.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from simulators._http import serve_on_loopback
from simulators.slack import SlackSimulator

__all__ = ["SlackSimServer", "SLACK_SIM_TIME_SCALE", "slack_sim", "slack_sim_factory"]

# Tests run the rate model 20 times faster than Slack (20 messages/s per channel), so real
# pacing stays legal while a client that ignores 429s still gets caught within milliseconds.
SLACK_SIM_TIME_SCALE = 20.0


@dataclass(frozen=True)
class SlackSimServer:
    """A simulator being served: what a test needs to point a client at it.

    Attributes:
        sim: the simulator itself, for ``inject``, ``posted``, ``calls`` and friends.
        url: base URL ending in ``/api/``, ready for ``WebClient(base_url=...)``.
        root: the server root (``http://127.0.0.1:<port>``), for ``/__sim/`` and ``/<method>``.
        token: the valid bot token.
    """

    sim: SlackSimulator
    url: str
    root: str
    token: str

    def client(self, **kwargs: Any) -> Any:
        """A ``slack_sdk.WebClient`` for this server, with no retry handlers unless given.

        Retries off by default: the built-in connection retry would re-send a post that Slack
        may already have stored (reference, STYLE point 17).
        """
        from slack_sdk import WebClient

        kwargs.setdefault("retry_handlers", [])
        kwargs.setdefault("timeout", 5)
        return WebClient(base_url=self.url, token=kwargs.pop("token", self.token), **kwargs)


@pytest.fixture
def slack_sim_factory() -> Iterator[Callable[..., SlackSimServer]]:
    """Build served simulators on demand: ``slack_sim_factory(time_scale=50, rate_limits=False)``.

    Keyword arguments go to ``SlackSimulator``; ``time_scale`` defaults to
    ``SLACK_SIM_TIME_SCALE``. Every server is shut down when the test ends.
    """
    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> SlackSimServer:
            kwargs.setdefault("time_scale", SLACK_SIM_TIME_SCALE)
            sim = SlackSimulator(**kwargs)
            served = stack.enter_context(serve_on_loopback(sim))
            return SlackSimServer(sim=sim, url=served.url + "/api/", root=served.url, token=sim.token)

        yield make


@pytest.fixture
def slack_sim(slack_sim_factory: Callable[..., SlackSimServer]) -> SlackSimServer:
    """A fresh default simulator for one test: rate limits on, ``SLACK_SIM_TIME_SCALE`` times faster."""
    return slack_sim_factory()
