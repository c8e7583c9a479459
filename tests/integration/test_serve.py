"""``rollup serve`` end to end, in real time: a real influxd, a job of 2-second windows, the
service as a subprocess. Windows run as they close, the metrics say what the ledger says,
SIGTERM finishes or releases the window in flight and exits 0, SIGKILL mid-window is caught up
after a restart with no duplicate, SIGHUP reloads a valid job set and keeps the old one when the
new one is invalid, and two replicas on one PostgreSQL ledger never run a window twice."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections import Counter

import pytest

from rollup.ledger.base import Record
from scripts.servers import RunningServer, free_port
from tests.conftest import InfluxHelper, LedgerTarget, new_postgres_database
from tests.integration.proxy import WriteProxy, gated_sink
from tests.integration.serving import (
    HOSTS,
    WINDOW,
    S,
    Served,
    all_records,
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


def outputs(influx: InfluxHelper, database: str) -> list[dict[str, object]]:
    points = influx.points("fast", database=database)
    return sorted(points, key=lambda p: (p["time"], p["host"]))  # type: ignore[return-value]


def serve_gated(
    workspace: Workspace,
    influx: InfluxHelper,
    ledger: LedgerTarget,
    proxy: WriteProxy,
    env: dict[str, str],
    done: int,
    back: int = 2,
) -> tuple[int, Served]:
    """``rollup serve`` of the fast job writing through ``proxy``, once ``done`` windows are done;
    returns the first window's start and the process."""
    start = first_window(back=back)
    write_counters(influx, start)
    gated_sink(workspace, proxy)
    fast_job(workspace, start, sink="gated")
    served = Served.start(workspace, env)
    wait_for(lambda: len(done_records(ledger)) >= done, 30, f"{done} window(s) done", served.output)
    return start, served


def reference(influx: InfluxHelper, workspace: Workspace, start: int, end: int) -> list[dict[str, object]]:
    """What one uninterrupted backfill of ``[start, end)`` writes (job ``ref``: the same job,
    disabled so the service leaves it alone, into database ``<db>_ref``, with its own ledger)."""
    database = f"{workspace.database}_ref"
    influx.create_database(database)
    workspace.sink("ref", f'type = "influxdb"\nurl = "{influx.url}"\ndatabase = "{database}"\n')
    fast_job(workspace, start, name="ref", sink="ref", enabled=False)
    env = {"ROLLUP_LEDGER": f"sqlite:{workspace.root / 'reference.sqlite'}"}
    result = workspace.run("backfill", "ref", "--start", iso(start), "--end", iso(end), env=env)
    assert result.code == 0, result.stderr
    return outputs(influx, database)


def contiguous(records: list[Record], start: int) -> bool:
    """Done windows from ``start`` on, one after the other, with no hole."""
    return [r.window.start for r in records] == [start + i * WINDOW for i in range(len(records))]


def written(proxy: WriteProxy) -> Counter[tuple[str, int]]:
    """How often each (host, window start) went through the proxy."""
    found: Counter[tuple[str, int]] = Counter()
    for line in proxy.lines():
        host = re.search(r",host=(\w+)", line)
        assert host is not None, line
        found[(host.group(1), int(line.rsplit(" ", 1)[1]))] += 1
    return found


# -- windows as they close, metrics, logs, SIGTERM --------------------------------------------


