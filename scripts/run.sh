#!/usr/bin/env bash
# Command 1 of the README: install everything and start Casella with SQLite and the
# embedded defaults under ./data (CASELLA_DATA_DIR moves it), demo data on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/casella serve "$@"
