#!/usr/bin/env bash
# Install what the tests need, then run them: lint, types, unit and integration tests
# (integration tests start real servers on 127.0.0.1 with temporary data directories).
# Extra arguments go to pytest, e.g. scripts/test.sh -k windows, or --slow for long variants.
# --clock-shift SHIFT (e.g. +400d, -400d) runs the tests with the clock of every Python process
# moved by SHIFT (tests/clock_shift.py): no test may depend on the date it runs on.
set -euo pipefail
cd "$(dirname "$0")/.."
shift_by=""
if [ "${1:-}" = "--clock-shift" ]; then
  shift_by="${2:?--clock-shift needs a value such as +400d}"
  shift 2
fi
scripts/install-deps.sh --for-tests
if [ -n "$shift_by" ]; then
  export TEST_CLOCK_SHIFT="$shift_by"
  echo "the Python clock is shifted by $shift_by: $(.venv/bin/python -c 'import datetime; print(datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))')" >&2
else
  .venv/bin/ruff check rollup tests bench scripts examples
  .venv/bin/ruff format --check rollup tests bench scripts examples
  .venv/bin/mypy
  .venv/bin/lint-imports --no-cache  # the layers: cli -> app -> jobs -> adapters -> core
fi
if [ -n "$shift_by" ]; then set -- -p no:time_machine "$@"; fi  # imported at start-up, not a plugin here
.venv/bin/python -m pytest "$@"