def test_serve_runs_each_window_as_it_closes_and_its_metrics_say_what_the_ledger_says(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget
) -> None:
    start = first_window(back=6)
    write_counters(influx, start)
    fast_job(workspace, start)
    served = Served.start(workspace, serve_env(ledger), "--log-format", "json")

    wait_for(lambda: len(done_records(ledger)) >= 8, 30, "8 windows done", served.output)
    before = served.metrics()
    records = done_records(ledger)

    def total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
        return metrics[(name, (("job", "fast"),))]

    # A window is counted right after the ledger records it done: the ledger read between two
    # scrapes is at least the first and at most the second, once the second caught up.
    expected = [
        ("rollup_windows_done_total", len(records)),
        ("rollup_points_read_total", sum(r.points for r in records)),
        ("rollup_rows_written_total", sum(r.rows for r in records)),
        ("rollup_window_duration_seconds_count", len(records)),
    ]
    wait_for(
        lambda: all(total(served.metrics(), name) >= value for name, value in expected),
        5,
        "caught up",
        served.output,
    )
    after = served.metrics()
    for name, from_ledger in expected:
        assert total(before, name) <= from_ledger <= total(after, name), name
    assert total(after, "rollup_windows_failed_total") == 0
    assert total(after, "rollup_windows_owed") <= 2  # at most the windows that just closed
    assert total(after, "rollup_windows_unrecoverable_total") == 0
    assert after[("rollup_ledger_up", ())] == 1
    assert total(after, "rollup_last_success_timestamp_seconds") * S >= records[-1].window.end
    assert contiguous(records, start)
    assert all(r.attempts == 1 for r in records)
    assert all((r.points, r.rows) == (4 * len(HOSTS), len(HOSTS)) for r in records)  # a sample every 0.5 s

    health, ready = served.get("/healthz"), served.get("/readyz")
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"ledger": "ok", "source buffer": "ok", "sink out": "ok"}

    result = served.stop()
    assert result.code == 0, result.stdout
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "serve_started"
    assert events[-2:] == ["serve_stopping", "serve_stopped"]
    done = [line for line in lines if line["event"] == "window_done"]
    assert {key for line in done for key in line} == {
        "time", "level", "logger", "message", "job", "window", "event", "points", "rows", "duration"
    }  # fmt: skip
    assert done[0]["window"] == iso(start).replace("Z", "+00:00")

    final = all_records(ledger)
    assert all(r.status == "done" for r in final)
    assert contiguous(final, start)
    assert outputs(influx, workspace.out_database) == reference(
        influx, workspace, start, final[-1].window.end
    )


def test_sigterm_lets_the_window_in_flight_finish_and_exits_0(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, proxy: WriteProxy
) -> None:
    _, served = serve_gated(workspace, influx, ledger, proxy, serve_env(ledger), done=2)

    proxy.delay = 2.0  # the next window's write takes 2 seconds
    proxy.arrived.clear()
    assert proxy.arrived.wait(10), served.output()
    in_flight = {r.window for r in all_records(ledger) if r.status == "running"}
    assert in_flight
    result = served.stop()

    assert result.code == 0, result.stdout
    assert "SIGTERM: no new windows; waiting up to 25s for 1 pass(es) in flight" in result.stdout
    final = all_records(ledger)
    assert {r.status for r in final if r.window in in_flight} == {"done"}
    assert all(r.status == "done" for r in final)
    assert "released" not in result.stdout


def test_sigterm_releases_a_window_that_does_not_finish_in_time_so_the_next_pass_takes_it_at_once(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, proxy: WriteProxy
) -> None:
    env = {**serve_env(ledger, shutdown_timeout="1s"), "ROLLUP_LEDGER_LEASE": "1h"}
    _, served = serve_gated(workspace, influx, ledger, proxy, env, done=1, back=1)

    proxy.hold_at = len(proxy.writes) + 1  # the next write never gets an answer
    assert proxy.held.wait(10), served.output()
    held = {r.window for r in all_records(ledger) if r.status == "running"}
    assert held
    result = served.stop()

    assert result.code == 0, result.stdout
    assert re.search(
        r"window released unfinished: it is owed again +job=fast window=\S+ event=window_released",
        result.stdout,
    )
    assert "1 pass(es) still running after 1s: stopped, their windows are owed again" in result.stdout
    released = [r for r in all_records(ledger) if r.window in held]
    assert {(r.status, r.owner, r.failures, r.lease_until) for r in released} == {("running", None, 0, 0)}

    proxy.hold_at = None
    later = workspace.run("run", env=env)  # the lease is an hour long: only the release lets it in
    assert later.code == 0, later.stderr
    assert {(r.status, r.attempts) for r in all_records(ledger) if r.window in held} == {("done", 2)}


def test_a_second_sigterm_exits_at_once_without_waiting_for_the_window_in_flight(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, proxy: WriteProxy
) -> None:
    env = serve_env(ledger, shutdown_timeout="1h")
    _, served = serve_gated(workspace, influx, ledger, proxy, env, done=1)
    proxy.hold_at = len(proxy.writes) + 1
    assert proxy.held.wait(10), served.output()

    served.signal(signal.SIGTERM)
    wait_for(lambda: "waiting up to 3600s" in served.output(), 10, "the first SIGTERM", served.output)
    started = time.monotonic()
    served.signal(signal.SIGTERM)
    result = served.background.wait(10)

    assert result.code == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5
    assert "second SIGTERM: exiting at once" in result.stdout
    assert {r.status for r in all_records(ledger)} == {"done", "running"}  # owed once the lease ends


