"""Prefect, only where flows are tested: one test harness (temporary API server) per session."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def block_names(prefect_harness: None) -> dict[str, str]:
    """Unique block names for one test, so tests never see each other's settings."""
    tag = uuid.uuid4().hex[:8]
    return {k: f"{k}-{tag}" for k in ("syspro", "gp", "slack", "audit")}
