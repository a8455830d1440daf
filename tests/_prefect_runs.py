"""Helpers for tests that drive a real Prefect server from outside: ports, run ids, run states."""

from __future__ import annotations

import socket
import time

import httpx

__all__ = ["free_port", "run_id", "wait_done"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_id(stdout: str) -> str:
    """The flow run id `prefect deployment run` printed."""
    for line in stdout.splitlines():
        if "UUID:" in line:
            return line.split("UUID:")[1].strip()
    raise AssertionError(f"no flow run id in: {stdout}")


def wait_done(api: str, flow_run: str, timeout: float = 240) -> str:
    """The flow run's final state type (or the last one seen when ``timeout`` runs out)."""
    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{flow_run}", timeout=10).json()["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(1)
    return state
