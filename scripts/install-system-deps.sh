#!/usr/bin/env bash
# Debian packages the end-to-end suites need: chromium for the UI journey, PostgreSQL for distributed mode.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/lib/postgresql/*/bin/postgres ] 2>/dev/null || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    {
      echo "make test needs these Debian packages, which are not installed: ${need[*]}"
      echo "(chromium for the browser journey, postgresql for distributed mode)."
      echo "Install them as root, then run make test again:"
      echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}"
      echo "Or run make test-fast: everything that needs no server, browser or PostgreSQL."
    } >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
