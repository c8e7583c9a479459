"""Several replicas started at once on one PostgreSQL ledger: every window of the scenario is
written exactly once to each sink (every point and document counted on the wire), none is
skipped, the ledger holds each done after one attempt, every replica exits 0, more than one of
them did some of the work, and the sinks hold exactly what one uninterrupted backfill writes.

``REPLICAS`` lists the commands started together: ``rollup run`` ×2, ``rollup run`` ×3 with a
``rollup backfill`` of the scenario's range, and ``rollup serve`` ×2. ``run`` and ``backfill``
act at the scenario's ``--now`` (the end of its range) and exit by themselves. ``serve`` plans with the real
clock, so its job gets a window delay under which the scenario's 24 windows are exactly the
closed ones (:func:`scenario.serve_delay`); the first InfluxDB write is held until one replica has
done a window, so both take part however far apart they start, and both are stopped with SIGTERM
once the ledger holds every window done. The test of two ``rollup run`` on both ledger backends, with one
sink, is ``test_ledger_e2e.py::test_two_runs_started_at_once_never_run_a_window_twice``; two
``rollup serve`` on windows that close as the test runs, ``test_serve.py::
test_two_replicas_on_one_postgresql_ledger_never_run_a_window_twice``.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.servers import RunningServer
from tests.conftest import InfluxHelper, LedgerTarget, new_postgres_database
from tests.integration import scenario
from tests.integration.serving import done_records, serve_env, wait_for
from tests.integration.workspace import Background

pytestmark = pytest.mark.integration

REPLICAS = {
    "run-x2": [("run",), ("run",)],
    "run-x3-and-a-backfill": [("run",), ("run",), ("run",), scenario.BACKFILL],
    "serve-x2": [("serve",), ("serve",)],
}


@pytest.fixture
def setup(
    scenario_raw: InfluxHelper, elasticsearch_url: str, postgres: RunningServer, tmp_path: Path
) -> Iterator[scenario.Setup]:
    ledger = LedgerTarget("postgresql", new_postgres_database(postgres), postgres.password)
    made = scenario.make_setup(scenario_raw, elasticsearch_url, tmp_path / "ws", ledger)
    yield made
    made.close()


def sink_writes(setup: scenario.Setup) -> tuple[Counter[str], Counter[str]]:
    """How often each point (series and time) reached InfluxDB, and each document id the search server."""
    points: Counter[str] = Counter()
    for body in setup.influx_proxy.bodies:
        for line in body.decode().splitlines():
            series, _, stamp = line.rpartition(" ")
            points[f"{series.split(' ')[0]} {stamp}"] += 1
    documents: Counter[str] = Counter()
    for body in setup.search_proxy.bodies:
        for action in body.splitlines()[0::2]:
            documents[json.loads(action)["index"]["_id"]] += 1
    return points, documents


def done_by_each(commands: list[tuple[str, ...]], outputs: list[str]) -> list[int]:
    """How many windows each process says it did: ``run`` sums them up per pass, ``serve`` logs
    a line per window (its pass summaries leave out passes of one window)."""
    return [
        output.count("event=window_done")
        if command[0] == "serve"
        else sum(map(int, re.findall(r"(\d+) window\(s\) done", output)))
        for command, output in zip(commands, outputs, strict=True)
    ]


def serve_until_all_done(setup: scenario.Setup, processes: list[Background]) -> None:
    """Let the serve replicas run until the ledger holds every window of the scenario done, then
    SIGTERM each. The first InfluxDB write is held until the other replica has done a window:
    however late one of them starts on a loaded machine, both do part of the work."""

    def output() -> str:
        return "\n".join(p.output() for p in processes)

    def running(condition: bool) -> bool:
        for process in processes:
            if process.process.poll() is not None:
                raise AssertionError(f"serve exited with {process.process.returncode}:\n{output()}")
        return condition

    proxy = setup.influx_proxy
    wait_for(lambda: running(proxy.held.is_set() and "event=window_done" in output()), 120, "overlap", output)
    proxy.release()

    def all_done() -> bool:
        time.sleep(0.4)  # with wait_for's 0.1 s: a ledger query every half second at most
        return running(len(done_records(setup.ledger, scenario.JOB)) >= scenario.WINDOWS)

    wait_for(all_done, 240, "every window done", output)
    for process in processes:
        process.process.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("commands", list(REPLICAS.values()), ids=list(REPLICAS))
def test_replicas_started_at_once_write_every_window_exactly_once(
    setup: scenario.Setup, commands: list[tuple[str, ...]], scenario_baseline: scenario.Baseline
) -> None:
    setup.ledger.open().close()  # the schema exists: the race is about windows
    setup.influx_proxy.delay = setup.search_proxy.delay = 0.05  # spans take a while: replicas overlap
    serving = all(command[0] == "serve" for command in commands)
    if serving:
        scenario.job_file(setup.workspace, delay=scenario.serve_delay(time.time_ns()))
        # The held write must not time out (no retry: it would take a second attempt).
        scenario.influx_sink(setup.workspace, setup.influx_proxy.url, setup.out_database, timeout="300s")
        setup.influx_proxy.hold_at = 1
        env = {**serve_env(setup.ledger), "ROLLUP_LEDGER_LEASE": "30s"}  # no takeover on a loaded machine
    else:
        env = setup.env()
    processes = [setup.workspace.start(*command, env=env) for command in commands]
    if serving:
        serve_until_all_done(setup, processes)
    results = [process.wait(180) for process in processes]

    assert [r.code for r in results] == [0] * len(commands), [r.stdout for r in results]
    points, documents = sink_writes(setup)
    assert len(points) == len(documents) == scenario.WINDOWS * 8
    assert set(points.values()) == {1}, "a point was written twice"
    assert set(documents.values()) == {1}, "a document was written twice"
    with setup.ledger.open() as ledger:
        final = ledger.records(scenario.JOB, 0, 2**62)
    assert [(r.window.start, r.status, r.attempts) for r in final] == [
        (start, "done", 1) for start in scenario.window_starts()
    ]
    done = done_by_each(commands, [r.stdout for r in results])
    assert sum(done) == scenario.WINDOWS
    assert sum(1 for count in done if count) >= 2, f"one replica did everything: they did not overlap {done}"
    assert setup.state() == scenario_baseline.state
