#!/usr/bin/env bash
# Install everything rollup, its demo and its tests need on a bare Debian/Ubuntu machine:
# Debian's influxdb (influxd 1.x) and postgresql, python3-venv where it is missing, and a Python
# virtualenv in .venv with the project and its development tools. The `dev` extra also brings the
# Elasticsearch and OpenSearch clients and the local servers speaking their APIs (noida-db,
# osmem-server): pip installs them, nothing else is needed. With --for-demo, only the `demo`
# extra (what scripts/demo.sh needs). Safe to run again: it only installs what is missing.
# Needs Python 3.11 or newer: PYTHON=python3.11 scripts/install-deps.sh picks the interpreter.
# With --for-tests, also systemd-analyze (tests/unit/test_deploy_assets.py verifies the unit file),
# Prometheus with promtool (the alert rules, the dashboard's queries, a real scrape), the example
# plug-in distribution examples/busy-hour (the tests use its entry point, as a user's installed
# plug-in) and the start-up hook that lets scripts/test.sh --clock-shift move the Python clock.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  found=$("$PYTHON" --version 2>&1 || true)
  echo "rollup needs Python 3.11 or newer, and $PYTHON is ${found:-not installed}." >&2
  echo "Install Python 3.11 with its venv module (Ubuntu 22.04: apt-get install python3.11" \
    "python3.11-venv), then run: PYTHON=python3.11 $0 $*" >&2
  exit 1
fi
EXTRA=dev
if [ "${1:-}" = "--for-demo" ]; then EXTRA=demo; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=()
command -v influxd >/dev/null 2>&1 || packages+=(influxdb)
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  # Debian and Ubuntu ship venv's pip bootstrap apart: python3-venv (python3.X-venv for python3.X).
  if [ "$PYTHON" = python3 ]; then
    packages+=(python3-venv)
  else
    packages+=("python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
  fi
fi
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

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRA]"

if [ "${1:-}" = "--for-tests" ]; then
  # A real distribution (not editable): its entry point is found as any installed plug-in's.
  .venv/bin/python -m pip install -q --disable-pip-version-check ./examples/busy-hour
  # tests/clock_shift.py, imported at start-up by every Python of the venv: inert unless
  # TEST_CLOCK_SHIFT is set (scripts/test.sh --clock-shift).
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp tests/clock_shift.py "$site/rollup_test_clock_shift.py"
  echo "import rollup_test_clock_shift" > "$site/rollup_test_clock_shift.pth"
fi
