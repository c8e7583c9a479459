"""A month from daily rows against the month from raw points, on the same data in the same run.

Starts a real influxd in a temp dir (scripts/servers.py), writes a month of seeded synthetic SNMP
counters (scripts/synth.py: ``ifHCInOctets`` and ``ifHCOutOctets``, ``--devices`` × ``--interfaces``
every ``--interval`` seconds, device reboots, a Counter32 wrap), backfills the daily job of that
month (per interface: mean, count, max, increase), then times, as ``rollup backfill`` subprocesses:

- ``monthly``: the month merged from the daily rows (a job reading the daily job);
- ``raw-monthly``: the same aggregates of the same month computed from the raw points in one job
  (what a month costs without a ladder — and only while the buffer still holds the whole month).

Each is run ``--repeat`` times, interleaved (``--force`` after the first), and the median wall time
is reported with the rows each read (the ledger's ``points``). The two must write the same rows
(relative difference ≤ 1e-12, integers equal), checked in the same run. The table is printed and
written as JSON to bench/results/.

    python -m bench.ladder --quick     # 20 series, a few seconds
    python -m bench.ladder             # 200 series × a month of 5-minute polls ≈ 1.8M raw rows
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.servers import start_influxd
from scripts.synth import interface_lines, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RAW_DB = "telegraf"
OUT_DB = "rollups"
AGGREGATES = ["mean", "rate", "max", "increase"]


def last_month() -> tuple[dt.date, dt.date]:
    """The last complete month (UTC) by the real clock: its windows are closed."""
    first = dt.datetime.now(dt.UTC).date().replace(day=1)
    previous = (first - dt.timedelta(days=1)).replace(day=1)
    return previous, first


def seconds(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


def workspace(root: Path, url: str, month: dt.date) -> None:
    """Settings, a sink and the three jobs: daily from raw, monthly from daily, monthly from raw."""
    for name in ("config", "sinks", "jobs"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "config" / "rollup.toml").write_text(f'[sources.buffer]\nurl = "{url}"\n')
    (root / "sinks" / "out.toml").write_text(f'type = "influxdb"\nurl = "{url}"\ndatabase = "{OUT_DB}"\n')
    fields = ("ifHCInOctets", "ifHCOutOctets")

    def raw(name: str, every: str, aggregates: list[str]) -> str:
        parts = [
            f'start = {month.isoformat()}\ngroup_by = ["agent_host", "ifName"]\n',
            f'[source]\nprofile = "buffer"\ndatabase = "{RAW_DB}"\nmeasurement = "interface"\n',
            f'[window]\nevery = "{every}"\nlookback = "1h"\n',
            *(
                f'[fields.{field}]\nas = "{out}"\non_decrease = "auto"\nscale = 8\n'
                f"aggregates = {json.dumps(aggregates)}\n"
                for field, out in zip(fields, ("in", "out"), strict=True)
            ),
            f'[output]\nmeasurement = "{name.replace("-", "_")}"\nsinks = ["out"]\n',
        ]
        return "\n".join(parts)

    (root / "jobs" / "daily.toml").write_text(raw("daily", "1d", ["mean", "count", "max", "increase"]))
    (root / "jobs" / "raw-monthly.toml").write_text(raw("raw-monthly", "1mo", AGGREGATES))
    (root / "jobs" / "monthly.toml").write_text(
        textwrap.dedent(
            f"""
            start = {month.isoformat()}
            group_by = ["agent_host", "ifName"]

            [source]
            job = "daily"

            [window]
            every = "1mo"

            [fields.in]
            aggregates = {json.dumps(AGGREGATES)}

            [fields.out]
            aggregates = {json.dumps(AGGREGATES)}

            [output]
            measurement = "monthly"
            sinks = ["out"]
            """
        )
    )


_SUMMARY = re.compile(r": (\d+) window\(s\) done.*?; ([\d,]+) points read, ([\d,]+) rows written")


def backfill(root: Path, job: str, first: dt.date, last: dt.date, force: bool) -> tuple[float, int]:
    """Wall seconds of ``rollup backfill JOB`` over the month, and the rows it read."""
    command = [sys.executable, "-m", "rollup", "backfill", job, "--start", str(first), "--end", str(last)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *(["--force"] if force else [])],
        cwd=root,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rollup backfill {job} failed:\n{done.stderr}")
    found = _SUMMARY.search(done.stderr)
    if found is None:
        raise SystemExit(f"no summary in the output of rollup backfill {job}:\n{done.stderr}")
    return elapsed, int(found.group(2).replace(",", ""))


def points(url: str, measurement: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    response = httpx.post(
        f"{url}/query",
        params={"db": OUT_DB, "epoch": "ns"},
        data={"q": f'SELECT * FROM "{measurement}" GROUP BY *'},
        timeout=60,
    )
    response.raise_for_status()
    found = {}
    for series in response.json()["results"][0].get("series", []):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            key = (row.pop("time"), tuple(sorted(series["tags"].items())))
            found[key] = {k: v for k, v in row.items() if v is not None}
    return found


def same_rows(a: dict[tuple[Any, ...], dict[str, Any]], b: dict[tuple[Any, ...], dict[str, Any]]) -> float:
    """The largest relative difference between two sets of rows (SystemExit if they differ)."""
    if a.keys() != b.keys() or not a:
        raise SystemExit(f"different rows: {len(a)} merged, {len(b)} from raw")
    worst = 0.0
    for key, row in b.items():
        if row.keys() != a[key].keys():
            raise SystemExit(f"different fields for {key}")
        for name, value in row.items():
            other = a[key][name]
            if isinstance(value, int):
                if other != value:
                    raise SystemExit(f"{key} {name}: {other} != {value}")
            elif value != other:
                worst = max(worst, abs(other - value) / max(abs(value), abs(other)))
    if worst > 1e-12:
        raise SystemExit(f"the merged month differs from the month from raw by {worst:.2e}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--interfaces", type=int, default=10)
    parser.add_argument("--interval", type=int, default=300, help="seconds between polls")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 devices × 10 interfaces, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.repeat = 2, 1
    first, last = last_month()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_influxd(root / "influxd")
        try:
            for database in (RAW_DB, OUT_DB):
                httpx.post(
                    f"{server.url}/query", data={"q": f'CREATE DATABASE "{database}"'}
                ).raise_for_status()
            begin, end = seconds(first) - 3600, seconds(last) + 3600
            lines = interface_lines(begin, end, args.devices, args.interfaces, args.interval, 1, 3, True)
            with httpx.Client(base_url=server.url, timeout=300) as client:
                written = write(client, RAW_DB, lines)
            workspace(root, server.url, first)
            daily_seconds, daily_rows = backfill(root, "daily", first, last, force=False)
            runs: dict[str, list[float]] = {"monthly": [], "raw-monthly": []}
            read: dict[str, int] = {}
            for repeat in range(args.repeat):
                for job in runs:
                    elapsed, rows = backfill(root, job, first, last, force=repeat > 0)
                    runs[job].append(elapsed)
                    read[job] = rows
            worst = same_rows(points(server.url, "monthly"), points(server.url, "raw_monthly"))
        finally:
            server.stop()

    median = {job: statistics.median(times) for job, times in runs.items()}
    series = args.devices * args.interfaces
    print(
        f"{series} series, {first:%Y-%m} ({(last - first).days} days), {written:,} raw points, median of "
        f"{args.repeat}; the daily backfill before: {daily_seconds:.2f} s, {daily_rows:,} rows read\n"
    )
    print("| the month | rows read | seconds | time vs raw | rows vs raw |")
    print("|---|---:|---:|---:|---:|")
    for job, label in (("raw-monthly", "from raw (one job)"), ("monthly", "from the daily rows")):
        print(
            f"| {label} | {read[job]:,} | {median[job]:.2f} | {median[job] / median['raw-monthly']:.3f} "
            f"| {read[job] / read['raw-monthly']:.5f} |"
        )
    print(f"\nlargest relative difference between the two months: {worst:.1e}")
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-ladder{'-quick' if args.quick else ''}.json"
    record = {
        "args": vars(args),
        "month": first.isoformat(),
        "raw_points": written,
        "daily": {"seconds": daily_seconds, "rows_read": daily_rows},
        "seconds": runs,
        "median_seconds": median,
        "rows_read": read,
        "largest_relative_difference": worst,
        "ratio_seconds": median["monthly"] / median["raw-monthly"],
        "ratio_rows": read["monthly"] / read["raw-monthly"],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {path}")
    return 0 if math.isfinite(worst) else 1


if __name__ == "__main__":
    raise SystemExit(main())
