"""The metrics operators alert on, from a real ``rollup serve``: how far each job got and how late
it is (read from the ledger at scrape time), when it last succeeded (kept across a restart),
when a pass last ended, and windows the source had no point for."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import pytest

from scripts.servers import free_port
from tests.conftest import InfluxHelper, LedgerTarget
from tests.integration.serving import (
    WINDOW,
    S,
    Served,
    all_records,
    done_records,
    fast_job,
    first_window,
    serve_env,
    wait_for,
    write_counters,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

DELAY = S  # fast_job's delay
METRIC_PRECISION = 1e-5  # seconds: Unix times in nanoseconds, exposed as float seconds in text


def newest_end(ledger: LedgerTarget) -> float:
    return max(r.window.end for r in done_records(ledger)) / S


def test_lag_metrics_follow_the_ledger_and_the_last_success_survives_a_restart(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, serve: Callable[..., Served]
) -> None:
    start = first_window(back=4)
    write_counters(influx, start)
    fast_job(workspace, start)
    began = time.time()
    served = serve(workspace, serve_env(ledger))
    wait_for(lambda: len(done_records(ledger)) >= 5, 30, "5 windows done", served.output)

    # Windows keep closing: the ledger read before a scrape and the one after frame it.
    low = newest_end(ledger)
    metrics = served.metrics()
    high = newest_end(ledger)
    job = (("job", "fast"),)
    assert low - METRIC_PRECISION <= metrics[("rollup_newest_done_window_end_timestamp_seconds", job)]
    assert metrics[("rollup_newest_done_window_end_timestamp_seconds", job)] <= high + METRIC_PRECISION
    # A healthy job runs each window as it closes: its oldest owed window is seconds old at most.
    assert 0 <= metrics[("rollup_oldest_owed_window_age_seconds", job)] < 10
    assert began <= metrics[("rollup_last_pass_timestamp_seconds", job)] <= time.time()
    assert metrics[("rollup_windows_empty_total", job)] == 0  # every window had points
    assert served.stop().code == 0

    # Restarted with its source down, nothing more gets done: what the gauges say of the past
    # comes from the ledger, and the oldest owed window ages.
    with ledger.open() as opened:
        latest = opened.latest_done("fast")
    assert latest is not None
    down = {"ROLLUP_SOURCES__BUFFER__URL": f"http://127.0.0.1:{free_port()}"}
    restarted = serve(workspace, {**serve_env(ledger), **down})
    wait_for(
        lambda: restarted.metric("rollup_windows_failed_total", job="fast") >= 1,
        30,
        "a failed window",
        restarted.output,
    )
    wait_for(
        lambda: restarted.metric("rollup_oldest_owed_window_age_seconds", job="fast") >= 3,
        30,
        "the oldest owed window 3 seconds old",
        restarted.output,
    )
    metrics = restarted.metrics()
    last_success = metrics[("rollup_last_success_timestamp_seconds", job)]
    assert last_success == pytest.approx(latest.last_finished / S, abs=METRIC_PRECISION)
    newest = metrics[("rollup_newest_done_window_end_timestamp_seconds", job)]
    assert newest == pytest.approx(latest.newest_end / S, abs=METRIC_PRECISION)
    assert metrics[("rollup_windows_done_total", job)] == 0  # this process did not succeed once
    # The oldest owed window is the one after the newest done: closed at its end plus the delay.
    closed = (latest.newest_end + WINDOW + DELAY) / S
    age = metrics[("rollup_oldest_owed_window_age_seconds", job)]
    assert abs(age - (time.time() - closed)) < 3
    assert restarted.stop().code == 0
    assert {r.status for r in all_records(ledger) if r.window.end > latest.newest_end} == {"failed"}


def test_windows_whose_source_had_no_point_count_as_empty(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, serve: Callable[..., Served]
) -> None:
    start = first_window(back=3)
    # The measurement and field exist, with one point an hour before: nothing in any window.
    influx.write([f"ifc,host=a octets=1i {start - 3600 * 10**9}"])
    fast_job(workspace, start)
    served = serve(workspace, serve_env(ledger))
    wait_for(lambda: len(done_records(ledger)) >= 3, 30, "3 windows done", served.output)

    before = len(done_records(ledger))
    empty = served.metric("rollup_windows_empty_total", job="fast")
    after = len(done_records(ledger))
    assert before <= empty <= after
    assert all(r.points == 0 for r in done_records(ledger))
    assert re.search(r"pass: \d+ window\(s\) done \(\d+ empty: no point in the source\)", served.output())
    assert served.stop().code == 0


def test_a_job_removed_by_a_reload_leaves_no_stale_last_pass_behind(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, serve: Callable[..., Served]
) -> None:
    start = first_window(back=2)
    write_counters(influx, start)
    fast_job(workspace, start)
    fast_job(workspace, start, name="gone")
    served = serve(workspace, serve_env(ledger))
    wait_for(
        lambda: ("rollup_last_pass_timestamp_seconds", (("job", "gone"),)) in served.metrics(),
        30,
        "a pass of job gone",
        served.output,
    )

    (workspace.root / "jobs" / "gone.toml").unlink()
    served.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded 1 job(s)" in served.output(), 30, "the reload", served.output)
    names = {(name, labels) for name, labels in served.metrics()}
    assert ("rollup_last_pass_timestamp_seconds", (("job", "fast"),)) in names
    assert not [labels for _, labels in names if ("job", "gone") in labels]
    assert served.stop().code == 0
