"""Running windows through the ledger in one process, on both backends: the heartbeat keeps a long
span's claim, a span that blows up is recorded as failed before the error goes on, and an
interrupted span is released (owed again at once), not failed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rollup.app.execution import Claims, Skipped, execute
from rollup.core.batch import Batch
from rollup.core.windows import Window
from rollup.jobs.planner import Due
from rollup.jobs.runner import JobRunner, WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Seen
from rollup.sources.base import SourceQuery, SourceSchema
from tests import dates
from tests.conftest import LedgerTarget

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = dates.seconds(dates.monday(7)) * S
"""The windows the runner records done: in the past of the real clock it records them with."""
JOB = JobSpec.model_validate(
    {
        "name": "slow",
        "source": {"profile": "buffer", "database": "raw", "measurement": "ifc"},
        "window": {"every": "10s"},
        "fields": {"octets": {}},
        "output": {"measurement": "slow_10s", "sinks": ["out"]},
    }
)


class SlowSource:
    """Takes ``seconds`` to answer with no points, or raises ``error`` once it has waited."""

    def __init__(self, seconds: float, error: Exception | None = None):
        self.seconds = seconds
        self.error = error
        self.started = threading.Event()

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        self.started.set()
        time.sleep(self.seconds)
        if self.error is not None:
            raise self.error
        yield from ()

    def schema(self, database: str, retention_policy: str | None, measurement: str) -> SourceSchema:
        return SourceSchema(True, fields={"octets": "integer"})

    def first_time(self, query: SourceQuery) -> int | None:
        return None

    def check(self) -> None:
        """Always answers."""

    def close(self) -> None:
        """Nothing to close."""


def due(count: int) -> list[Due]:
    return [Due(Window(T0 + i * 10 * S, T0 + (i + 1) * 10 * S), "missing", None) for i in range(count)]


def test_the_heartbeat_keeps_the_claim_of_a_span_that_outlasts_its_lease(ledger_target: LedgerTarget) -> None:
    source = SlowSource(seconds=4.0)
    lease = 2 * S
    outcomes: list[WindowOutcome | Skipped] = []
    with ledger_target.open() as ledger, ledger_target.open() as rival:
        claims = Claims(ledger, "slow", "slow-owner", lease)
        worker = threading.Thread(
            target=lambda: outcomes.extend(execute(due(3), JobRunner(JOB, source), claims))
        )
        worker.start()
        assert source.started.wait(10)
        time.sleep(2.6)  # well past the first lease: only the heartbeat (every 2/3 s) keeps it alive
        taken = rival.claim(
            "slow", [(d.window, Seen("running", 1)) for d in due(3)], "rival", time.time_ns(), lease
        )
        worker.join(30)
        records = rival.records("slow", 0, 2**62)
    assert taken == []
    assert [o.window for o in outcomes if isinstance(o, WindowOutcome) and o.ok] == [d.window for d in due(3)]
    assert [(r.status, r.attempts, r.owner) for r in records] == [("done", 1, None)] * 3


def test_without_a_heartbeat_an_expired_claim_is_taken_over(ledger_target: LedgerTarget) -> None:
    """The control for the test above: the rival's claim does work once a lease has expired."""
    lease = 1 * S
    with ledger_target.open() as ledger:
        ledger.claim("slow", [(d.window, None) for d in due(3)], "dead-owner", time.time_ns(), lease)
        time.sleep(1.2)
        taken = ledger.claim(
            "slow", [(d.window, Seen("running", 1)) for d in due(3)], "rival", time.time_ns(), lease
        )
    assert taken == [d.window for d in due(3)]


def test_a_span_that_blows_up_is_recorded_failed_and_the_error_goes_on(ledger_target: LedgerTarget) -> None:
    source = SlowSource(seconds=0, error=RuntimeError("a bug, not a source error"))
    with ledger_target.open() as ledger:
        claims = Claims(ledger, "slow", "owner", 60 * S)
        with pytest.raises(RuntimeError, match="a bug"):
            list(execute(due(2), JobRunner(JOB, source), claims))
        records = ledger.records("slow", 0, 2**62)
    assert [(r.status, r.error) for r in records] == [
        ("failed", "RuntimeError: a bug, not a source error")
    ] * 2


def test_an_interrupted_span_is_released_owed_again_at_once_not_failed(ledger_target: LedgerTarget) -> None:
    source = SlowSource(seconds=0, error=KeyboardInterrupt())
    with ledger_target.open() as ledger:
        claims = Claims(ledger, "slow", "owner", 60 * S)
        with pytest.raises(KeyboardInterrupt):
            list(execute(due(2), JobRunner(JOB, source), claims))
        records = ledger.records("slow", 0, 2**62)
        again = ledger.claim("slow", [(r.window, r.seen) for r in records], "next", time.time_ns(), 60 * S)
    assert [(r.status, r.failures, r.error, r.owner) for r in records] == [("running", 0, None, None)] * 2
    assert all(r.lease_until is not None and r.lease_until < time.time_ns() for r in records)
    assert again == [d.window for d in due(2)]  # no backoff: claimed by the next run at once
