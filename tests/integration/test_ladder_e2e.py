"""Jobs that read jobs, end to end against the real influxd: ``rollup run`` subprocesses in a
workspace, rows read back from InfluxDB.

A month of raw counters in Europe/Zurich with a clock change (a 23- or 25-hour day, 3-hour windows
of 2 or 4 hours), counter resets, 32-bit wraps and poll gaps longer than ``max_gap``. The monthly
rows merged from daily rows, and the daily rows merged from 3-hour rows, equal the same
aggregates computed from the raw points in one job, field by field (relative difference ≤ 1e-12,
integers exact), with a lookback that lets every job see the same intervals. Re-running one day
of the daily job re-runs exactly the windows that cover it, with the new figures.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rollup.core.windows import Window
from tests import dates
from tests.conftest import InfluxHelper, LedgerTarget
from tests.integration.serving import (
    Served,
    done_records,
    fast_job,
    first_window,
    iso,
    serve_env,
    wait_for,
    write_counters,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
ZURICH = ZoneInfo("Europe/Zurich")
MONTH = dates.month_with_clock_change(1, ZURICH)
"""The latest month with a clock change in Zurich that is over (by the clock the tests run under)."""
NEXT = dates.next_month(MONTH)
NOW = dates.utc_minute(dates.seconds(NEXT, ZURICH) + 3600)
"""An hour after the month: every window of it is closed (and not later than the real clock)."""
COUNTER = ["mean", "rate", "increase", "min", "max", "sum", "count", "last", "last_time", "stddev"]
GAUGE = ["mean", "min", "max", "sum", "count", "last", "last_time", "stddev"]
INTERFACES = (("sw1", "xe-0"), ("sw1", "xe-1"), ("sw2", "xe-0"))
MONTH_RANGE = dates.range_options(MONTH, (NEXT - MONTH).days)


def raw_lines(seed: int = 14, first: dt.date = MONTH, last: dt.date = NEXT) -> list[str]:
    """Polls of three interfaces from 3 hours before ``first`` to an hour after ``last``: octets
    (sw1/xe-0 a Counter32 that wraps, the others 64-bit counters whose devices reboot) and a
    temperature at every poll; every few hundred polls a gap of 20 to 50 minutes."""
    rng = random.Random(seed)
    lines = []
    begin, end = dates.seconds(first, ZURICH) - 3 * 3600, dates.seconds(last, ZURICH) + 3600
    for (host, name), value, step in zip(
        INTERFACES, (2**32 - 5_000_000, 2**40, 2**41), (300, 300, 240), strict=True
    ):
        t = begin + rng.randrange(step)
        while t < end:
            if value > 2**32 and rng.random() < 0.002:
                value = rng.randrange(1000)  # a reboot: the counter starts again
            else:
                value += rng.randrange(1_000_000, 50_000_000)
                if name == "xe-0" and host == "sw1":
                    value %= 2**32
            temp = 35 + 10 * math.sin(t / 7000) + rng.random()
            lines.append(f"ifc,host={host},if={name} octets={value}i,temp={temp!r} {t * S}")
            t += step + rng.randrange(-5, 6) if rng.random() > 0.003 else rng.randrange(1200, 3000)
    return lines


SMALL = (["mean", "count", "increase"], ["mean", "count"])
"""What the re-run test's jobs write of the counter and the gauge (the upstreams: what a merged
mean and increase need)."""


def corrected(lines: list[str], day: dt.date) -> list[str]:
    """The polls of ``day`` from 10:00 to 14:00 with the counters 10^10 higher (a jump, then a
    drop: every change stays within the day) and 5 degrees warmer."""
    begin = dates.seconds(day, ZURICH)
    changed = []
    for line in lines:
        head, fields, stamp = line.split(" ")
        if not (begin + 10 * 3600) * S <= int(stamp) < (begin + 14 * 3600) * S:
            continue
        octets, temp = (part.split("=")[1] for part in fields.split(","))
        changed.append(f"{head} octets={int(octets[:-1]) + 10**10}i,temp={float(temp) + 5!r} {stamp}")
    assert changed
    return changed


def raw_job(
    workspace: Workspace,
    name: str,
    every: str,
    group_by: Sequence[str],
    aggregates: tuple[Sequence[str], Sequence[str]] = (COUNTER, GAUGE),
    timestamp: str = "start",
) -> None:
    counter, gauge = aggregates
    workspace.job(
        name,
        f"""
        start = {MONTH.isoformat()}
        group_by = {json.dumps(list(group_by))}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "{every}"
        timezone = "Europe/Zurich"
        lookback = "2h"
        max_gap = "15m"

        [fields.octets]
        as = "in"
        on_decrease = "auto"
        scale = 8
        aggregates = {json.dumps(list(counter))}

        [fields.temp]
        kind = "gauge"
        aggregates = {json.dumps(list(gauge))}

        [output]
        measurement = "{name.replace("-", "_")}"
        sinks = ["out"]
        timestamp = "{timestamp}"
        """,
    )


def merged_job(
    workspace: Workspace,
    name: str,
    upstream: str,
    every: str,
    group_by: Sequence[str],
    aggregates: tuple[Sequence[str], Sequence[str]] = (COUNTER, GAUGE),
) -> None:
    counter, gauge = aggregates
    workspace.job(
        name,
        f"""
        start = {MONTH.isoformat()}
        group_by = {json.dumps(list(group_by))}

        [source]
        job = "{upstream}"

        [window]
        every = "{every}"
        timezone = "Europe/Zurich"

        [fields.in]
        aggregates = {json.dumps(list(counter))}

        [fields.temp]
        aggregates = {json.dumps(list(gauge))}

        [output]
        measurement = "{name.replace("-", "_")}"
        sinks = ["out"]
        """,
    )


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    found = Workspace(tmp_path, influx.url, influx.database)
    (tmp_path / "config" / "rollup.toml").write_text(
        textwrap.dedent(
            f"""
            [sources.buffer]
            url = "{influx.url}"
            """
        )
    )
    return found


Key = tuple[int, tuple[tuple[str, str], ...]]


def rows(influx: InfluxHelper, workspace: Workspace, measurement: str) -> dict[Key, dict[str, object]]:
    found = {}
    for point in influx.points(measurement, database=workspace.out_database):
        tags = tuple(sorted((k, str(v)) for k, v in point.items() if k in ("host", "if")))
        found[(int(point["time"]), tags)] = {
            k: v for k, v in point.items() if k not in ("time", "host", "if")
        }  # type: ignore[call-overload]
    return found


def assert_equal_rows(ladder: dict[Key, dict[str, object]], raw: dict[Key, dict[str, object]]) -> None:
    """The same rows with the same fields; integers equal, floats within 1e-12 of each other."""
    assert ladder.keys() == raw.keys()
    for key, expected in raw.items():
        got = ladder[key]
        assert got.keys() == expected.keys(), key
        for name, value in expected.items():
            if isinstance(value, int):
                assert got[name] == value, (key, name)
            else:
                assert isinstance(value, float)
                assert math.isclose(got[name], value, rel_tol=1e-12), (key, name, got[name], value)  # type: ignore[arg-type]


def test_monthly_from_daily_and_daily_from_3_hours_equal_the_same_aggregates_from_raw(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines())
    raw_job(workspace, "raw-3h", "3h", ["host", "if"], timestamp="end")  # read back by their end
    raw_job(workspace, "raw-daily", "1d", ["host", "if"])
    merged_job(workspace, "monthly", "raw-daily", "1mo", ["host", "if"])
    merged_job(workspace, "monthly-device", "raw-daily", "1mo", ["host"])
    merged_job(workspace, "daily-device", "raw-3h", "1d", ["host"])
    # The same aggregates from the raw points in one job each.
    raw_job(workspace, "raw-monthly", "1mo", ["host", "if"])
    raw_job(workspace, "raw-monthly-device", "1mo", ["host"])
    raw_job(workspace, "raw-daily-device", "1d", ["host"])

    result = workspace.run("run", "--now", NOW)  # one pass each, a job after the job it reads
    assert result.code == 0, result.stderr

    monthly = rows(influx, workspace, "monthly")
    assert len(monthly) == 3
    (one,) = [v for k, v in monthly.items() if k[1] == (("host", "sw1"), ("if", "xe-0"))]
    assert one["in_resets"] > 10  # type: ignore[operator]  # the Counter32's wraps
    assert one["in_gaps"] > 5  # type: ignore[operator]
    assert_equal_rows(monthly, rows(influx, workspace, "raw_monthly"))
    assert_equal_rows(
        rows(influx, workspace, "monthly_device"), rows(influx, workspace, "raw_monthly_device")
    )
    daily = rows(influx, workspace, "daily_device")
    days = (NEXT - MONTH).days
    assert len(daily) == 2 * days
    assert_equal_rows(daily, rows(influx, workspace, "raw_daily_device"))
    changing = [MONTH + dt.timedelta(days=n) for n in range(days)]
    (clock_change,) = [day for day in changing if dates.length(day, ZURICH) != dates.DAY]
    assert dates.seconds(clock_change, ZURICH) * S in {key[0] for key in daily}


def attempts(workspace: Workspace, job: str) -> dict[str, int]:
    """Attempts per window start (local ISO time) from ``rollup status JOB --windows --json``."""
    result = workspace.run("status", job, "--windows", "--json", "--limit", "1000")
    assert result.code == 0, result.stderr
    return {w["window_start"]: w["attempts"] for w in json.loads(result.stdout) if w["status"] == "done"}


def test_rerunning_a_day_reruns_exactly_the_windows_that_cover_it_with_the_new_figures(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(seed=3))
    raw_job(workspace, "raw-daily", "1d", ["host", "if"], SMALL)
    raw_job(workspace, "raw-3h", "3h", ["host", "if"], SMALL)
    merged_job(workspace, "weekly", "raw-daily", "1w", ["host", "if"], SMALL)
    merged_job(workspace, "monthly", "raw-daily", "1mo", ["host"], SMALL)
    merged_job(workspace, "daily-from-3h", "raw-3h", "1d", ["host"], SMALL)
    raw_job(workspace, "reference", "1mo", ["host"], SMALL)

    # Nothing done yet: the monthly window waits for the days it covers, and says so.
    status = workspace.run("status", "monthly", "weekly", "--json", "--now", NOW)
    assert status.code == 0, status.stderr
    waiting = {
        s["job"]: (s["reads_job"], s["waiting_for_upstream"], s["owed"]) for s in json.loads(status.stdout)
    }
    assert waiting["monthly"] == ("raw-daily", 1, 0)
    early = workspace.run("backfill", "monthly", *MONTH_RANGE, "--now", NOW)
    assert early.code == 1
    assert "1 window(s) wait for job raw-daily" in early.stderr

    assert workspace.run("run", "--now", NOW).code == 0
    before = {
        job: attempts(workspace, job) for job in ("raw-daily", "raw-3h", "weekly", "monthly", "daily-from-3h")
    }
    assert set(before["monthly"].values()) == {1}
    old = rows(influx, workspace, "monthly")

    # The raw points of one Wednesday change (a late correction); the daily job re-runs that day.
    wednesday = MONTH + dt.timedelta(days=(2 - MONTH.weekday()) % 7 + 7)
    influx.write(corrected(raw_lines(seed=3), wednesday))
    forced = workspace.run("backfill", "raw-daily", *dates.range_options(wednesday), "--force", "--now", NOW)
    assert forced.code == 0, forced.stderr

    assert workspace.run("run", "--now", NOW).code == 0, "the next pass"
    after = {job: attempts(workspace, job) for job in before}
    local = dt.datetime.combine(wednesday, dt.time(), ZURICH).isoformat()
    monday = dt.datetime.combine(wednesday - dt.timedelta(days=2), dt.time(), ZURICH).isoformat()
    month = dt.datetime.combine(MONTH, dt.time(), ZURICH).isoformat()
    rerun = {job: {w for w in after[job] if after[job][w] != before[job].get(w)} for job in after}
    assert rerun == {
        "raw-daily": {local},
        "raw-3h": set(),
        "weekly": {monday},
        "monthly": {month},
        "daily-from-3h": set(),
    }
    new = rows(influx, workspace, "monthly")
    assert all(new[k]["in_increase"] != old[k]["in_increase"] for k in old)
    again = workspace.run("backfill", "reference", *MONTH_RANGE, "--force", "--now", NOW)
    assert again.code == 0, again.stderr
    reference = rows(influx, workspace, "reference")
    for key, values in new.items():
        for name in ("in_mean", "in_increase", "temp_mean", "in_samples", "in_resets", "in_gaps"):
            expected = reference[key][name]
            assert math.isclose(values[name], expected, rel_tol=1e-12), (key, name)  # type: ignore[arg-type]


def test_serve_runs_a_window_as_soon_as_the_last_window_it_reads_is_done(
    tmp_path: Path, influx: InfluxHelper, serve: Callable[..., Served]
) -> None:
    """2-second windows closing a second after their end, merged into 20-second windows closing
    at their end: when a 20-second window closes, its last 2 seconds are not done yet, so its own
    trigger finds it waiting; the pass that does them triggers it at once (the next trigger of
    its own comes 20 seconds later, and the sweep only every 5 minutes)."""
    workspace = Workspace(tmp_path / "ws", influx.url, influx.database)
    start = first_window(back=2)
    write_counters(influx, start)
    fast_job(workspace, start)
    slow = -(-start // (20 * S)) * 20 * S
    workspace.job(
        "slow",
        f"""
        start = {iso(slow)}

        [source]
        job = "fast"

        [window]
        every = "20s"

        [fields.octets]
        aggregates = ["max", "increase"]

        [output]
        measurement = "slow"
        sinks = ["out"]
        """,
    )
    ledger = LedgerTarget("sqlite", f"sqlite://{tmp_path / 'ledger.sqlite'}")
    served = serve(workspace, serve_env(ledger, sweep="5m"))
    wait_for(lambda: done_records(ledger, "slow"), 60, "the first 20-second window done", served.output)
    (record,) = done_records(ledger, "slow")[:1]
    assert record.window == Window(slow, slow + 20 * S)
    assert record.started is not None
    assert record.started - record.window.end < 12 * S, served.output()
    served.stop()
    (point,) = [p for p in influx.points("slow", database=workspace.out_database) if p["time"] == slow][:1]
    parts = [
        p
        for p in influx.points("fast", database=workspace.out_database)
        if slow <= int(p["time"]) < slow + 20 * S
    ]  # type: ignore[call-overload]
    assert len(parts) == 20  # two hosts, ten windows
    assert point["octets_increase"] == pytest.approx(
        sum(p["octets_increase"] for p in parts if p["host"] == point["host"]), rel=1e-12
    )  # type: ignore[misc]