# -- killed, restarted ------------------------------------------------------------------------


def test_after_sigkill_mid_window_a_restarted_service_catches_up_with_no_duplicate_and_no_hole(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, proxy: WriteProxy
) -> None:
    start, dying = serve_gated(workspace, influx, ledger, proxy, serve_env(ledger), done=2)
    proxy.hold_at = len(proxy.writes) + 1
    assert proxy.held.wait(10), dying.output()
    dying.kill()
    killed = [r for r in all_records(ledger) if r.status == "running"]
    assert killed
    assert all(r.owner is not None for r in killed)  # the dead process holds them until the lease (2 s) ends

    proxy.hold_at = None
    restarted = Served.start(workspace, serve_env(ledger))

    def caught_up() -> bool:
        done = done_records(ledger)
        return contiguous(done, start) and done[-1].window.start > killed[-1].window.start

    wait_for(caught_up, 30, "caught up", restarted.output)
    assert restarted.stop().code == 0

    final = all_records(ledger)
    assert all(r.status == "done" for r in final)
    assert contiguous(final, start)
    assert {r.window for r in final if r.attempts > 1} == {r.window for r in killed}
    # The held write was never forwarded: every row went through exactly once.
    assert written(proxy) == Counter({(host, r.window.start): 1 for r in final for host in HOSTS})
    assert outputs(influx, workspace.out_database) == reference(
        influx, workspace, start, final[-1].window.end
    )


# -- SIGHUP -----------------------------------------------------------------------------------


def test_sighup_loads_the_valid_jobs_reports_a_broken_file_and_keeps_running_a_job_whose_file_broke(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget
) -> None:
    start = first_window(back=2)
    write_counters(influx, start)
    fast_job(workspace, start)
    served = Served.start(workspace, serve_env(ledger))
    wait_for(lambda: len(done_records(ledger)) >= 2, 30, "2 windows done", served.output)

    fast_job(workspace, start, name="second")
    served.signal(signal.SIGHUP)
    wait_for(lambda: len(done_records(ledger, "second")) >= 3, 30, "the new job ran", served.output)
    assert "reloaded 2 job(s): added second; removed none; changed none" in served.output()

    workspace.job("broken", "[source]\nprofile = 'buffer'\nunknown = 1\n")
    fast = workspace.root / "jobs" / "fast.toml"
    fast.write_text(fast.read_text() + "\ntypo = 1\n")  # a running job's file breaks too
    served.signal(signal.SIGHUP)
    wait_for(
        lambda: "reloaded 2 job(s)" in served.output().split("added second")[-1], 10, "reload", served.output
    )
    output = served.output()
    assert re.search(
        r"ERROR +job file invalid: \S*broken\.toml: .*source\.unknown: unknown key 'unknown'", output
    )
    assert re.search(r"ERROR +job file invalid: \S*fast\.toml: \S*typo: unknown key 'typo'", output)
    for job in ("fast", "second"):  # both jobs go on, fast as it was loaded before
        count = len(done_records(ledger, job))
        wait_for(lambda job=job, count=count: len(done_records(ledger, job)) > count, 10, job, served.output)
    assert served.metric("rollup_reloads_total", result="ok") == 1
    assert served.metric("rollup_reloads_total", result="partial") == 1
    assert served.metric("rollup_jobs") == 2
    assert served.metric("rollup_job_files_invalid") == 2
    ready = served.get("/readyz")
    assert ready.status_code == 503
    assert "broken.toml" in ready.json()["checks"]["job files"]
    assert served.stop().code == 0


# -- replicas ---------------------------------------------------------------------------------


