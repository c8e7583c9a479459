"""Running windows through the ledger: claim a span's windows, run the claimed ones, record each.

Each span the runner reads is first claimed in the ledger (atomically: windows another process
took meanwhile are skipped). While the span runs, a heartbeat thread renews the lease, so a long
span is not taken over while a dead process's windows become owed again once its lease expires.
A window is recorded done only after every sink accepted its rows, and failed (with the error)
otherwise.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rollup.core.windows import Window
from rollup.errors import LedgerError
from rollup.jobs.clock import Clock
from rollup.jobs.planner import Due
from rollup.jobs.runner import JobRunner, WindowOutcome, contiguous_runs
from rollup.ledger.base import Finished, Ledger
from rollup.secrets import redact

log = logging.getLogger(__name__)


def new_owner() -> str:
    """A claim owner: host, process and a random part (a restarted process never reuses one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A due window another process claimed first."""

    window: Window


class Heartbeat:
    """Renews the lease of claimed windows every third of the lease until stopped."""

    def __init__(
        self, ledger: Ledger, job: str, windows: Sequence[Window], owner: str, clock: Clock, lease_ns: int
    ):
        self._ledger = ledger
        self._job = job
        self._windows = windows
        self._owner = owner
        self._clock = clock
        self._lease_ns = lease_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{job}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._lease_ns / 3e9):
            try:
                self._ledger.renew(self._job, self._windows, self._owner, self._clock.now(), self._lease_ns)
            except LedgerError as exc:
                log.warning(
                    "could not renew a lease: %s",
                    exc,
                    extra={"job": self._job, "event": "lease_renewal_failed"},
                )


class TrackedRunner:
    def __init__(
        self, runner: JobRunner, ledger: Ledger, clock: Clock, lease_ns: int, owner: str | None = None
    ):
        self.runner = runner
        self.ledger = ledger
        self.clock = clock
        self.lease_ns = lease_ns
        self.owner = owner or new_owner()
        self.job = runner.job.name

    def run(
        self, due: Sequence[Due], stop: threading.Event | None = None
    ) -> Iterator[WindowOutcome | Skipped]:
        """Claim, run and record ``due`` span by span; yield each window's outcome, oldest first.

        Once ``stop`` is set no further span is claimed; the span in flight finishes.
        """
        seen = {d.window.start: d.seen for d in due}
        for span in self.runner.spans([d.window for d in due]):
            if stop is not None and stop.is_set():
                return
            wanted = [(window, seen[window.start]) for window in span]
            claimed = self.ledger.claim(self.job, wanted, self.owner, self.clock.now(), self.lease_ns)
            taken = set(claimed)
            for window in span:
                if window not in taken:
                    yield Skipped(window)
            for run in contiguous_runs(claimed):
                yield from self._run(run)

    def _run(self, windows: list[Window]) -> list[WindowOutcome]:
        try:
            with Heartbeat(self.ledger, self.job, windows, self.owner, self.clock, self.lease_ns):
                outcomes = self.runner.run_span(windows)
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            self._record([WindowOutcome(w, 0, 0, 0.0, error=reason) for w in windows])
            raise
        self._record(outcomes)
        return outcomes

    def _record(self, outcomes: Sequence[WindowOutcome]) -> None:
        results = [
            Finished(o.window, None if o.error is None else redact(o.error), o.points, o.rows, o.seconds)
            for o in outcomes
        ]
        recorded = set(self.ledger.finish(self.job, results, self.owner, self.clock.now()))
        for outcome in outcomes:
            if outcome.window not in recorded:
                log.warning(
                    "the claim on this window expired and another process took it over; its rows "
                    "were written anyway (writes are idempotent)",
                    extra={"job": self.job, "window": str(outcome.window), "event": "claim_lost"},
                )
