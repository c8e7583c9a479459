#!/usr/bin/env bash
# Install what the tests need, then run them: lint, types, unit and integration tests
# (integration tests start real servers on 127.0.0.1 with temporary data directories).
# Extra arguments go to pytest, e.g. scripts/test.sh -k windows, or --slow for long variants.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --for-tests
.venv/bin/ruff check rollup tests bench scripts
.venv/bin/ruff format --check rollup tests bench scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
