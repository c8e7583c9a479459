"""Several replicas started at once on one PostgreSQL ledger: every window of the scenario is
written exactly once to each sink (every point and document counted on the wire), none is
skipped, the ledger holds each done after one attempt, and the sinks hold exactly what one
uninterrupted backfill writes.

``REPLICAS`` lists the commands started together. ``rollup serve`` ×2 belongs here as well once
``rollup serve`` exists (it is being built on another branch): add its case to ``REPLICAS``,
started with a fixed ``--now`` and stopped (SIGTERM) once the ledger holds every window done.
The test of two ``rollup run`` on both ledger backends, with one sink, is
``test_ledger_e2e.py::test_two_runs_started_at_once_never_run_a_window_twice``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import InfluxHelper, LedgerTarget, new_postgres_database
from tests.integration import scenario
from tests.servers import RunningServer

pytestmark = pytest.mark.integration

REPLICAS = {
    "run-x2": [("run",), ("run",)],
    "run-x3-and-a-backfill": [("run",), ("run",), ("run",), scenario.BACKFILL],
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


@pytest.mark.parametrize("commands", list(REPLICAS.values()), ids=list(REPLICAS))
def test_replicas_started_at_once_write_every_window_exactly_once(
    setup: scenario.Setup, commands: list[tuple[str, ...]], scenario_baseline: scenario.Baseline
) -> None:
    setup.ledger.open().close()  # the schema exists: the race is about windows
    setup.influx_proxy.delay = setup.search_proxy.delay = 0.05  # spans take a while: replicas overlap
    processes = [setup.workspace.start(*command, env=setup.env()) for command in commands]
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
    done = [sum(map(int, re.findall(r"(\d+) window\(s\) done", r.stdout))) for r in results]
    assert sum(done) == scenario.WINDOWS
    assert sum(1 for count in done if count) >= 2, f"one replica did everything: they did not overlap {done}"
    assert setup.state() == scenario_baseline.state
