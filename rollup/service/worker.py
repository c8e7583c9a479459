"""What a trigger does: passes of one job, through the ledger (``rollup.jobs.passes``), counted
in the metrics and logged.

A pass opens its own ledger connection and its own source and sink clients and closes them when
it ends, so a database or server that went away and came back is simply reached again by the
next pass. A pass that stopped at ``max_windows_per_pass`` is followed at once by another. Any
error stays inside the job's pass: the other jobs go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from rollup.errors import RollupError
from rollup.jobs.clock import Clock
from rollup.jobs.passes import PassReport, run_pass
from rollup.jobs.runner import JobRunner, WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.jobs.tracked import Skipped
from rollup.service.jobset import JobSet, ServedJob
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
        clock: Clock,
        lease_ns: int,
        owner: str,
        stopping: threading.Event,
    ):
        self._jobs = jobs
        self._metrics = metrics
        self._clock = clock
        self._lease_ns = lease_ns
        self.owner = owner
        self._stopping = stopping
        self.in_flight = InFlight(metrics)

    def run_job(self, name: str) -> None:
        """Passes of job ``name`` until nothing more is due now (the scheduler calls this)."""
        if self._stopping.is_set():
            return
        with self.in_flight:
            while not self._stopping.is_set():
                current = self._jobs()
                served = current.jobs.get(name)
                if served is None:  # removed by a reload since the trigger fired
                    return
                report = self._pass(current, served)
                if report is None or not _more_due(report):
                    return

    def _pass(self, current: JobSet, served: ServedJob) -> PassReport | None:
        job = served.spec
        self._metrics.passes.labels(job.name).inc()
        started = time.monotonic()
        try:
            with ExitStack() as stack:
                workspace = current.workspace
                sinks = [MeteredSink(sink, self._metrics) for sink in workspace.sinks_for(job)]
                runner = JobRunner(job, workspace.source_for(job), sinks)
                stack.callback(runner.close)
                ledger = stack.enter_context(workspace.ledger())
                report = run_pass(
                    job,
                    served.policy,
                    runner,
                    ledger,
                    self._clock,
                    self._lease_ns,
                    on_outcome=lambda item: self._outcome(job, item),
                    owner=self.owner,
                    stop=self._stopping,
                )
        except RollupError as exc:
            self._metrics.pass_errors.labels(job.name).inc()
            log.error("pass failed: %s", exc, extra={"job": job.name, "event": "pass_failed"})
            return None
        except Exception:  # one job's bug must not stop the others
            self._metrics.pass_errors.labels(job.name).inc()
            log.exception("pass failed", extra={"job": job.name, "event": "pass_failed"})
            return None
        finally:
            self._metrics.pass_ended(job.name, time.monotonic() - started)
        _log_pass(job, report, time.monotonic() - started)
        return report

    def _outcome(self, job: JobSpec, item: WindowOutcome | Skipped) -> None:
        self._metrics.record(job.name, item)
        context: dict[str, object] = {"job": job.name, "window": job.local_time(item.window.start)}
        if isinstance(item, Skipped):
            log.info(
                "window skipped: another process claimed it", extra={**context, "event": "window_skipped"}
            )
            return
        context |= {"points": item.points, "rows": item.rows, "duration": round(item.seconds, 3)}
        if item.ok:
            log.info("window done", extra={**context, "event": "window_done"})
        else:
            log.error("window failed: %s", item.error, extra={**context, "event": "window_failed"})


def _more_due(report: PassReport) -> bool:
    """The pass stopped at ``max_windows_per_pass`` with windows left, and got somewhere."""
    return report.left > 0 and bool(report.outcomes)


def _log_pass(job: JobSpec, report: PassReport, seconds: float) -> None:
    """A summary of a pass that ran several windows (each window has its own line already)."""
    if len(report.outcomes) + report.skipped < 2:
        return
    log.info(
        "pass: %s",
        report.summary(),
        extra={
            "job": job.name,
            "event": "pass_done",
            "points": report.points,
            "rows": report.rows,
            "duration": round(seconds, 3),
        },
    )
