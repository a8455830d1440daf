#!/usr/bin/env bash
# Set everything up, then run both flows once against the built-in simulators (offline, SQLite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/erp-slack demo "$@"
