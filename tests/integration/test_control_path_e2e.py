"""The state the ledger records is honest whatever the operator or the machine does: a simulated
clock, a killed or interrupted run, a typo, a broken file, a source that is down, a ledger file
deleted under a running backfill. Real subprocesses, a real influxd, the SQLite ledger.

Every date is derived from the real clock: the data lies in the recent past, so these tests pass
on any day and with the Python clock shifted (scripts/test.sh --clock-shift).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rollup.ledger import open_ledger
from rollup.ledger.base import Record
from tests.conftest import InfluxHelper
from tests.integration.proxy import WriteProxy, gated_sink
from tests.integration.workspace import Background, Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
DAY = 86400
HOSTS = ("a", "b", "c")
DAY1 = (int(time.time()) // DAY - 10) * DAY
"""UTC midnight ten days ago, in seconds: the first day of the data."""


def iso_day(n: int) -> str:
    """The date of day ``n`` (1 = DAY1)."""
    return dt.datetime.fromtimestamp(DAY1 + (n - 1) * DAY, dt.UTC).date().isoformat()


def day_ns(n: int) -> int:
    return (DAY1 + (n - 1) * DAY) * S


def raw_lines(days: int, measurement: str = "ifc", start_day: int = 1, lead: bool = True) -> list[str]:
    """10-minute counters of three hosts, from just before ``start_day`` (``lead``) or from it."""
    lines = []
    begin = DAY1 + (start_day - 1) * DAY
    for number, host in enumerate(HOSTS, start=1):
        value = 1_000 * number
        for i in range(-1 if lead else 0, days * 144):
            value += 600 * number
            lines.append(f"{measurement},host={host},if=eth0 octets={value}i {(begin + i * 600) * S}")
    return lines


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    made = Workspace(tmp_path / "ws", influx.url, influx.database)
    return made


def job(
    workspace: Workspace,
    name: str = "bw",
    *,
    sink: str = "out",
    measurement: str = "ifc",
    field: str = "octets",
    every: str = "1d",
    start: str | None = None,
    group_by: str = '["host"]',
    extra: str = "",
) -> None:
    begin = f"start = {start}" if start else ""
    workspace.job(
        name,
        f"""
        {begin}
        group_by = {group_by}
        {extra}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "{measurement}"

        [window]
        every = "{every}"
        lookback = "1h"

        [fields.{field}]
        aggregates = ["mean", "increase"]

        [output]
        measurement = "{name}_out"
        sinks = ["{sink}"]
        """,
    )


def ledger_rows(workspace: Workspace, name: str = "bw") -> list[Record]:
    from pydantic import SecretStr

    with open_ledger(SecretStr(f"sqlite:{workspace.root / 'state' / 'ledger.sqlite'}")) as ledger:
        return ledger.records(name, 0, 2**62)


# -- 1. a simulated now never writes what is not closed in real time --------------------------------


def test_a_now_later_than_the_real_clock_is_refused_by_commands_that_write(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=2))
    job(workspace, start=iso_day(1))
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%MZ")
    for args in (["run"], ["backfill", "bw", "--start", iso_day(1), "--end", iso_day(3)]):
        result = workspace.run(*args, "--now", future)
        assert result.code == 2, result.stderr
        assert result.stderr.startswith(f"error: --now {future} (")
        assert "is later than the real clock" in result.stderr
        assert "--dry-run or rollup status" in result.stderr
    assert not (workspace.root / "state").exists(), "a refused command opened the ledger"
    assert influx.query("SHOW MEASUREMENTS", database=workspace.out_database) == []

    dry = workspace.run(
        "backfill", "bw", "--start", iso_day(1), "--end", iso_day(3), "--dry-run", "--now", future
    )
    assert dry.code == 0, dry.stderr  # looking ahead is what a dry run is for
    status = workspace.run("status", "--json", "--now", future)
    assert status.code == 0, status.stderr


def test_a_past_now_plans_in_the_past_but_leases_and_recorded_times_follow_the_real_clock(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=3))
    job(workspace, start=iso_day(1))
    before = time.time_ns()
    result = workspace.run("run", "--now", f"{iso_day(3)}T00:00Z")  # only days 1 and 2 closed then
    assert result.code == 0, result.stderr
    rows = ledger_rows(workspace)
    assert [(r.window.start, r.status) for r in rows] == [(day_ns(1), "done"), (day_ns(2), "done")]
    assert all(r.finished is not None and before <= r.finished <= time.time_ns() for r in rows)


# -- 2. a dead owner's windows are taken over; a live owner's are reported --------------------------


def test_a_backfill_after_a_sigkill_takes_over_the_dead_process_windows_and_completes(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy
) -> None:
    influx.write(raw_lines(days=3))
    gated_sink(workspace, proxy)
    job(workspace, sink="gated", start=iso_day(1))
    args = ("backfill", "bw", "--start", iso_day(1), "--end", iso_day(4), "--no-progress")
    env = {"ROLLUP_LEDGER_LEASE": "1h"}  # the dead process's lease would hold for an hour
    proxy.hold_at = 2
    dying = workspace.start(*args, env=env)
    assert proxy.held.wait(60), dying.output()
    dying.kill()
    assert "running" in [r.status for r in ledger_rows(workspace)]
    proxy.hold_at = None

    again = workspace.run(*args, env=env)
    assert again.code == 0, again.stderr
    assert "took over 1 window(s) claimed by a process that died" in again.stderr
    assert [(r.status) for r in ledger_rows(workspace)] == ["done"] * 3


def test_a_backfill_waits_for_the_windows_a_live_process_holds_then_completes(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy
) -> None:
    influx.write(raw_lines(days=2))
    gated_sink(workspace, proxy)
    job(workspace, sink="gated", start=iso_day(1))
    args = ("backfill", "bw", "--start", iso_day(1), "--end", iso_day(3), "--no-progress")
    proxy.hold_at = 1
    holder = workspace.start(*args)
    try:
        assert proxy.held.wait(60), holder.output()
        second = workspace.start(*args)
        wait_until(lambda: "waiting for 1 window(s) another process is running" in second.output(), second)
        assert second.process.poll() is None, "the second backfill did not wait"
    finally:
        proxy.release()
        proxy.hold_at = None
    assert holder.wait().code == 0, holder.output()
    result = second.wait()
    assert result.code == 0, result.stdout
    assert [r.status for r in ledger_rows(workspace)] == ["done", "done"]
    assert [r.attempts for r in ledger_rows(workspace)] == [1, 1]  # each window ran once


def wait_until(condition: Callable[[], bool], process: Background, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.1)


# -- 3. a typo fails the window and names it; an empty window is recorded as empty ------------------


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        ("measurement", {"measurement": "ifcc"}, r"measurement 'ifcc' does not exist in database '\w+' "
         r"\(measurements: ifc\)"),
        ("field", {"field": "octetz"}, r"field\(s\) 'octetz' do not exist in measurement 'ifc' of database "
         r"'\w+' \(fields: octets\)"),
        ("tag", {"group_by": '["hots"]'}, r"tag\(s\) 'hots' of group_by/where do not exist in measurement "
         r"'ifc' of database '\w+' \(tags: host, if\)"),
    ],
)  # fmt: skip
def test_a_typo_in_a_name_fails_the_window_naming_it_and_what_exists(
    workspace: Workspace, influx: InfluxHelper, kind: str, change: dict[str, str], expected: str
) -> None:
    influx.write(raw_lines(days=1))
    job(workspace, start=iso_day(1), **change)  # type: ignore[arg-type]
    result = workspace.run("backfill", "bw", "--start", iso_day(1), "--end", iso_day(2))
    assert result.code == 1, result.stderr
    assert re.search(expected, result.stderr), result.stderr
    [row] = ledger_rows(workspace)
    assert (row.status, row.transient) == ("failed", False)  # needs a fix: not retried soon
    assert re.search(expected, row.error or "")
    online = workspace.run("jobs", "validate", "--online")
    assert online.code == 2
    assert re.search(expected, online.stderr), online.stderr

    job(workspace, start=iso_day(1))  # the typo fixed: a backfill runs the failed window at once
    fixed = workspace.run("backfill", "bw", "--start", iso_day(1), "--end", iso_day(2))
    assert fixed.code == 0, fixed.stderr
    assert [r.status for r in ledger_rows(workspace)] == ["done"]


def test_a_window_without_points_is_recorded_empty_and_shown_so(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=1, start_day=2, lead=False))  # day 1 has no point, day 2 has
    job(workspace, start=iso_day(1))
    result = workspace.run("backfill", "bw", "--start", iso_day(1), "--end", iso_day(3))
    assert result.code == 0, result.stderr
    assert "bw: 2 window(s) done (1 empty), 0 failed" in result.stderr
    [status] = json.loads(workspace.run("status", "--json").stdout)
    assert (status["done"], status["empty"]) == (2, 1)
    windows = json.loads(workspace.run("status", "bw", "--windows", "--json").stdout)
    assert [w["status"] for w in windows] == ["done", "empty"]  # newest first


# -- 4. a new job begins with its data, not with the whole retention -------------------------------


def test_a_job_without_start_begins_with_its_oldest_point_in_the_buffer(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=2, start_day=9))  # the last two days only, in a 30-day buffer
    job(workspace, every="1h", extra='[schedule]\nbuffer_retention = "30d"\nmax_windows_per_pass = 5000')
    result = workspace.run("run")
    assert result.code == 0, result.stderr
    rows = ledger_rows(workspace)
    assert rows[0].window.start == day_ns(9) - 3600 * S  # the hour of the first point (the lookback's)
    assert len(rows) < 3 * 24, "the job owed the whole retention"
    assert all(r.status == "done" for r in rows)
    [status] = json.loads(workspace.run("status", "--json").stdout)
    assert status["owed"] == 0


# -- 5. one broken file stops only itself -----------------------------------------------------------


def test_a_broken_job_file_is_reported_and_the_other_jobs_run(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=1))
    job(workspace, start=iso_day(1))
    (workspace.root / "jobs" / "typo.toml").write_text('name = "typo"\n[window]\nevery = "1d"\nbogus = 1\n')
    result = workspace.run("run")
    assert result.code == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: jobs/typo.toml: source: required key is missing; window.bogus: unknown key 'bogus'; fields: "
        "required key is missing; output: required key is missing"
    ]
    assert {r.status for r in ledger_rows(workspace)} == {"done"}  # every day since the start
    preview = workspace.run("preview", "bw", "--start", iso_day(1), "--end", iso_day(2), "--format", "csv")
    assert preview.code == 0, preview.stderr
    broken = workspace.run("preview", "typo", "--start", iso_day(1), "--end", iso_day(2))
    assert broken.code == 2
    assert broken.stderr.startswith("error: jobs/typo.toml: source: required key is missing")


# -- 6. Ctrl-C releases what is in flight ----------------------------------------------------------


def test_ctrl_c_during_a_forced_backfill_releases_the_window_instead_of_failing_it(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy
) -> None:
    influx.write(raw_lines(days=1))
    gated_sink(workspace, proxy)
    job(workspace, sink="gated", start=iso_day(1))
    args = ("backfill", "bw", "--start", iso_day(1), "--end", iso_day(2), "--no-progress")
    assert workspace.run(*args).code == 0
    proxy.arm(hold_at=1)
    interrupted = workspace.start(*args, "--force")
    assert proxy.held.wait(60), interrupted.output()
    interrupted.process.send_signal(signal.SIGINT)
    result = interrupted.wait()
    proxy.arm()
    assert result.code == 130, result.stdout
    assert "interrupted" in result.stdout
    [row] = ledger_rows(workspace)
    assert (row.status, row.failures, row.error, row.owner) == ("running", 0, None, None)
    assert row.lease_until is not None
    assert row.lease_until <= time.time_ns()  # owed again at once
    again = workspace.run(*args)
    assert again.code == 0, again.stderr
    assert [r.status for r in ledger_rows(workspace)] == ["done"]


# -- 7. a source that is down is not tried window after window -------------------------------------


def test_a_source_that_is_down_stops_the_run_after_two_spans_and_leaves_the_rest_owed(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    config = workspace.root / "config" / "rollup.toml"
    config.write_text(config.read_text().replace(influx.url, "http://127.0.0.1:9") + "retries = 0\n")
    job(workspace, every="3h", start=iso_day(1), extra="")
    result = workspace.run("backfill", "bw", "--start", iso_day(1), "--end", iso_day(5), "--no-progress")
    assert result.code == 1
    errors = [line for line in result.stderr.splitlines() if "window failed" in line]
    assert len(errors) <= 2 * 8, "every window was tried"  # two spans at most (a day of 3h windows each)
    assert result.stderr.count("stopped: the source does not answer") == 1
    assert len(ledger_rows(workspace)) == len(errors)  # the windows after the stop were never claimed


# -- issue 11: instants out of range, the ledger deleted, what a failed window read -----------------


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--now", "2300-01-01"),
        ("backfill", "bw", "--start", "2300-01-01", "--end", "2300-01-02"),
        ("backfill", "bw", "--start", "1600-01-01", "--end", "1600-01-02"),
    ],
)
def test_an_instant_outside_what_nanoseconds_hold_is_one_usage_error(
    workspace: Workspace, args: tuple[str, ...]
) -> None:
    job(workspace, start=iso_day(1))
    result = workspace.run(*args)
    assert result.code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "is out of range: rollup handles instants from 1677-09-21" in result.stderr


def test_deleting_the_ledger_under_a_running_backfill_fails_it_loudly(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy
) -> None:
    influx.write(raw_lines(days=3))
    gated_sink(workspace, proxy)
    job(workspace, sink="gated", start=iso_day(1), extra="[schedule]\nmax_windows_per_pass = 1")
    proxy.hold_at = 2
    running = workspace.start("backfill", "bw", "--start", iso_day(1), "--end", iso_day(4), "--no-progress")
    assert proxy.held.wait(60), running.output()
    for path in (workspace.root / "state").glob("ledger.sqlite*"):
        path.unlink()
    proxy.release()
    result = running.wait()
    assert result.code == 1, result.stdout
    assert (
        "error: the ledger sqlite:state/ledger.sqlite was deleted while this process was using it"
        in result.stdout
    )


def test_a_window_that_failed_to_write_reports_the_points_it_read(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy
) -> None:
    influx.write(raw_lines(days=1))
    gated_sink(workspace, proxy)
    job(workspace, sink="gated", start=iso_day(1))
    proxy.down = True
    result = workspace.run("backfill", "bw", "--start", iso_day(1), "--end", iso_day(2), "--no-progress")
    assert result.code == 1
    assert re.search(r"window failed: .*HTTP 503.* points=432 rows=0", result.stderr), result.stderr
    [row] = ledger_rows(workspace)
    assert (row.points, row.rows, row.transient) == (432, 0, True)


def test_an_aggregate_that_overflows_fails_its_window_naming_the_field(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=1))
    job(workspace, start=iso_day(1))
    path = workspace.root / "jobs" / "bw.toml"
    path.write_text(
        path.read_text().replace(
            'aggregates = ["mean", "increase"]', 'aggregates = ["mean", "increase"]\nscale = 1e308'
        )
    )
    result = workspace.run("backfill", "bw", "--start", iso_day(1), "--end", iso_day(2))
    assert result.code == 1, result.stderr
    assert re.search(
        r"job bw: octets_\w+ of group \{'host': 'a'\} is inf for the window starting .*: the aggregate "
        r"overflowed \(check the field's scale and unit\)",
        result.stderr,
    ), result.stderr
    [row] = ledger_rows(workspace)
    assert (row.status, row.transient, row.rows) == ("failed", False, 0)
