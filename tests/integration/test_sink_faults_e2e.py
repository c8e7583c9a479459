"""Sinks that go down, stall or crawl during a backfill: the windows they could not take fail with
a message naming the sink, its URL and the reason, stay owed, and the next `rollup run` writes
them — to exactly what an uninterrupted backfill writes. Timeouts fire, retries wait with
exponential backoff plus jitter, and nothing hangs past the configured timeouts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.servers import RunningServer, free_port, start_elasticsearch, start_influxd
from tests.conftest import InfluxHelper
from tests.integration import scenario
from tests.integration.faults import TcpProxy

pytestmark = pytest.mark.integration

SINKS = ["influxdb", "elasticsearch"]


@pytest.fixture
def setup(scenario_raw: InfluxHelper, elasticsearch_url: str, tmp_path: Path) -> Iterator[scenario.Setup]:
    made = scenario.make_setup(
        scenario_raw, elasticsearch_url, tmp_path / "ws", scenario.sqlite_target(tmp_path)
    )
    yield made
    made.close()


@dataclass
class OwnServer:
    """A sink server of the test's own, stopped and started again on the same port and data."""

    kind: str
    directory: Path
    port: int
    server: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        start = start_influxd if self.kind == "influxdb" else start_elasticsearch
        self.server = start(self.directory, port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def own(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(request.param, tmp_path / "own", free_port())
    server.start()
    yield server
    server.stop()


def status(setup: scenario.Setup) -> dict[str, object]:
    result = setup.workspace.run("status", "--json", env=setup.env(scenario.LATER))
    assert result.code == 0, result.stderr
    [found] = json.loads(result.stdout)
    return dict(found)


def point_sink_at(setup: scenario.Setup, kind: str, url: str, **options: object) -> None:
    if kind == "influxdb":
        scenario.influx_sink(setup.workspace, url, setup.out_database, **options)  # type: ignore[arg-type]
    else:
        scenario.search_sink(setup.workspace, setup.search, url, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("own", SINKS, indirect=True)
def test_a_sink_stopped_mid_run_fails_the_rest_clearly_and_the_next_run_writes_exactly_what_was_owed(
    setup: scenario.Setup, own: OwnServer, scenario_baseline: scenario.Baseline
) -> None:
    if own.kind == "influxdb":
        assert own.server is not None
        InfluxHelper(own.server, setup.out_database).create_database(setup.out_database)
        scenario.influx_sink(setup.workspace, own.url, setup.out_database, retries=1)
    else:
        scenario.search_sink(setup.workspace, setup.search, own.url, retries=1)
    setup.source_proxy.arm(hold_at=2)  # the second day's query waits until the sink is down
    backfill = setup.workspace.start(*scenario.BACKFILL, env=setup.env())
    assert setup.source_proxy.held.wait(60), backfill.output()
    own.stop()
    setup.source_proxy.release()
    result = backfill.wait(120)

    assert result.code == 1
    assert "bw: 8 window(s) done, 16 failed" in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("  failed ")]
    assert len(failed) == 5  # the first five are shown
    reason = (
        rf"InfluxDB sink 'out': writing 7 points of measurement 'bw_3h' to {own.url}/write failed after 2 "
        r"attempts: ConnectError: \[Errno 111\] Connection refused"
        if own.kind == "influxdb"
        else rf"Elasticsearch sink 'search': .* at {own.url} failed after 2 attempts: .*[Rr]efused"
    )
    assert all(re.search(reason, line) for line in failed), failed
    found = status(setup)
    assert (found["done"], found["failed"], found["owed"]) == (8, 16, 16)
    assert re.search(reason, found["last_error"]["error"])  # type: ignore[index]

    own.start()
    resumed = setup.rerun()
    assert resumed.code == 0, resumed.stderr
    assert "pass: 16 window(s) done, 0 failed" in resumed.stderr
    final = setup.state(**{"influx_url" if own.kind == "influxdb" else "search_url": own.url})
    assert final == scenario_baseline.state


RETRY = re.compile(r"attempt (\d) failed \((.+?)\); retrying in (\d+\.\d+)s")


@pytest.mark.parametrize("kind", SINKS)
@pytest.mark.parametrize("fault", ["stall", "answer-too-late"])
def test_a_sink_that_does_not_answer_in_time_times_out_retries_with_jittered_backoff_and_never_hangs(
    setup: scenario.Setup, kind: str, fault: str, scenario_baseline: scenario.Baseline
) -> None:
    """Each day of the scenario is a span of its own: three writes that each time out three times."""
    upstream = setup.influx_proxy.upstream if kind == "influxdb" else setup.search_proxy.upstream
    host, port = upstream.removeprefix("http://").split(":")
    slow = TcpProxy((host, int(port)))
    if fault == "stall":
        slow.stall_after = 0
    else:
        slow.delay = 1.5
    point_sink_at(setup, kind, slow.url, retries=2, timeout="500ms")
    try:
        started = time.monotonic()
        result = setup.workspace.run(*scenario.BACKFILL, env=setup.env(), timeout=60)
        elapsed = time.monotonic() - started

        assert result.code == 1
        assert "bw: 0 window(s) done, 24 failed" in result.stderr
        assert "failed after 3 attempts" in result.stderr
        assert re.search(r"[Tt]imed? ?out", result.stderr), result.stderr
        retries = RETRY.findall(result.stderr)
        assert [attempt for attempt, _, _ in retries] == ["1", "2"] * scenario.DAYS, result.stderr
        waits = [float(wait) for _, _, wait in retries]
        # backoff 0.05 s, doubled: 0.05 then 0.1, each plus up to 0.05 s of jitter
        bare = [0.05, 0.1] * scenario.DAYS
        assert all(base <= wait <= base + 0.05 for base, wait in zip(bare, waits, strict=True)), waits
        # Printed to 10 ms, a wait shows no jitter one time in ten: all six, one run in a million.
        assert waits != bare, "no jitter"
        assert elapsed >= scenario.DAYS * 3 * 0.5, "every attempt waited for the timeout"
        assert elapsed < scenario.DAYS * (3 * 0.5 + 0.3) + 8, "the process outlived its timeouts"

        slow.stall_after = None
        slow.delay = 0.0
        resumed = setup.rerun()
    finally:
        slow.close()
    assert resumed.code == 0, resumed.stderr
    final = setup.state()
    assert final.ledger == scenario.all_done()
    assert final == scenario_baseline.state


def test_a_slow_sink_that_answers_within_the_timeout_is_simply_waited_for(
    setup: scenario.Setup, scenario_baseline: scenario.Baseline
) -> None:
    host, port = setup.influx_proxy.upstream.removeprefix("http://").split(":")
    slow = TcpProxy((host, int(port)))
    slow.delay = 0.05
    point_sink_at(setup, "influxdb", slow.url, retries=0, timeout="2s")
    try:
        result = setup.workspace.run(*scenario.BACKFILL, env=setup.env())
    finally:
        slow.close()
    assert result.code == 0, result.stderr
    assert "retrying" not in result.stderr
    assert setup.state() == scenario_baseline.state
