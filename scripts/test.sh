#!/usr/bin/env bash
# Command 2 of the README: install what the tests need (the project's venv, Dovecot,
# PostgreSQL and notmuch from Debian) and run the whole test suite against real servers.
# Extra arguments go to pytest (e.g. scripts/test.sh -k ingest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/test-deps.sh
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
