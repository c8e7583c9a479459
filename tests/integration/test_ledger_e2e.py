"""The ledger end to end: `rollup run` / `backfill` / `status` as real subprocesses, a real influxd,
and both ledger backends. Killed passes resume with no duplicate and no hole, two passes at once
never run a window twice, a cron-style sequence of passes catches up after downtime and retries
a failed window after its backoff."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter

import pytest
from pydantic import SecretStr

from rollup.ledger import open_ledger
from rollup.ledger.base import Record
from tests import dates
from tests.conftest import InfluxHelper, LedgerTarget
from tests.integration.proxy import WriteProxy, gated_sink
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
MONDAY = dates.monday(14)
"""Day 1: a UTC Monday at least two weeks ago. The passes run at simulated nows up to day 8, all
in the past of the real clock."""
DAY1 = dates.seconds(MONDAY)  # seconds
DAY = 86400
HOSTS = ("a", "b", "c")


def day(n: int) -> int:
    """Epoch ns of the start of day ``n`` (1 = ``MONDAY``, UTC)."""
    return (DAY1 + (n - 1) * DAY) * S


def date(n: int) -> str:
    """Day ``n`` as ``--start``/``--end`` and a job's ``start`` take it."""
    return (MONDAY + dt.timedelta(days=n - 1)).isoformat()


def at(n: int, time: str) -> str:
    """``ROLLUP_NOW`` at ``time`` (HH:MM, UTC) on day ``n``."""
    hours, minutes = time.split(":")
    return dates.utc_minute(DAY1 + (n - 1) * DAY + int(hours) * 3600 + int(minutes) * 60)


def stamp(n: int) -> str:
    """The start of day ``n`` as rollup shows it: ``2026-11-02T00:00:00+00:00``."""
    return dates.local_stamp(day(n) // S)


def raw_lines(days: int) -> list[str]:
    """10-minute counters of three hosts from just before day 1 on; host c restarts on day 2."""
    lines = []
    for number, host in enumerate(HOSTS, start=1):
        value = 1_000 * number
        for i in range(-1, days * 144):
            value = 500 if host == "c" and i == 200 else value + 600 * number + i % 7
            lines.append(f"ifc,host={host} octets={value}i {(DAY1 + i * 600) * S}")
    return lines


def daily_job(
    workspace: Workspace, sink: str = "out", name: str = "bw", extra: str = "", backoff: str = "10m"
) -> None:
    workspace.job(
        name,
        f"""
        start = {date(1)}
        {extra}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        delay = "15m"
        lookback = "1h"

        [fields.octets]
        on_decrease = "reset"
        aggregates = ["mean", "max", "increase"]

        [output]
        measurement = "{name}_daily"
        sinks = ["{sink}"]

        [schedule]
        retry_backoff = "{backoff}"
        """,
    )


def records(target: LedgerTarget, job: str = "bw") -> list[Record]:
    with target.open() as ledger:
        return ledger.records(job, 0, 2**62)


def outputs(
    influx: InfluxHelper, workspace: Workspace, measurement: str = "bw_daily"
) -> list[dict[str, object]]:
    points = influx.points(measurement, database=workspace.out_database)
    return sorted(points, key=lambda p: (p["time"], p["host"]))  # type: ignore[return-value]


def uninterrupted(
    influx: InfluxHelper, workspace: Workspace, env: dict[str, str], end: str
) -> list[dict[str, object]]:
    """What one uninterrupted backfill writes, from scratch."""
    influx.query('DROP MEASUREMENT "bw_daily"', database=workspace.out_database)
    assert outputs(influx, workspace) == []
    result = workspace.run("backfill", "bw", "--start", date(1), "--end", end, "--force", env=env)
    assert result.code == 0, result.stderr
    return outputs(influx, workspace)


def written(proxy: WriteProxy) -> Counter[tuple[str, int]]:
    """How often each (host, window start) was written through the proxy."""
    found: Counter[tuple[str, int]] = Counter()
    for line in proxy.lines():
        host = re.search(r",host=(\w+)", line)
        assert host is not None, line
        found[(host.group(1), int(line.rsplit(" ", 1)[1]))] += 1
    return found


# -- a killed pass resumes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "hold_at"),
    [("run", 3), ("backfill", 4)],
    ids=["run-killed-between-windows", "backfill-killed-mid-window"],
)
def test_a_killed_pass_resumes_with_no_duplicate_and_no_hole(
    workspace: Workspace,
    influx: InfluxHelper,
    proxy: WriteProxy,
    ledger_target: LedgerTarget,
    command: str,
    hold_at: int,
) -> None:
    influx.write(raw_lines(days=4))
    gated_sink(workspace, proxy, batch_size=2)
    daily_job(workspace, sink="gated")
    env = {**ledger_target.env(), "ROLLUP_NOW": at(5, "00:20")}
    args = ["run"] if command == "run" else ["backfill", "bw", "--start", date(1), "--end", date(5)]

    # Each window writes 3 points, 2 per request: writes 1-2 are day 1, writes 3-4 day 2.
    proxy.hold_at = hold_at
    dying = workspace.start(*args, env=env)
    assert proxy.held.wait(60), dying.output()
    dying.kill()
    assert [(r.window.start, r.status) for r in records(ledger_target)] == [
        (day(1), "done"),
        (day(2), "running"),
    ]
    assert sum(1 for _, start in written(proxy).elements() if start == day(2)) == 2 * (hold_at - 3)

    proxy.hold_at = None
    later = {**env, "ROLLUP_NOW": at(5, "00:21")}  # the dead claim's lease (2s) has expired
    resumed = workspace.run("run", env=later)
    assert resumed.code == 0, resumed.stderr

    final = records(ledger_target)
    assert [(r.window.start, r.status) for r in final] == [(day(n), "done") for n in (1, 2, 3, 4)]
    assert [r.attempts for r in final] == [1, 2, 1, 1]
    assert {window: count for window, count in written(proxy).items() if count > 1} == (
        {} if hold_at == 3 else {("a", day(2)): 2, ("b", day(2)): 2}
    )
    after_resume = outputs(influx, workspace)
    assert len(after_resume) == 12
    assert after_resume == uninterrupted(influx, workspace, later, date(5))


