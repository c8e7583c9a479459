#!/usr/bin/env bash
# Install everything rollup, its demo and its tests need on a bare Debian/Ubuntu machine:
# Debian's influxdb (influxd 1.x) and postgresql, and a Python virtualenv in .venv with the
# project and its development tools. The `dev` extra also brings the Elasticsearch and OpenSearch
# clients and the local servers speaking their APIs (noida-db, osmem-server): pip installs them,
# nothing else is needed. Safe to run again: it only installs what is missing.
# With --for-tests, also systemd-analyze (tests/unit/test_deploy_assets.py verifies the unit file)
# and Prometheus with promtool (the alert rules, the dashboard's queries, a real scrape).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=()
command -v influxd >/dev/null 2>&1 || packages+=(influxdb)
if [ "${ROLLUP_SKIP_POSTGRES:-0}" != "1" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  packages+=(postgresql)
fi
if [ "${1:-}" = "--for-tests" ]; then
  command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)
  # promtool checks the alert rules; the Prometheus server scrapes rollup serve in the tests.
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || packages+=(prometheus)
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing Debian packages: ${packages[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# PostgreSQL refuses to run as root: as root, the tests run it as 'nobody' (scripts/servers.py).
if [ "$(id -u)" -eq 0 ] && ! id nobody >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin nobody
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
