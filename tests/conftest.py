"""Shared pytest set-up: the simulator fixtures live in one module per simulator."""

pytest_plugins = [
    "tests._fixtures_store",
    "tests._fixtures_slack",
    "tests._fixtures_syspro",
    "tests._fixtures_gp",
    "tests._fixtures_prefect",
]
