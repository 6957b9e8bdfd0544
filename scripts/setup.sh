#!/usr/bin/env bash
# Create .venv/ and install Casella with its locked dependencies (idempotent).
# Usage: scripts/setup.sh            -- runtime dependencies
#        scripts/setup.sh --system   -- also the Debian packages Casella needs to run
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  # Install Debian packages only when one of them is missing.
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "casella setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

PY=${PYTHON:-python3}
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  command -v apt-get >/dev/null && apt_install python3-venv
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.casella-lock-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q --require-hashes -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.casella-lock-*; touch "$stamp"
fi
