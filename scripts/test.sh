#!/usr/bin/env bash
# Set everything up, then run every test (the import layering is one of them).
# PostgreSQL variants run when ERP_SLACK_TEST_PG_URL names a server (CI always sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
exec .venv/bin/pytest -q "$@"
