"""End to end: raw points in a real influxd → `rollup backfill` subprocess → rollups read back."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests import dates
from tests.conftest import InfluxHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
ZURICH = ZoneInfo("Europe/Zurich")
MONDAY = dates.monday(7)
"""UTC days from a Monday at least a week ago: their windows are closed by the real clock."""
DAY1 = dates.seconds(MONDAY)  # in seconds
DAY2 = DAY1 + 86400
ONE_DAY = dates.range_options(MONDAY)
TWO_DAYS = dates.range_options(MONDAY, 2)


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    return Workspace(tmp_path, influx.url, influx.database)


def counter_job(
    workspace: Workspace,
    *,
    name: str = "bw",
    on_decrease: str = "drop",
    aggregates: str = '["mean", "rate", "increase", "max", "count"]',
    lookback: str = "1h",
    timestamp: str = "start",
    timezone: str = "UTC",
) -> None:
    workspace.job(
        name,
        f"""
        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        timezone = "{timezone}"
        lookback = "{lookback}"

        [fields.octets]
        on_decrease = "{on_decrease}"
        aggregates = {aggregates}

        [output]
        measurement = "{name}_daily"
        sinks = ["out"]
        timestamp = "{timestamp}"
        """,
    )


def test_backfill_writes_daily_rates_including_the_interval_across_midnight(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    # Series a: 60 s polls, +600 octets each (10/s); the last sample of day 1 is the prev of day 2.
    lines = [f"ifc,host=a octets={i * 600}i {(DAY1 + i * 60) * S}" for i in range(2 * 1440)]
    # Series b: three samples only on day 2: 100 → 400 (dt 100 s) → 1000 (dt 200 s).
    lines += [
        f"ifc,host=b octets=100i {(DAY2 + 50) * S}",
        f"ifc,host=b octets=400i {(DAY2 + 150) * S}",
        f"ifc,host=b octets=1000i {(DAY2 + 350) * S}",
    ]
    influx.write(lines)
    counter_job(workspace)

    result = workspace.run("backfill", "bw", *TWO_DAYS)
    assert result.code == 0, result.stderr

    points = {(p["host"], p["time"]): p for p in influx.points("bw_daily", database=workspace.out_database)}
    assert set(points) == {("a", DAY1 * S), ("a", DAY2 * S), ("b", DAY2 * S)}
    day1, day2 = points[("a", DAY1 * S)], points[("a", DAY2 * S)]
    assert day1["octets_count"] == 1439  # the first sample ever has no prev
    assert day2["octets_count"] == 1440  # the interval ending at 00:00 is not lost
    assert day2["octets_mean"] == pytest.approx(10.0)
    assert day2["octets_increase"] == pytest.approx(1440 * 600)
    b = points[("b", DAY2 * S)]
    assert b["octets_count"] == 2
    assert b["octets_mean"] == pytest.approx((3.0 + 3.0) / 2)
    assert b["octets_rate"] == pytest.approx(900 / 300)
    assert b["octets_samples"] == 3
    assert b["octets_seconds"] == pytest.approx(300.0)


def test_backfill_counts_resets_and_keeps_wraps_exact(workspace: Workspace, influx: InfluxHelper) -> None:
    big = 2**62  # exact only as an integer: float64 would round the step of 60
    influx.write(
        [
            f"ifc,host=r octets=1000i {(DAY1 + 60) * S}",
            f"ifc,host=r octets=1600i {(DAY1 + 120) * S}",
            f"ifc,host=r octets=60i {(DAY1 + 180) * S}",  # reset: dv = 60
            f"ifc,host=r octets=660i {(DAY1 + 240) * S}",
            f"ifc,host=x octets={big}i {(DAY1 + 60) * S}",
            f"ifc,host=x octets={big + 60}i {(DAY1 + 120) * S}",
        ]
    )
    counter_job(workspace, on_decrease="reset", aggregates='["increase", "min", "max", "count"]')

    result = workspace.run("backfill", "bw", *ONE_DAY)
    assert result.code == 0, result.stderr

    points = {p["host"]: p for p in influx.points("bw_daily", database=workspace.out_database)}
    assert points["r"]["octets_increase"] == 600 + 60 + 600
    assert points["r"]["octets_resets"] == 1
    assert points["r"]["octets_min"] == pytest.approx(1.0)
    assert points["r"]["octets_max"] == pytest.approx(10.0)
    assert points["x"]["octets_increase"] == 60
    assert points["x"]["octets_max"] == pytest.approx(1.0)


def test_drop_mean_matches_influxdb_non_negative_derivative_within_a_window(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    """Where the semantics coincide (no lookback interval), our drop+mean equals InfluxQL's."""
    lines = []
    for host, step in (("p", 7), ("q", 13)):
        value = 5_000
        for i in range(1, 400):
            value = 40 if i % 97 == 0 else value + step * (i % 5 + 1)  # some decreases
            lines.append(f"ifc,host={host} octets={value}i {(DAY1 + i * 97 + (i % 3)) * S}")
    influx.write(lines)
    counter_job(workspace, lookback="0s", aggregates='["mean"]')
    assert workspace.run("backfill", "bw", *ONE_DAY).code == 0

    ours = {p["host"]: p["octets_mean"] for p in influx.points("bw_daily", database=workspace.out_database)}
    theirs = {}
    for series in influx.query(
        "SELECT mean(d) FROM (SELECT non_negative_derivative(octets, 1s) AS d FROM ifc "
        f"WHERE time >= {DAY1 * S} AND time < {DAY2 * S} GROUP BY *) GROUP BY host"
    ):
        theirs[series["tags"]["host"]] = series["values"][0][1]  # type: ignore[index]
    assert set(ours) == {"p", "q"}
    for host, mean in theirs.items():
        assert ours[host] == pytest.approx(mean, rel=1e-12)


