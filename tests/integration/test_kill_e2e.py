"""A backfill of 24 windows into InfluxDB and Elasticsearch, killed (SIGKILL) at seeded random
points — while a write is on its way, after the sink stored a write but before the process heard
back, or after a random delay — once or twice, then finished by one `rollup run`: the sinks hold
exactly what an uninterrupted backfill writes (every point and field, every document), the
ledger holds every window once, done, and no window recorded done is ever written again.

The default run tries a few seeds; ``--slow`` tries twenty more.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.servers import RunningServer
from tests.conftest import InfluxHelper, LedgerTarget, new_postgres_database
from tests.integration import scenario
from tests.integration.workspace import Background

pytestmark = pytest.mark.integration


def done_windows(setup: scenario.Setup) -> set[int]:
    with setup.ledger.open() as ledger:
        return {r.window.start for r in ledger.records(scenario.JOB, 0, 2**62) if r.status == "done"}


def kill_somewhere(setup: scenario.Setup, rng: random.Random, baseline: scenario.Baseline) -> str:
    """Start the backfill and SIGKILL it at a point drawn from ``rng``; describe the point."""
    where = rng.choice(["influx", "search", "timer"])
    if where == "timer":
        delay = rng.uniform(0.5, baseline.seconds)
        setup.influx_proxy.arm()
        setup.search_proxy.arm()
        process = setup.workspace.start(*scenario.BACKFILL, env=setup.env())
        finished = wait_for(process, lambda: False, delay)
        point = f"after {delay:.2f}s"
    else:
        proxy = setup.influx_proxy if where == "influx" else setup.search_proxy
        count = baseline.influx_writes if where == "influx" else baseline.search_writes
        number = rng.randint(1, count)
        after = rng.random() < 0.5
        (setup.search_proxy if where == "influx" else setup.influx_proxy).arm()
        proxy.arm(hold_at=number, after_forwarding=after)
        process = setup.workspace.start(*scenario.BACKFILL, env=setup.env())
        finished = wait_for(process, proxy.held.is_set, 60)
        point = f"{where} write {number} of {count}, {'after' if after else 'before'} it reached the server"
    if finished:  # the remaining work needed fewer writes than the point chosen
        assert process.wait().code == 0, process.output()
        return point + " (the backfill finished first)"
    process.kill()
    return point


def wait_for(process: Background, condition: Callable[[], bool], seconds: float) -> bool:
    """Wait until ``condition()`` holds or ``seconds`` pass; True if the process exited first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        if process.process.poll() is not None:
            return True
        time.sleep(0.01)
    assert condition() or seconds < 60, f"the kill point was never reached:\n{process.output()}"
    return process.process.poll() is not None


def check_killed_backfills_resume_exactly(
    seed: int,
    raw: InfluxHelper,
    elasticsearch_url: str,
    baseline: scenario.Baseline,
    root: Path,
    ledger: LedgerTarget,
) -> None:
    rng = random.Random(seed)
    setup = scenario.make_setup(raw, elasticsearch_url, root, ledger)
    try:
        points = []
        for _ in range(rng.choice([1, 1, 2])):
            done_before = done_windows(setup)
            points.append(kill_somewhere(setup, rng, baseline))
            rewritten = setup.written_windows() & done_before
            assert not rewritten, f"windows done before were written again: {sorted(rewritten)}; {points}"
        done_before = done_windows(setup)
        setup.influx_proxy.arm()
        setup.search_proxy.arm()
        resumed = setup.rerun()
        assert resumed.code == 0, f"{points}\n{resumed.stderr}"
        assert not setup.written_windows() & done_before, points
        final = setup.state()
        assert final.ledger == scenario.all_done(), points
        assert final.points == baseline.state.points, points
        assert final.documents == baseline.state.documents, points
    finally:
        setup.close()


@pytest.fixture
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerTarget:
    """Even seeds use an SQLite ledger, odd ones PostgreSQL."""
    if int(request.node.callspec.params["seed"]) % 2 == 0:
        return scenario.sqlite_target(tmp_path)
    server: RunningServer = request.getfixturevalue("postgres")
    return LedgerTarget("postgresql", new_postgres_database(server), server.password)


@pytest.mark.parametrize("seed", range(4))
def test_a_backfill_killed_at_random_points_resumes_to_exactly_the_uninterrupted_result(
    seed: int,
    scenario_raw: InfluxHelper,
    elasticsearch_url: str,
    scenario_baseline: scenario.Baseline,
    tmp_path: Path,
    ledger: LedgerTarget,
) -> None:
    check_killed_backfills_resume_exactly(
        seed, scenario_raw, elasticsearch_url, scenario_baseline, tmp_path / "ws", ledger
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_a_backfill_killed_at_random_points_resumes_to_exactly_the_uninterrupted_result_long(
    seed: int,
    scenario_raw: InfluxHelper,
    elasticsearch_url: str,
    scenario_baseline: scenario.Baseline,
    tmp_path: Path,
    ledger: LedgerTarget,
) -> None:
    check_killed_backfills_resume_exactly(
        seed, scenario_raw, elasticsearch_url, scenario_baseline, tmp_path / "ws", ledger
    )
