#!/usr/bin/env bash
# The demo: a real local InfluxDB, a day of synthetic SNMP interface counters (50 devices × 24
# interfaces, 1-minute polls, 3 device reboots, one Counter32 wrap) and device temperatures, then
# the example jobs from jobs/ run as backfills and the daily aggregates printed.
# With --elasticsearch it also starts a local Elasticsearch-compatible server (noida-db) and runs
# jobs/interface-daily-es.toml, which writes to InfluxDB and Elasticsearch, and shows its documents.
# Everything lives under .demo/ (or $DEMO_DIR) and the servers are stopped at the end. KEEP=1
# keeps them running and ends with one `export …` line that points rollup at them (InfluxDB,
# Elasticsearch, the ledger, the settings, jobs and sink profiles, the virtualenv), so that
# `rollup status` or `rollup run` go on from where the demo stopped, from any directory.
# Needs the `demo` extra only (scripts/install-deps.sh --for-demo), not the development tools.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ELASTICSEARCH=0
for arg in "$@"; do
  case "$arg" in
    --elasticsearch) ELASTICSEARCH=1 ;;
    *) echo "usage: scripts/demo.sh [--elasticsearch]" >&2; exit 2 ;;
  esac
done
ROLLUP_SKIP_POSTGRES=1 scripts/install-deps.sh --for-demo

DEMO="${DEMO_DIR:-.demo}"
rm -rf "$DEMO" && mkdir -p "$DEMO/influxd"
DEMO="$(cd "$DEMO" && pwd)"
export ROLLUP_LEDGER="sqlite:$DEMO/ledger.sqlite"  # a fresh ledger for the fresh InfluxDB
export ROLLUP_CONFIG="$ROOT/config/rollup.toml" ROLLUP_JOBS_DIR="$ROOT/jobs" ROLLUP_SINKS_DIR="$ROOT/sinks"
PORT="${DEMO_PORT:-$(.venv/bin/python -c 'from scripts.servers import free_port; print(free_port())')}"
export ROLLUP_INFLUX_URL="http://127.0.0.1:$PORT"

PID=$(.venv/bin/python - "$DEMO/influxd" "$PORT" <<'PY'
import sys
from pathlib import Path
from scripts.servers import start_influxd
server = start_influxd(Path(sys.argv[1]), port=int(sys.argv[2]))
print(server.pid)
PY
)
PIDS="$PID"
if [ "${KEEP:-0}" != "1" ]; then trap 'kill $PIDS 2>/dev/null || true' EXIT; fi
echo "influxd (pid $PID) on $ROLLUP_INFLUX_URL, data in $DEMO/influxd"

if [ "$ELASTICSEARCH" = "1" ]; then
  read -r ES_PID ROLLUP_ELASTICSEARCH_URL <<<"$(.venv/bin/python - "$DEMO/elasticsearch" <<'PY'
import sys
from pathlib import Path
from scripts.servers import start_elasticsearch
server = start_elasticsearch(Path(sys.argv[1]))
print(server.pid, server.url)
PY
)"
  export ROLLUP_ELASTICSEARCH_URL
  PIDS="$PIDS $ES_PID"
  echo "noida-db, Elasticsearch API (pid $ES_PID) on $ROLLUP_ELASTICSEARCH_URL, data in $DEMO/elasticsearch"
fi

# The last complete day in the jobs' time zone, with margins for the lookback and the next window.
read -r DAY START END <<<"$(.venv/bin/python - <<'PY'
import datetime as dt
from zoneinfo import ZoneInfo
zone = ZoneInfo("Europe/Zurich")
day = dt.datetime.now(zone).date() - dt.timedelta(days=1)
start = dt.datetime.combine(day, dt.time(), zone) - dt.timedelta(hours=1)
end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone) + dt.timedelta(minutes=30)
print(day, start.astimezone(dt.UTC).isoformat(), end.astimezone(dt.UTC).isoformat())
PY
)"
echo "writing synthetic counters for $DAY (Europe/Zurich) …"
.venv/bin/python -m scripts.synth --url "$ROLLUP_INFLUX_URL" --database telegraf \
  --start "$START" --end "$END" --devices 50 --interfaces 24 --resets 3 --wrap32 --temperature
