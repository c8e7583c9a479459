"""What a trigger does: passes of one job (:func:`rollup.app.passes.run_pass`, as ``rollup run``
makes them), counted in the metrics and logged.

A pass opens its own ledger connection and its own source and sink clients and closes them when
it ends, so a database or server that went away and came back is simply reached again by the
next pass. A pass that stopped at ``max_windows_per_pass`` is followed at once by another. Any
error stays inside the job's pass: the other jobs go on.

A pass that recorded windows done calls ``on_done`` with its job (``rollup serve`` then triggers
the jobs that read it). A pass asked for while the job's pass runs (:meth:`Worker.request`)
follows it at once: the running pass may have planned before what it was asked for happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rollup.app.clock import Clock
from rollup.app.execution import Skipped
from rollup.app.passes import PassReport, log_outcome, log_pass, run_pass
from rollup.app.session import Session
from rollup.errors import RollupError
from rollup.jobs.runner import WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.service.jobset import JobSet
from rollup.service.metrics import MeteredSink, ServiceMetrics

log = logging.getLogger("rollup.serve")


class InFlight:
    """Counts passes running; ``wait_idle`` waits until none is."""

    def __init__(self, metrics: ServiceMetrics):
        self._count = 0
        self._idle = threading.Condition()
        self._metrics = metrics

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1
            self._metrics.passes_in_flight.set(self._count)

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            self._metrics.passes_in_flight.set(self._count)
            self._idle.notify_all()

    @property
    def count(self) -> int:
        with self._idle:
            return self._count

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class Worker:
    def __init__(
        self,
        jobs: Callable[[], JobSet],
        metrics: ServiceMetrics,
        owner: str,
        stopping: threading.Event,
        on_done: Callable[[str], None] | None = None,
    ):
        self._jobs = jobs
        self._metrics = metrics
        self.owner = owner
        self._stopping = stopping
        self._on_done = on_done
        self._requested: set[str] = set()
        self._lock = threading.Lock()
        self.in_flight = InFlight(metrics)

    def request(self, name: str) -> None:
        """Ask for another pass of job ``name``: one that is running is followed by another."""
        with self._lock:
            self._requested.add(name)

    def _take_request(self, name: str) -> bool:
        with self._lock:
            asked = name in self._requested
            self._requested.discard(name)
            return asked

    def run_job(self, name: str) -> None:
        """Passes of job ``name`` until nothing more is due now (the scheduler calls this)."""
        if self._stopping.is_set():
            return
        with self.in_flight:
            while not self._stopping.is_set():
                self._take_request(name)  # this pass plans after the request
                current = self._jobs()
                job = current.jobs.get(name)
                if job is None:  # removed by a reload since the trigger fired
                    return
                report = self._pass(current, job)
                if report is None:
                    return
                if self._on_done is not None and any(outcome.ok for outcome in report.outcomes):
                    self._on_done(name)
                if not (_more_due(report) or self._take_request(name)):
                    return

    def _pass(self, current: JobSet, job: JobSpec) -> PassReport | None:
        self._metrics.passes.labels(job.name).inc()
        started = time.monotonic()
        try:
            with current.workspace.ledger() as ledger:
                session = Session(
                    current.workspace,
                    ledger,
                    Clock(),
                    self.owner,
                    self._stopping,
                    wrap_sink=lambda sink: MeteredSink(sink, self._metrics),
                )
                report = run_pass(session, job, lambda item: self._outcome(job, item))
        except RollupError as exc:
            self._metrics.pass_errors.labels(job.name).inc()
            log.error("pass failed: %s", exc, extra={"job": job.name, "event": "pass_failed"})
            return None
        except Exception:  # one job's bug must not stop the others
            self._metrics.pass_errors.labels(job.name).inc()
            log.exception("pass failed", extra={"job": job.name, "event": "pass_failed"})
            return None
        finally:
            if job.name in self._jobs().jobs:  # a job a reload removed meanwhile leaves no series behind
                self._metrics.pass_ended(job.name, time.monotonic() - started)
        if len(report.outcomes) + report.skipped >= 2 or report.unreachable or report.lost:
            log_pass(job, report, time.monotonic() - started)
        return report

    def _outcome(self, job: JobSpec, item: WindowOutcome | Skipped) -> None:
        if job.name in self._jobs().jobs:
            self._metrics.record(job.name, item)
        log_outcome(job, item)


def _more_due(report: PassReport) -> bool:
    """The pass stopped at ``max_windows_per_pass`` with windows left, and got somewhere."""
    return report.left > 0 and bool(report.outcomes) and report.unreachable is None