# -- replicas ----------------------------------------------------------------------------------


def test_two_runs_started_at_once_never_run_a_window_twice(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy, ledger_target: LedgerTarget
) -> None:
    influx.write(raw_lines(days=6))
    gated_sink(workspace, proxy, batch_size=2)
    daily_job(workspace, sink="gated")
    proxy.delay = 0.15  # each window takes a while, so the two passes overlap
    env = {**ledger_target.env(), "ROLLUP_NOW": at(7, "00:20")}
    ledger_target.open().close()  # both processes find the schema; the race is about windows

    passes = [workspace.start("run", env=env), workspace.start("run", env=env)]
    results = [p.wait() for p in passes]

    assert [r.code for r in results] == [0, 0], [r.stdout for r in results]
    assert written(proxy) == Counter({(host, day(n)): 1 for host in HOSTS for n in range(1, 7)})
    final = records(ledger_target)
    assert [(r.window.start, r.status, r.attempts) for r in final] == [
        (day(n), "done", 1) for n in range(1, 7)
    ]
    done = [int(re.findall(r"pass: (\d+) window\(s\) done", r.stdout)[0]) for r in results]
    assert sum(done) == 6
    assert min(done) >= 1, "one pass did everything: the two did not overlap"


# -- cron-style passes -------------------------------------------------------------------------


def test_cron_passes_fill_every_window_missed_during_downtime_and_retry_a_failed_one_after_its_backoff(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy, ledger_target: LedgerTarget
) -> None:
    influx.write(raw_lines(days=4))
    gated_sink(workspace, proxy, batch_size=2)
    daily_job(workspace, sink="gated", backoff="10s")  # backoffs follow the real clock, whatever --now
    env = ledger_target.env()

    def run_at(now: str) -> tuple[int, str]:
        result = workspace.run("run", env={**env, "ROLLUP_NOW": now})
        return result.code, result.stderr

    code, log = run_at(at(2, "00:20"))  # day 1 closed at 00:15
    assert code == 0, log
    assert "pass: 1 window(s) done, 0 failed" in log

    proxy.down = True  # the service was down two days, and now the sink is down too
    failed_at = time.time()
    code, log = run_at(at(4, "00:20"))
    assert code == 1
    assert "pass: 0 window(s) done, 2 failed" in log
    assert "HTTP 503" in log
    status = json.loads(workspace.run("status", "--json", env={**env, "ROLLUP_NOW": at(4, "00:25")}).stdout)
    assert status[0] | {"next_retry": None, "last_error": None} == {
        "job": "bw", "enabled": True, "done": 1, "running": 0, "failed": 2, "waiting_for_retry": 2,
        "owed": 2, "unrecoverable": 0, "oldest_owed": stamp(2), "next_retry": None,
        "last_error": None, "empty": 0, "owed_at_most": False, "timezone": "UTC",
        "reads_job": None, "waiting_for_upstream": 0,
    }  # fmt: skip
    next_retry = dt.datetime.fromisoformat(status[0]["next_retry"]).timestamp()
    assert failed_at + 10 <= next_retry <= time.time() + 10  # the failure's real time + the backoff
    assert "HTTP 503" in status[0]["last_error"]["error"]
    assert status[0]["last_error"]["attempts"] == 1
    assert status[0]["last_error"]["transient"] is True  # a 503: worth retrying soon

    proxy.down = False
    writes = len(proxy.writes)
    code, log = run_at(at(4, "00:25"))  # the failed windows still wait for their backoff
    assert code == 0, log
    assert "pass: 0 window(s) done, 0 failed, 2 failed window(s) waiting to retry" in log
    assert len(proxy.writes) == writes

    time.sleep(max(0.0, next_retry - time.time()) + 0.1)
    code, log = run_at(at(5, "00:20"))
    assert code == 0, log
    assert "pass: 3 window(s) done, 0 failed" in log
    final = records(ledger_target)
    assert [(r.window.start, r.status, r.attempts) for r in final] == [
        (day(1), "done", 1), (day(2), "done", 2), (day(3), "done", 2), (day(4), "done", 1)
    ]  # fmt: skip
    assert "HTTP 503" in (final[1].error or "")  # the last error is kept

    table = workspace.run("status", env={**env, "ROLLUP_NOW": at(5, "00:21")})
    assert table.code == 0, table.stderr
    assert re.search(r"bw\s*│\s*4\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*0\s*│", table.stdout), table.stdout

    after = outputs(influx, workspace)
    assert len(after) == 12
    assert after == uninterrupted(influx, workspace, env | {"ROLLUP_NOW": at(5, "00:21")}, date(5))