def kapacitor_reference(samples: list[tuple[int, int | None]]) -> float | None:
    """Kapacitor `|derivative(f).unit(1s).nonNegative() |mean()` over one batch (one window)."""
    rates = []
    prev: tuple[int, int] | None = None
    for t, v in samples:
        if v is None:  # a point missing the field is skipped and does not become prev
            continue
        if prev is not None and v >= prev[1]:
            rates.append((v - prev[1]) / (t - prev[0]))
        prev = (t, v)  # a decrease drops the interval, the point still becomes prev
    return sum(rates) / len(rates) if rates else None


def test_kapacitor_compatible_settings_reproduce_a_kapacitor_batch_task(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    day1 = [(DAY1 + 10, 100), (DAY1 + 70, 700), (DAY1 + 130, None), (DAY1 + 200, 1300), (DAY1 + 260, 50),
            (DAY1 + 320, 650), (DAY1 + 86000, 900)]  # fmt: skip
    day2 = [(DAY2 + 5, 2000)]  # a window with fewer than two points writes nothing
    lines = []
    for t, v in day1 + day2:
        field = f"octets={v}i" if v is not None else "other=1i"
        lines.append(f"ifc,host=k {field} {t * S}")
    influx.write(lines)
    counter_job(workspace, lookback="0s", aggregates='["mean"]', timestamp="end")
    assert workspace.run("backfill", "bw", *TWO_DAYS).code == 0

    points = influx.points("bw_daily", database=workspace.out_database)
    assert [p["time"] for p in points] == [DAY2 * S]  # stamped at the window end; day 2 absent
    expected = kapacitor_reference(day1)
    assert expected is not None
    assert points[0]["octets_mean"] == pytest.approx(expected, rel=1e-12)


def test_local_days_follow_the_time_zone_and_a_dst_day_lasts_23_hours(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    spring = dates.spring_forward(1, ZURICH)  # the latest day the clocks went forward
    start = dates.seconds(spring, ZURICH) - 3600  # 23:00 local the day before
    influx.write([f"ifc,host=z octets={i * 3600}i {(start + i * 3600) * S}" for i in range(30)])
    counter_job(workspace, timezone="Europe/Zurich", aggregates='["mean", "count"]')
    result = workspace.run("backfill", "bw", *dates.range_options(spring))
    assert result.code == 0, result.stderr

    (point,) = influx.points("bw_daily", database=workspace.out_database)
    assert point["time"] == dates.seconds(spring, ZURICH) * S
    assert point["octets_count"] == 23  # 23 hourly intervals end inside the 23-hour local day
    assert point["octets_mean"] == pytest.approx(1.0)


def test_a_forced_rerun_of_a_backfill_rewrites_the_same_points(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(
        [f"ifc,host=h{h} octets={i * 60}i {(DAY1 + i * 60) * S}" for h in range(3) for i in range(100)]
    )
    counter_job(workspace)
    first = workspace.run("backfill", "bw", *ONE_DAY)
    assert first.code == 0, first.stderr
    unforced = workspace.run("backfill", "bw", *ONE_DAY)
    assert "skipping 1 window(s) already done (--force re-runs them)" in unforced.stderr
    assert "bw: 0 window(s) done, 0 failed" in unforced.stderr
    again = workspace.run("backfill", "bw", *ONE_DAY, "--force")
    assert again.code == 0, again.stderr
    assert "bw: 1 window(s) done, 0 failed; 300 points read, 3 rows written" in again.stderr
    points = influx.points("bw_daily", database=workspace.out_database)
    assert len(points) == 3
    assert {p["octets_mean"] for p in points} == {1.0}


def test_preview_computes_without_writing_and_exports_csv(workspace: Workspace, influx: InfluxHelper) -> None:
    influx.write([f"ifc,host=v octets={i * 120}i {(DAY1 + i * 60) * S}" for i in range(50)])
    counter_job(workspace, aggregates='["mean"]')
    out = workspace.root / "preview.csv"
    result = workspace.run(
        "preview",
        "bw",
        *ONE_DAY,
        "--format",
        "csv",
        "--output",
        str(out),
    )
    assert result.code == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "window_start,window_end,host,octets_mean"
    assert lines[1] == f"{dates.local_stamp(DAY1)},{dates.local_stamp(DAY2)},v,2.0"
    assert influx.query("SHOW MEASUREMENTS", database=workspace.out_database) == []


def test_misplaced_key_is_reported_with_the_section_it_belongs_in(workspace: Workspace) -> None:
    counter_job(workspace)
    path = workspace.root / "jobs" / "bw.toml"
    path.write_text(path.read_text().replace('lookback = "1h"', 'lookback = "1h"\ngroup_by = ["host"]'))
    result = workspace.run("jobs", "validate")
    assert result.code == 2
    assert "window.group_by: unknown key 'group_by' here: it belongs in the top level" in result.stderr


def test_section_names_in_messages_are_printed_as_they_are(workspace: Workspace) -> None:
    """Messages quote "[output]" or "field [host] of type [long]": not terminal markup to drop."""
    counter_job(workspace)
    path = workspace.root / "jobs" / "bw.toml"
    path.write_text('sinks = ["out"]\n' + path.read_text())
    result = workspace.run("jobs", "validate")
    assert result.code == 2
    assert "unknown key 'sinks' here: it belongs in [output]" in result.stderr


def test_invalid_job_file_is_reported_with_file_key_and_reason(workspace: Workspace) -> None:
    counter_job(workspace, on_decrease="wrapp")
    result = workspace.run("jobs", "validate")
    assert result.code == 2
    assert "jobs/bw.toml: fields.octets.on_decrease" in result.stderr
    assert "'wrapp'" in result.stderr
    result = workspace.run("backfill", "bw", *ONE_DAY)
    assert result.code == 2
    assert "Traceback" not in result.stderr


def test_backfill_skips_windows_that_are_not_closed(workspace: Workspace, influx: InfluxHelper) -> None:
    counter_job(workspace)
    result = workspace.run("backfill", "bw", "--start", "yesterday", "--end", "now+0s", "--dry-run")
    assert result.code == 2  # "now+0s" is not a valid instant: the error says which forms are
    assert "invalid time 'now+0s'" in result.stderr
    result = workspace.run("backfill", "bw", "--start", "yesterday", "--end", "now", "--dry-run")
    assert result.code == 0, result.stderr
    assert "1 window(s) would run, 0 already done" in result.stdout
    assert "not closed yet" in result.stderr
