#!/usr/bin/env bash
# Install the Debian packages the tests and benchmarks need (idempotent: only
# what is missing, one `apt-get update`). Usage: scripts/test-deps.sh
#   dovecot-imapd  real IMAP server (tests/servers/dovecot.py)
#   postgresql     server binaries for tests/servers/postgres.py (the system
#                  cluster is not used; the tests run their own)
#   notmuch        used by the benchmarks
#   wrk            HTTP load for bench/webmail.py
#   chromium       the real browser the webmail tests drive (Playwright, never `playwright install`)
# The apt install may try to start the system services; in containers
# policy-rc.d stops that, which is harmless.
set -euo pipefail

PACKAGES=(dovecot-imapd postgresql notmuch chromium wrk)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${PACKAGES[@]}"; do
  # removed-but-not-purged packages are known to dpkg -s too: check Status
  status=$(dpkg -s "$p" 2>/dev/null | sed -n 's/^Status: //p' || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all present (${PACKAGES[*]})"
  exit 0
fi
echo "test-deps: installing ${missing[*]}"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