def test_windows_older_than_the_buffer_retention_are_reported_unrecoverable_once(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=8))
    daily_job(workspace, extra="", name="bw")
    path = workspace.root / "jobs" / "bw.toml"
    path.write_text(path.read_text().replace('retry_backoff = "10m"', 'buffer_retention = "3d"'))

    first = workspace.run("run", env={"ROLLUP_NOW": at(8, "00:20")})
    assert first.code == 0, first.stderr
    assert (
        f"5 window(s) from {stamp(1)} to {stamp(6)} are older than the buffer "
        "retention and were never done: they can no longer be computed"
    ) in first.stderr
    assert "pass: 2 window(s) done" in first.stderr  # days 6 and 7

    again = workspace.run("run", env={"ROLLUP_NOW": at(8, "01:00")})
    assert again.code == 0, again.stderr
    assert "older than the buffer retention" not in again.stderr

    (status,) = json.loads(workspace.run("status", "--json", env={"ROLLUP_NOW": at(8, "01:00")}).stdout)
    assert (status["done"], status["owed"], status["unrecoverable"]) == (2, 0, 5)
    with open_ledger(SecretStr(f"sqlite:{workspace.root / 'state' / 'ledger.sqlite'}")) as ledger:
        assert ledger.job_state("bw").unrecoverable == 5


# -- several jobs, bad configuration -----------------------------------------------------------


def test_one_jobs_failing_sink_does_not_stop_the_other_jobs(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy
) -> None:
    influx.write(raw_lines(days=2))
    gated_sink(workspace, proxy, batch_size=2)
    daily_job(workspace, sink="gated", name="broken")
    daily_job(workspace, sink="out", name="fine")
    proxy.down = True
    result = workspace.run("run", env={"ROLLUP_NOW": at(3, "00:20")})
    assert result.code == 1
    assert re.search(r"ERROR +window failed: .*HTTP 503.*job=broken .*event=window_failed", result.stderr)
    assert len(outputs(influx, workspace, "fine_daily")) == 6
    (status_broken, status_fine) = json.loads(
        workspace.run("status", "--json", env={"ROLLUP_NOW": at(3, "00:21")}).stdout
    )
    assert (status_broken["job"], status_broken["failed"], status_broken["done"]) == ("broken", 2, 0)
    assert (status_fine["job"], status_fine["failed"], status_fine["done"]) == ("fine", 0, 2)


def test_run_without_a_start_or_a_retention_is_a_configuration_error_and_runs_nothing(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=1))
    daily_job(workspace, name="fine")
    daily_job(workspace, name="unbounded")
    path = workspace.root / "jobs" / "unbounded.toml"
    path.write_text(path.read_text().replace(f"start = {date(1)}", ""))
    result = workspace.run("run", env={"ROLLUP_NOW": at(2, "00:20")})
    assert result.code == 2
    assert "job unbounded: set 'start' in the job file, or a buffer retention" in result.stderr
    assert influx.query("SHOW MEASUREMENTS", database=workspace.out_database) == []
    assert workspace.run("run", "nosuchjob").code == 2


# -- backfill through the ledger ---------------------------------------------------------------


def test_backfill_skips_done_windows_and_its_dry_run_says_which_are_done(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    influx.write(raw_lines(days=4))
    daily_job(workspace)
    env = {"ROLLUP_NOW": at(5, "00:20")}
    first = workspace.run("backfill", "bw", "--start", date(1), "--end", date(3), env=env)
    assert first.code == 0, first.stderr

    dry = workspace.run("backfill", "bw", "--start", date(1), "--end", date(5), "--dry-run", env=env)
    assert dry.code == 0, dry.stderr
    lines = [line.split("  ")[-1] for line in dry.stdout.splitlines()[:-1]]
    assert lines == ["done, skipped", "done, skipped", "run", "run"]
    assert dry.stdout.splitlines()[-1] == "2 window(s) would run, 2 already done"

    rest = workspace.run("backfill", "bw", "--start", date(1), "--end", date(5), env=env)
    assert rest.code == 0, rest.stderr
    assert "bw: 2 window(s) done, 0 failed" in rest.stderr
    assert len(outputs(influx, workspace)) == 12
