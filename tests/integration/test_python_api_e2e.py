"""The Python API against a real influxd: ``rollup.preview`` gives the rows of ``rollup preview``
as a typed DataFrame (the CSV the command prints, parsed by pandas, is the same frame), and
``rollup.backfill`` writes through the ledger like ``rollup backfill``."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import rollup
from tests import dates
from tests.conftest import InfluxHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 10**9
ZURICH = ZoneInfo("Europe/Zurich")
MONDAY = dates.monday(9, ZURICH, days=7)
"""A week of 24-hour local days, at least nine days ago."""
START = dates.seconds(MONDAY, ZURICH)
DAYS = 7
RANGE = (MONDAY.isoformat(), (MONDAY + dt.timedelta(days=DAYS)).isoformat())
SERIES = [("a", "zrh"), ("b", "zrh"), ("c", None)]
"""(host, site): host c has no site tag."""
JOB = """\
group_by = ["site", "host"]

[source]
profile = "buffer"
database = "{database}"
measurement = "ifc"

[window]
every = "1d"
timezone = "Europe/Zurich"
lookback = "30m"

[fields.octets]
scale = 8
aggregates = ["mean", "max", "count", "p95"]

[output]
measurement = "bw_daily"
sinks = ["out"]
"""


def write_week(influx: InfluxHelper) -> None:
    """Host ``i`` counts octets at ``(i + 1) × (1 + day)`` per second, every 10 minutes, from half
    an hour before the week to its end; host b misses every point of the fourth day."""
    lines = []
    for i, (host, site) in enumerate(SERIES):
        tags = f"host={host}" + (f",site={site}" if site else "")
        counter = 0
        for t in range(START - 1800, START + DAYS * 86400, 600):
            day = max((t - START) // 86400, 0)
            counter += 600 * (i + 1) * (1 + day)
            if host == "b" and day == 3:
                continue
            lines.append(f"ifc,{tags} octets={counter}i {t * S}")
    influx.write(lines)


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    made = Workspace(tmp_path / "ws", influx.url, influx.database)
    made.job("bw", JOB.format(database=influx.database))
    write_week(influx)
    for name in [name for name in os.environ if name.startswith("ROLLUP_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(made.root)  # the settings' relative paths (jobs, sinks, ledger) start here
    return made


INTEGERS = ("_count", "_samples", "_invalid", "_resets", "_gaps")
"""The integer outputs: nullable integers in the frame."""


def parsed_csv(text: str, zone: str) -> pd.DataFrame:
    """``rollup preview --format csv`` read by pandas with the types the API documents."""
    header = text.splitlines()[0].split(",")
    tags = [name for name in header if name in ("host", "site")]
    integers = [name for name in header if name.endswith(INTEGERS)]
    exact = {"float_precision": "round_trip"} if pd.__version__ < "3" else {}  # pandas 3: the default
    frame = pd.read_csv(
        io.StringIO(text),
        dtype={**dict.fromkeys(tags, str), **dict.fromkeys(integers, "Int64")},
        keep_default_na=False,
        na_values={name: [""] for name in header if name not in tags},
        **exact,
    )
    for column in ("window_start", "window_end"):
        moments = pd.to_datetime(frame[column], format="ISO8601", utc=True)
        frame[column] = moments.dt.tz_convert(zone).dt.as_unit("ns")
    return frame


def test_preview_returns_the_rows_of_rollup_preview_csv_as_a_typed_dataframe(workspace: Workspace) -> None:
    job = rollup.load_job("jobs/bw.toml")
    frame = rollup.preview(job, *RANGE)

    cli = workspace.run("preview", "bw", "--start", RANGE[0], "--end", RANGE[1], "--format", "csv")
    assert cli.code == 0, cli.stderr
    pd.testing.assert_frame_equal(frame, parsed_csv(cli.stdout, "Europe/Zurich"))

    assert list(frame.columns) == [
        "window_start",
        "window_end",
        "host",
        "site",
        "octets_mean",
        "octets_max",
        "octets_count",
        "octets_p95",
    ]
    assert str(frame["window_start"].dtype) == "datetime64[ns, Europe/Zurich]"
    assert frame["window_start"].iloc[0] == pd.Timestamp(MONDAY.isoformat(), tz="Europe/Zurich")
    assert str(frame["octets_count"].dtype) == "Int64"
    assert len(frame) == 3 * DAYS - 1  # host b has no point on the fourth day
    day_four = frame[frame["window_start"].dt.date == MONDAY + dt.timedelta(days=3)]
    assert sorted(day_four["host"]) == ["a", "c"]
    host_c = frame[frame["host"] == "c"]
    assert (host_c["site"] == "").all()
    assert host_c["octets_mean"].tolist() == [8.0 * 3 * (1 + day) for day in range(DAYS)]
    assert host_c["octets_count"].tolist() == [144] * DAYS


def test_coverage_and_where_narrow_or_widen_the_frame_like_the_command(workspace: Workspace) -> None:
    job = rollup.load_job("bw")  # by name, from the settings' jobs_dir
    frame = rollup.preview(job, *RANGE, where={"host": "a"}, coverage=True)
    cli = workspace.run(
        "preview", "bw", "--start", RANGE[0], "--end", RANGE[1], "--format", "csv", "--where", "host=a",
        "--coverage",
    )  # fmt: skip
    assert cli.code == 0, cli.stderr
    pd.testing.assert_frame_equal(frame, parsed_csv(cli.stdout, "Europe/Zurich"))
    assert set(frame["host"]) == {"a"}
    assert frame["octets_seconds"].tolist() == [86400.0] * DAYS


def test_preview_format_parquet_writes_the_same_frame(workspace: Workspace) -> None:
    frame = rollup.preview(rollup.load_job("jobs/bw.toml"), *RANGE)
    cli = workspace.run(
        "preview",
        "bw",
        "--start",
        RANGE[0],
        "--end",
        RANGE[1],
        "--format",
        "parquet",
        "--output",
        "week.parquet",
    )
    assert cli.code == 0, cli.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(workspace.root / "week.parquet"), frame)

    missing = workspace.run("preview", "bw", "--start", RANGE[0], "--end", RANGE[1], "--format", "parquet")
    assert missing.code == 2
    assert "--format parquet writes a file: give it with --output" in missing.stderr


def test_backfill_writes_through_the_ledger_and_returns_a_typed_report(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    job = rollup.load_job("jobs/bw.toml")
    report = rollup.backfill(job, MONDAY, MONDAY + dt.timedelta(days=DAYS))

    assert isinstance(report, rollup.BackfillReport)
    assert (report.done, report.failed, report.rows, report.complete) == (DAYS, 0, 3 * DAYS - 1, True)
    points = influx.points("bw_daily", database=workspace.out_database)
    assert len(points) == 3 * DAYS - 1
    assert {p["octets_count"] for p in points if p["host"] == "a"} == {144}

    again = rollup.backfill(job, *RANGE)  # done windows are skipped, as by the command
    assert (again.done, again.tally.done) == (0, DAYS)


def test_a_job_loads_from_a_dict_and_errors_name_the_job_key_and_reason(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    spec = {
        "name": "bw-dict",
        "group_by": ["host"],
        "source": {"profile": "buffer", "database": influx.database, "measurement": "ifc"},
        "window": {"every": "1d", "timezone": "Europe/Zurich"},
        "fields": {"octets": {"aggregates": ["max"]}},
        "output": {"measurement": "bw", "sinks": ["out"]},
    }
    frame = rollup.preview(rollup.load_job(spec), *RANGE)
    assert sorted(set(frame["host"])) == ["a", "b", "c"]

    spec["fields"] = {"octets": {"aggregates": ["max", "median"]}}
    with pytest.raises(
        rollup.ConfigError, match=r"^job bw-dict: fields\.octets\.aggregates: unknown aggregate"
    ):
        rollup.load_job(spec)
    with pytest.raises(rollup.ConfigError, match="start: invalid time 'monday'"):
        rollup.preview(rollup.load_job("bw"), "monday", RANGE[1])