def test_two_replicas_on_one_postgresql_ledger_never_run_a_window_twice(
    workspace: Workspace, influx: InfluxHelper, proxy: WriteProxy, postgres: RunningServer
) -> None:
    shared = LedgerTarget("postgresql", new_postgres_database(postgres), postgres.password)
    shared.open().close()  # both find the schema; the race is about windows
    start = first_window(back=6)
    write_counters(influx, start)
    gated_sink(workspace, proxy)
    fast_job(workspace, start, sink="gated")
    proxy.delay = 0.2  # passes overlap
    env = {**serve_env(shared), "ROLLUP_LEDGER_LEASE": "30s"}  # no takeover on a loaded machine
    replicas = [workspace.start("serve", env=env) for _ in range(2)]
    served = [Served(replica) for replica in replicas]
    for replica in served:
        wait_for(replica.url_or_none, 30, "serve did not start", replica.output)
    wait_for(lambda: len(done_records(shared)) >= 8, 30, "8 windows done", served[0].output)

    def done_total() -> float:
        return sum(r.metric("rollup_windows_done_total", job="fast") for r in served)

    before = done_total()
    records = done_records(shared)
    assert before <= len(records)  # a window is counted once the ledger holds it done
    wait_for(lambda: done_total() >= len(records), 5, "the counters caught up", served[1].output)
    # Both fire at every window close and race for it; which one claims it is a matter of chance.
    for replica in served:
        wait_for(
            lambda r=replica: r.metric("rollup_passes_total", job="fast") >= 3, 10, "passes", replica.output
        )
    assert [r.code for r in (replica.stop() for replica in served)] == [0, 0]

    final = all_records(shared)
    assert all((r.status, r.attempts) == ("done", 1) for r in final)
    assert contiguous(final, start)
    assert written(proxy) == Counter({(host, r.window.start): 1 for r in final for host in HOSTS})


# -- readiness, start-up errors, sink errors --------------------------------------------------


def test_readyz_names_the_source_that_is_down_without_its_password_while_healthz_stays_ok(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget
) -> None:
    secret = "Very-s3cret-passw0rd"
    down = free_port()
    (workspace.root / "config" / "rollup.toml").write_text(
        f'[sources.buffer]\nurl = "http://127.0.0.1:{down}"\nusername = "rollup"\n'
        'password_env = "BUFFER_PASSWORD"\n'
    )
    fast_job(workspace, first_window())
    served = Served.start(workspace, {**serve_env(ledger), "BUFFER_PASSWORD": secret})
    ready = served.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["ledger"] == "ok"
    assert checks["sink out"] == "ok"
    assert f"cannot reach InfluxDB at http://127.0.0.1:{down}" in checks["source buffer"]
    assert served.get("/healthz").status_code == 200
    wait_for(lambda: "window failed" in served.output(), 20, "a failed window", served.output)
    assert served.metric("rollup_windows_failed_total", job="fast") >= 1
    result = served.stop()
    assert result.code == 0
    assert secret not in result.stdout
    assert secret not in ready.text


def test_serve_does_not_start_on_an_invalid_job_or_a_port_in_use(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget
) -> None:
    workspace.job("broken", "[window]\nevery = 'soon'\n")
    invalid = workspace.run("serve", env=serve_env(ledger), timeout=60)
    assert invalid.code == 2
    assert re.search(r"broken\.toml: .*window\.every", invalid.stderr)
    (workspace.root / "jobs" / "broken.toml").unlink()

    fast_job(workspace, first_window())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = workspace.run("serve", env=serve_env(ledger, port=port), timeout=60)
    assert busy.code == 2
    assert f"serve: cannot listen on 127.0.0.1:{port}: Address already in use" in busy.stderr
    assert all_records(ledger) == []  # nothing ran


def test_sink_errors_and_failed_windows_are_counted_as_the_ledger_records_them(
    workspace: Workspace, influx: InfluxHelper, ledger: LedgerTarget, proxy: WriteProxy
) -> None:
    start = first_window(back=2)
    write_counters(influx, start)
    gated_sink(workspace, proxy)
    fast_job(workspace, start, sink="gated")
    proxy.down = True
    served = Served.start(workspace, serve_env(ledger))
    wait_for(lambda: len(all_records(ledger)) >= 3, 30, "3 windows tried", served.output)

    before = served.metrics()
    attempts = sum(r.failures for r in all_records(ledger))
    after = served.metrics()
    failed = ("rollup_windows_failed_total", (("job", "fast"),))
    assert before[failed] <= attempts <= after[failed]
    assert after[("rollup_windows_done_total", (("job", "fast"),))] == 0
    # One write per span of windows, no retry: a sink error per failed span.
    assert 1 <= after[("rollup_sink_errors_total", (("sink", "gated"),))] <= after[failed]

    result = served.stop()
    assert result.code == 0
    assert re.search(r"ERROR +window failed: InfluxDB sink 'gated': .*HTTP 503", result.stdout)
    assert {r.status for r in all_records(ledger)} == {"failed"}
