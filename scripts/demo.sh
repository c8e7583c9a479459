#!/usr/bin/env bash
# The demo: a real local InfluxDB, a day of synthetic SNMP interface counters (50 devices × 24
# interfaces, 1-minute polls, 3 device reboots, one Counter32 wrap) and device temperatures, then
# the example jobs from jobs/ run as backfills and the daily aggregates printed.
# Everything lives under .demo/ and the InfluxDB is stopped at the end (KEEP=1 keeps it running).
set -euo pipefail
cd "$(dirname "$0")/.."
ROLLUP_SKIP_POSTGRES=1 scripts/install-deps.sh

DEMO=.demo
rm -rf "$DEMO" && mkdir -p "$DEMO/influxd"
PORT="${DEMO_PORT:-$(.venv/bin/python -c 'from tests.servers import free_port; print(free_port())')}"
export ROLLUP_INFLUX_URL="http://127.0.0.1:$PORT"

PID=$(.venv/bin/python - "$DEMO/influxd" "$PORT" <<'PY'
import sys
from pathlib import Path
from tests.servers import start_influxd
server = start_influxd(Path(sys.argv[1]).resolve(), port=int(sys.argv[2]))
print(server.pid)
PY
)
if [ "${KEEP:-0}" != "1" ]; then trap 'kill "$PID" 2>/dev/null || true' EXIT; fi
echo "influxd (pid $PID) on $ROLLUP_INFLUX_URL, data in $DEMO/influxd"

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
for job in interface-daily device-traffic-3h sensors-3h; do
  .venv/bin/rollup backfill "$job" --start "$DAY" --end "$NEXT"
done

echo
echo "Daily aggregates written to InfluxDB (database rollups, measurement interface_daily), first rows:"
.venv/bin/python -m scripts.show --url "$ROLLUP_INFLUX_URL" --database rollups \
  --query 'SELECT in_mean / 1000000 AS in_mean_Mbps, in_p95 / 1000000 AS in_p95_Mbps, in_max / 1000000 AS in_max_Mbps, in_resets, out_mean / 1000000 AS out_mean_Mbps, in_samples FROM interface_daily GROUP BY agent_host, ifName SLIMIT 6'
echo "(xe-0/0/0 of sw000 is a Counter32: its wrap is counted in in_resets but adds no spike)"
echo
echo "Device sw000 in 3-hour windows: in_rate is the time-weighted mean rate of its interfaces, in_GB their total volume:"
.venv/bin/python -m scripts.show --url "$ROLLUP_INFLUX_URL" --database rollups \
  --query "SELECT in_rate / 1000000 AS in_rate_Mbps, in_increase / 8000000000 AS in_GB, in_max / 1000000 AS in_max_Mbps, in_resets FROM device_traffic_3h WHERE agent_host = 'sw000'"