curl -fsS -XPOST "$ROLLUP_INFLUX_URL/query" --data-urlencode 'q=CREATE DATABASE rollups' >/dev/null

NEXT=$(.venv/bin/python -c "import datetime as d; print(d.date.fromisoformat('$DAY') + d.timedelta(days=1))")
.venv/bin/rollup jobs validate
JOBS="interface-daily device-traffic-3h sensors-3h"
if [ "$ELASTICSEARCH" = "1" ]; then JOBS="$JOBS interface-daily-es"; fi
for job in $JOBS; do
  .venv/bin/rollup backfill "$job" --start "$DAY" --end "$NEXT"
done
.venv/bin/rollup status $JOBS

echo
echo "Daily aggregates written to InfluxDB (database rollups, measurement interface_daily), first rows:"
.venv/bin/python -m scripts.show --url "$ROLLUP_INFLUX_URL" --database rollups --timezone Europe/Zurich \
  --query 'SELECT in_mean / 1000000 AS in_mean_Mbps, in_p95 / 1000000 AS in_p95_Mbps, in_max / 1000000 AS in_max_Mbps, in_resets, out_mean / 1000000 AS out_mean_Mbps, in_samples FROM interface_daily GROUP BY agent_host, ifName SLIMIT 6'
echo "(xe-0/0/0 of sw000 is a Counter32: its wrap is counted in in_resets but adds no spike)"
echo
echo "Device sw000 in 3-hour windows: in_rate is the time-weighted mean rate of its interfaces, in_GB their total volume:"
.venv/bin/python -m scripts.show --url "$ROLLUP_INFLUX_URL" --database rollups --timezone Europe/Zurich \
  --query "SELECT in_rate / 1000000 AS in_rate_Mbps, in_increase / 8000000000 AS in_GB, in_max / 1000000 AS in_max_Mbps, in_resets FROM device_traffic_3h WHERE agent_host = 'sw000'"

MONTH=$(.venv/bin/python -c "import datetime as d; print(d.date.fromisoformat('$DAY').replace(day=1))")
MONTH_END=$(.venv/bin/python -c "import datetime as d; m = d.date.fromisoformat('$MONTH'); print((m.replace(day=28) + d.timedelta(days=4)).replace(day=1))")
echo
echo "The month of $DAY per device so far, merged from the daily rows of interface-daily"
echo "(jobs/device-monthly.toml reads that job; preview: the month is not over, nothing is written):"
.venv/bin/rollup preview device-monthly --start "$MONTH" --end "$MONTH_END" --limit 3

if [ "$ELASTICSEARCH" = "1" ]; then
  echo
  echo "interface-daily-es wrote the same days to InfluxDB (measurement interface_daily_es) and to"
  echo "Elasticsearch, one document per interface and day (bit/s shown as Mbit/s):"
  .venv/bin/python -m scripts.show_documents --url "$ROLLUP_ELASTICSEARCH_URL" --index 'rollup-interface-daily-es-*' \
    --fields '@timestamp,agent_host,ifName,in_mean,in_p95,in_max,out_mean,in_resets,in_samples' --scale 1000000
  echo "(a re-run overwrites the same documents: their _id is derived from job, interface and day)"
fi

if [ "${KEEP:-0}" = "1" ]; then
  # shellcheck disable=SC2016  # $PATH is for the shell that runs the line
  CONTINUE=$(printf 'export PATH=%q:"$PATH"' "$ROOT/.venv/bin")
  for name in ROLLUP_INFLUX_URL ROLLUP_ELASTICSEARCH_URL ROLLUP_LEDGER ROLLUP_CONFIG ROLLUP_JOBS_DIR ROLLUP_SINKS_DIR; do
    if [ -n "${!name:-}" ]; then CONTINUE="$CONTINUE $(printf '%s=%q' "$name" "${!name}")"; fi
  done
  echo
  echo "The servers keep running (stop them with: kill $PIDS). To go on with rollup, in any directory:"
  echo "$CONTINUE"
fi
