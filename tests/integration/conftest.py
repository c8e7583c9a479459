"""Fixtures shared by the integration tests: a write proxy in front of the test influxd, the raw
counters of :mod:`tests.integration.scenario`, written once, and what an uninterrupted backfill
of them writes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.servers import RunningServer
from tests.conftest import InfluxHelper, LedgerTarget
from tests.integration import scenario
from tests.integration.proxy import WriteProxy
from tests.integration.serving import Served
from tests.integration.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    """Settings, jobs and sink profiles in a directory of their own (modules may define another)."""
    return Workspace(tmp_path / "ws", influx.url, influx.database)


@pytest.fixture
def ledger(tmp_path: Path) -> LedgerTarget:
    """A SQLite ledger in the test's directory (modules may define another)."""
    return LedgerTarget("sqlite", f"sqlite://{tmp_path / 'ledger.sqlite'}")


@pytest.fixture
def proxy(influx: InfluxHelper) -> Iterator[WriteProxy]:
    gate = WriteProxy(influx.url)
    yield gate
    gate.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Starts ``rollup serve`` like ``Served.start``; a process still running when the test ends
    (it failed before stopping it) is killed."""
    started: list[Served] = []

    def start(workspace: Workspace, env: dict[str, str], *options: str) -> Served:
        served = Served.start(workspace, env, *options)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.background.process.poll() is None:
            served.kill()


@pytest.fixture(scope="session")
def scenario_raw(influxd: RunningServer) -> InfluxHelper:
    """The scenario's raw counters, written once; tests only read them."""
    helper = InfluxHelper(influxd, f"scenario{os.getpid()}")
    helper.create_database(helper.database)
    helper.write(scenario.raw_lines())
    return helper


@pytest.fixture(scope="session")
def scenario_baseline(
    scenario_raw: InfluxHelper, elasticsearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[scenario.Baseline]:
    """One uninterrupted backfill of the scenario: what it writes and how many requests it takes."""
    root = tmp_path_factory.mktemp("baseline")
    setup = scenario.make_setup(scenario_raw, elasticsearch_url, root, scenario.sqlite_target(root))
    started = time.monotonic()
    result = setup.workspace.run(*scenario.BACKFILL, env=setup.env())
    seconds = time.monotonic() - started
    assert result.code == 0, result.stderr
    state = setup.state()
    assert state.ledger == scenario.all_done()
    assert len(state.points) == len(state.documents) == scenario.WINDOWS * 8
    yield scenario.Baseline(
        state, setup.source_proxy.seen, setup.influx_proxy.seen, setup.search_proxy.seen, seconds
    )
    setup.close()
