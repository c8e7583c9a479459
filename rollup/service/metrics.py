"""Prometheus metrics of ``rollup serve``.

Counters come from what passes did: each window outcome a pass reports once it was recorded in
the ledger (done, failed, or skipped because another process claimed it first), each sink error
as the sink raised it. Gauges of what is owed are read from the ledger and the planner at
scrape time, so they say what ``rollup status`` would say at that instant.

Counters start at zero with the process (Prometheus' ``rate()`` and ``increase()`` handle the
reset); ``rollup_windows_unrecoverable_total`` is the ledger's own counter and never resets.
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
from rollup.core.pipeline import OutputRow
from rollup.errors import RollupError
from rollup.jobs.planner import Now
from rollup.jobs.runner import WindowOutcome
from rollup.service.jobset import JobSet
from rollup.sinks.base import Sink

log = logging.getLogger(__name__)

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
        self.last_success = Gauge(
            "rollup_last_success_timestamp_seconds",
            "When this process last recorded a window of the job done (Unix time)",
            ["job"],
            registry=registry,
        )
        self.windows_empty = Counter(
            "rollup_windows_empty",
            "Windows recorded done for which the source had no point at all",
            ["job"],
            registry=registry,
        )
        self.last_pass = Gauge(
            "rollup_last_pass_timestamp_seconds",
            "When a pass of the job last ended (Unix time)",
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

    def start_job(self, job: str) -> None:
        """Show a job's counters at zero before its first window."""
        for counter in (
            self.windows_done, self.windows_failed, self.windows_skipped, self.points_read,
            self.rows_written, self.passes, self.pass_errors, self.windows_empty,
        ):  # fmt: skip
            counter.labels(job)

    def start_sink(self, sink: str) -> None:
        self.sink_errors.labels(sink)


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
    """What each job owes, read from the ledger when Prometheus scrapes."""

    def __init__(self, jobs: Callable[[], JobSet], now: Callable[[], int]):
        self._jobs = jobs
        self._now = now
        self._lock = threading.Lock()
        self._was_up = True

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        owed, unrecoverable, up = self._families()
        with self._lock:  # one scrape at a time reads the ledger
            current = self._jobs()
            try:
                with current.workspace.ledger() as ledger:
                    now = Now.at(self._now())
                    for name, job in sorted(current.jobs.items()):
                        found = job_status(current.workspace, ledger, job, now)
                        owed.add_metric([name], found.owed or 0)
                        unrecoverable.add_metric([name], found.unrecoverable)
            except RollupError as exc:
                if self._was_up:
                    log.warning("metrics: cannot read the ledger: %s", exc, extra={"event": "ledger_down"})
                self._was_up = False
                up.add_metric([], 0)
                return [up]
            self._was_up = True
        up.add_metric([], 1)
        return [owed, unrecoverable, up]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "rollup_windows_owed",
                "Closed windows not done yet, failed ones waiting for their retry included",
                labels=["job"],
            ),
            CounterMetricFamily(
                "rollup_windows_unrecoverable",
                "Windows that fell out of the buffer retention without being done (the ledger's count)",
                labels=["job"],
            ),
            GaugeMetricFamily("rollup_ledger_up", "Whether the ledger answered this scrape (1) or not (0)"),
        )
