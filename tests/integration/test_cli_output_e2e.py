"""What the command prints, where operators put it: pipes get every value whole, JSON logs are
JSON on every line, times carry their zone, and the progress bar moves with the points read."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import InfluxHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
DAY = 86400
DAY1 = (int(time.time()) // DAY - 10) * DAY
"""UTC midnight ten days ago: the data's first day (derived from the clock, any day works)."""
LONG_NAME = "interface-traffic-daily-per-device-and-interface"


def day(n: int) -> str:
    return dt.datetime.fromtimestamp(DAY1 + (n - 1) * DAY, dt.UTC).date().isoformat()


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    made = Workspace(tmp_path / "ws", influx.url, influx.database)
    lines = []
    for host in ("sw001.example.org", "sw002.example.org"):
        for i in range(-6, 2 * 144):
            lines.append(f"ifc,host={host},ifName=xe-0/0/1 octets={1000 + i * 600}i {(DAY1 + i * 600) * S}")
    influx.write(lines)
    made.job(
        LONG_NAME,
        f"""
        description = "Daily traffic of every interface of every device, for the capacity report"
        start = {day(1)}
        group_by = ["host", "ifName"]

        [source]
        profile = "buffer"
        database = "{influx.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        timezone = "Europe/Zurich"

        [fields.octets]
        aggregates = ["mean", "max", "p95", "increase"]

        [output]
        measurement = "daily"
        sinks = ["out"]
        """,
    )
    return made


def test_piped_tables_show_every_value_whole(workspace: Workspace) -> None:
    listed = workspace.run("jobs", "list", env={"COLUMNS": "80"})
    assert listed.code == 0, listed.stderr
    assert LONG_NAME in listed.stdout
    assert "Daily traffic of every interface of every device, for the capacity report" in listed.stdout
    assert "…" not in listed.stdout

    shown = workspace.run("preview", LONG_NAME, "--start", day(2), "--end", day(3), env={"COLUMNS": "80"})
    assert shown.code == 0, shown.stderr
    assert "…" not in shown.stdout
    assert re.search(r"20\d\d-\d\d-\d\dT00:00:00\+0[12]:00", shown.stdout)  # the whole local start
    assert "sw001.example.org" in shown.stdout
    assert "windows in Europe/Zurich" in shown.stdout


def test_jobs_list_json_has_the_description_and_the_zone(workspace: Workspace) -> None:
    [job] = json.loads(workspace.run("jobs", "list", "--json").stdout)
    assert job["job"] == LONG_NAME
    assert job["description"].startswith("Daily traffic")
    assert (job["window"], job["timezone"], job["group_by"]) == ("1d", "Europe/Zurich", ["host", "ifName"])


def test_preview_filters_on_a_group_tag_and_stops_at_the_limit(workspace: Workspace) -> None:
    args = ("preview", LONG_NAME, "--start", day(1), "--end", day(3), "--format", "json")
    one = json.loads(workspace.run(*args, "--where", "host=sw002.example.org").stdout)
    assert {row["host"] for row in one} == {"sw002.example.org"}
    limited = workspace.run(*args, "--limit", "1")
    assert len(json.loads(limited.stdout)) == 1
    assert "stopped at 1 rows (--limit)" in limited.stderr
    foreign = workspace.run(*args, "--where", "site=zrh")
    assert foreign.code == 2
    assert "not a group_by tag" in foreign.stderr


def test_with_json_logs_every_line_on_stderr_is_a_json_object(workspace: Workspace) -> None:
    result = workspace.run(
        "--log-format", "json", "backfill", LONG_NAME, "--start", day(1), "--end", day(3), "--no-progress"
    )
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]  # raises on any other line
    events = [r["event"] for r in records]
    assert events.count("window_done") == 2
    assert events[-1] == "backfill_done"
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")  # ms, with the offset
    assert all(stamp.fullmatch(r["time"]) for r in records)
    windows = [r["window"] for r in records if r["event"] == "window_done"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00\+0[12]:00", w) for w in windows)  # local starts

    again = workspace.run(
        "--log-format", "json", "backfill", LONG_NAME, "--start", day(1), "--end", day(3), "--no-progress"
    )
    skipped = [json.loads(line) for line in again.stderr.splitlines()]
    assert "already_done" in [r["event"] for r in skipped]


def test_status_shows_times_with_their_offset(workspace: Workspace) -> None:
    workspace.job(
        "late",
        f"""
        start = {day(1)}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        timezone = "Europe/Zurich"

        [fields.octets]

        [output]
        measurement = "late"
        sinks = ["out"]
        """,
    )
    table = workspace.run("status", "late")
    assert table.code == 0, table.stderr
    assert re.search(r"\d{4}-\d\d-\d\d 00:00\+0[12]:00", table.stdout), table.stdout  # oldest owed, local


def test_jobs_show_gives_the_query_and_the_next_windows_with_their_zone(workspace: Workspace) -> None:
    shown = workspace.run("jobs", "show", LONG_NAME, "--windows", "2", "--now", f"{day(2)}T12:00Z")
    assert shown.code == 0, shown.stderr
    assert f'"name": "{LONG_NAME}"' in shown.stdout
    assert re.search(
        r'SELECT "octets" FROM "\w+"\.\."ifc" WHERE time >= \d+ AND time < \d+ GROUP BY \*', shown.stdout
    )
    windows = re.findall(r"(\S+ \S+) → (\S+ \S+)  closes (\S+ \S+)", shown.stdout)
    assert "next windows (Europe/Zurich):" in shown.stdout
    assert len(windows) == 2
    assert all(w[0].endswith(("+01:00", "+02:00")) for w in windows)  # local midnights, with the offset
    assert windows[0][1] == windows[1][0]  # consecutive
