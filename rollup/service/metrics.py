"""Prometheus metrics of ``rollup serve``.

Counters come from what passes did: each window outcome a pass reports once it was recorded in
the ledger (done, failed, or skipped because another process claimed it first), each sink error
as the sink raised it. Gauges of what is owed are read from the ledger and the planner at
scrape time, so they say what ``rollup status`` would say at that instant.

Counters start at zero with the process (Prometheus' ``rate()`` and ``increase()`` handle the
reset); ``rollup_windows_unrecoverable_total`` is the ledger's own counter and never resets.
``rollup_last_success_timestamp_seconds`` starts from the ledger (``restore_last_success``), so a
restart does not make a job look as if it never succeeded.

Lag, per job: ``rollup_oldest_owed_window_age_seconds`` (how long the oldest owed window has been
closed) and ``rollup_newest_done_window_end_timestamp_seconds`` (how far the job got), both read
at scrape time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rollup.app.execution import Skipped
from rollup.app.status import job_status
from rollup.app.workspace import Workspace
from rollup.core.pipeline import OutputRow
from rollup.errors import RollupError
from rollup.jobs.planner import Now
from rollup.jobs.runner import WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Ledger
from rollup.service.jobset import JobSet
from rollup.sinks.base import Sink

log = logging.getLogger(__name__)

NS = 1e9
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class ServiceMetrics:
    """Every metric of one service, in a registry of its own."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside each counter
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        registry = self.registry
        self.windows_done = Counter(
            "rollup_windows_done", "Windows computed, written and recorded done", ["job"], registry=registry
        )
        self.windows_failed = Counter(
            "rollup_windows_failed", "Windows that failed (owed again after their backoff)", ["job"],
            registry=registry,
        )  # fmt: skip
        self.windows_skipped = Counter(
            "rollup_windows_skipped", "Due windows another process claimed first", ["job"], registry=registry
        )
        self.points_read = Counter(
            "rollup_points_read", "Raw points read for windows done", ["job"], registry=registry
        )
        self.rows_written = Counter(
            "rollup_rows_written",
            "Aggregate rows (one per group and window) written to every sink of windows done",
            ["job"],
            registry=registry,
        )
        self.window_duration = Histogram(
            "rollup_window_duration_seconds",
            "Time to read, compute and write one window (a span's time shared by its windows)",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.windows_empty = Counter(
            "rollup_windows_empty",
            "Windows recorded done although the source returned no point at all for them",
            ["job"],
            registry=registry,
        )
        self.last_success = Gauge(
            "rollup_last_success_timestamp_seconds",
            "When a window of the job was last recorded done (Unix time; from the ledger at start-up)",
            ["job"],
            registry=registry,
        )
        self.job_files_invalid = Gauge(
            "rollup_job_files_invalid",
            "Job files (and the sink profiles they use) that do not load: their jobs do not run",
            registry=registry,
        )
        self.sink_errors = Counter(
            "rollup_sink_errors", "Writes a sink did not complete", ["sink"], registry=registry
        )
        self.passes = Counter("rollup_passes", "Passes started", ["job"], registry=registry)
        self.last_pass = Gauge(
            "rollup_last_pass_timestamp_seconds",
            "When a pass of the job last ended, with or without an error (Unix time)",
            ["job"],
            registry=registry,
        )
        self.pass_duration = Histogram(
            "rollup_pass_duration_seconds",
            "Time a pass took: planning, then every window it ran",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.pass_errors = Counter(
            "rollup_pass_errors",
            "Passes that stopped on an error of their own (ledger unreachable, bad profile, bug)",
            ["job"],
            registry=registry,
        )
        self.passes_in_flight = Gauge("rollup_passes_in_flight", "Passes running now", registry=registry)
        self.jobs = Gauge("rollup_jobs", "Jobs the service runs", registry=registry)
        self.reloads = Counter(
            "rollup_reloads", "SIGHUP reloads of the job files, by result", ["result"], registry=registry
        )

    def record(self, job: str, item: WindowOutcome | Skipped) -> None:
        """Count one window a pass reported."""
        if isinstance(item, Skipped):
            self.windows_skipped.labels(job).inc()
            return
        self.window_duration.labels(job).observe(item.seconds)
        if item.ok:
            self.windows_done.labels(job).inc()
            if item.empty:
                self.windows_empty.labels(job).inc()
            self.points_read.labels(job).inc(item.points)
            self.rows_written.labels(job).inc(item.rows)
            self.last_success.labels(job).set(time.time())
        else:
            self.windows_failed.labels(job).inc()

    def pass_ended(self, job: str, seconds: float) -> None:
        self.last_pass.labels(job).set(time.time())
        self.pass_duration.labels(job).observe(seconds)

    def start_job(self, job: str) -> None:
        """Show a job's counters at zero before its first window."""
        for counter in self._counters():
            counter.labels(job)

    def forget_job(self, job: str) -> None:
        """Drop the series of a job the service no longer runs (a stale last pass would alert)."""
        for metric in (
            *self._counters(), self.windows_empty, self.window_duration, self.last_success,
            self.last_pass, self.pass_duration,
        ):  # fmt: skip
            metric.remove(job)

    def _counters(self) -> tuple[Counter, ...]:
        return (
            self.windows_done, self.windows_failed, self.windows_skipped, self.windows_empty,
            self.points_read, self.rows_written, self.passes, self.pass_errors,
        )  # fmt: skip

    def start_sink(self, sink: str) -> None:
        self.sink_errors.labels(sink)


def restore_last_success(metrics: ServiceMetrics, jobs: JobSet) -> None:
    """Start each job's last-success time from the ledger; without the ledger, leave it unset
    (the ledger-down metric and the readiness probe say why)."""
    try:
        with jobs.workspace.ledger() as ledger:
            latest = {name: ledger.latest_done(name) for name in jobs.jobs}
    except RollupError as exc:
        log.warning("metrics: cannot read the last successes from the ledger: %s", exc)
        return
    for name, found in latest.items():
        if found is not None:
            metrics.last_success.labels(name).set(found.last_finished / NS)


class MeteredSink:
    """A sink whose failed writes count in ``rollup_sink_errors_total``."""

    def __init__(self, sink: Sink, metrics: ServiceMetrics):
        self._sink = sink
        self._metrics = metrics
        self.name = sink.name

    def write(self, rows: Sequence[OutputRow]) -> int:
        try:
            return self._sink.write(rows)
        except Exception:
            self._metrics.sink_errors.labels(self.name).inc()
            raise

    def check(self) -> None:
        self._sink.check()

    def close(self) -> None:
        self._sink.close()


class LedgerGauges:
    """What each job owes and how far it got, read from the ledger when Prometheus scrapes."""

    def __init__(self, jobs: Callable[[], JobSet], now: Callable[[], int]):
        self._jobs = jobs
        self._now = now
        self._lock = threading.Lock()
        self._was_up = True

    def describe(self) -> Iterable[Metric]:
        return [*_JobGauges().families(), _ledger_up()]

    def collect(self) -> Iterable[Metric]:
        gauges, up = _JobGauges(), _ledger_up()
        with self._lock:  # one scrape at a time reads the ledger
            current = self._jobs()
            try:
                with current.workspace.ledger() as ledger:
                    now = self._now()
                    for _, job in sorted(current.jobs.items()):
                        gauges.add(current.workspace, job, ledger, now)
            except RollupError as exc:
                if self._was_up:
                    log.warning("metrics: cannot read the ledger: %s", exc, extra={"event": "ledger_down"})
                self._was_up = False
                up.add_metric([], 0)
                return [up]
            self._was_up = True
        up.add_metric([], 1)
        return [*gauges.families(), up]


def _ledger_up() -> GaugeMetricFamily:
    return GaugeMetricFamily("rollup_ledger_up", "Whether the ledger answered this scrape (1) or not (0)")


class _JobGauges:
    """The per-job families of one scrape."""

    def __init__(self) -> None:
        self.owed = GaugeMetricFamily(
            "rollup_windows_owed",
            "Closed windows not done yet, failed ones waiting for their retry included",
            labels=["job"],
        )
        self.unrecoverable = CounterMetricFamily(
            "rollup_windows_unrecoverable",
            "Windows that fell out of the buffer retention without being done (the ledger's count)",
            labels=["job"],
        )
        self.oldest_owed_age = GaugeMetricFamily(
            "rollup_oldest_owed_window_age_seconds",
            "Seconds since the oldest owed window closed (its end plus the delay); 0 when none is owed",
            labels=["job"],
        )
        self.newest_done_end = GaugeMetricFamily(
            "rollup_newest_done_window_end_timestamp_seconds",
            "End of the newest window recorded done (Unix time); absent before the first",
            labels=["job"],
        )

    def families(self) -> list[Metric]:
        return [self.owed, self.unrecoverable, self.oldest_owed_age, self.newest_done_end]

    def add(self, workspace: Workspace, job: JobSpec, ledger: Ledger, now: int) -> None:
        """The job's gauges from what ``rollup status`` would say now."""
        name = job.name
        found = job_status(workspace, ledger, job, Now.at(now))
        self.owed.add_metric([name], found.owed or 0)
        self.unrecoverable.add_metric([name], found.unrecoverable)
        age = 0
        if found.oldest_owed is not None:
            age = max(now - (found.oldest_owed.end + job.window.delay_ns), 0)
        self.oldest_owed_age.add_metric([name], age / NS)
        latest = ledger.latest_done(name)
        if latest is not None:
            self.newest_done_end.add_metric([name], latest.newest_end / NS)
