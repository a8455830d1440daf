"""Store fixtures: a fresh SQLite file per test, and PostgreSQL in a throwaway schema.

PostgreSQL runs wherever ``ERP_SLACK_TEST_PG_URL`` names a server (``.ci/run`` sets it); each
test gets its own schema through ``search_path`` so parallel runs never see each other.
"""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from erp_slack.store import Store

PG_URL = os.environ.get("ERP_SLACK_TEST_PG_URL", "")


def _pg_schema_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _store_params() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    # Without a URL the PostgreSQL variant is not collected at all (not skipped): .ci/run
    # always sets it, so CI never silently loses it.
    if PG_URL:
        params.append(pytest.param("postgres", id="postgres", marks=pytest.mark.postgres))
    return params


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database URL for one test: SQLite by default, PostgreSQL when parametrized so."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        yield from _pg_schema_url()
    else:
        yield f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Any test that asks for `store` or `db_url` runs on every configured database.
    if "db_url" in metafunc.fixturenames:
        if not any(m.name == "sqlite_only" for m in metafunc.definition.iter_markers()):
            metafunc.parametrize("db_url", _store_params(), indirect=True)
