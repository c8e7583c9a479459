"""``rollup serve``: the long-running service.

Start-up: load the jobs (a broken job file is reported — log, ``/readyz``, the
``rollup_job_files_invalid`` metric — and the other jobs run; when no job file is valid at all,
exit 2), bind the HTTP endpoint, schedule every job (its first pass runs at once: catch-up after
downtime), then wait for signals in the main thread:

* SIGHUP re-reads the job files and sink profiles: new and changed jobs that are valid replace the
  old ones, a job whose file became invalid keeps running as it was, and the log says why;
* SIGTERM or SIGINT stops triggering passes; passes in flight finish the span of windows they
  are on (up to ``[serve] shutdown_timeout``) and claim no more; whatever this process still holds
  is then released in the ledger (owed again at once, not failed), and the process exits 0;
* a second SIGTERM or SIGINT exits at once (128 + the signal number); the windows in flight
  become owed again when their lease expires.

A pass that records windows done triggers a pass of every job that reads that job, at once.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from types import FrameType
from typing import Any

from prometheus_client import Info

from rollup.app.clock import Clock
from rollup.app.execution import new_owner
from rollup.app.workspace import Workspace
from rollup.errors import ConfigError, RollupError
from rollup.service.endpoints import Endpoints
from rollup.service.jobset import JobSet, load_job_set
from rollup.service.metrics import LedgerGauges, ServiceMetrics, restore_last_success
from rollup.service.probes import readiness_checks, run_checks
from rollup.service.scheduler import Scheduler
from rollup.service.worker import Worker

log = logging.getLogger("rollup.serve")

EXIT_OK = 0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_TICK_SECONDS = 0.2


class Service:
    def __init__(self, workspace: Workspace):
        self.settings = settings = workspace.settings
        self.jobs: JobSet = load_job_set(workspace)
        if not self.jobs.jobs and self.jobs.problems:
            raise ConfigError("\n".join(self.jobs.problems))  # nothing would run: nothing starts
        self.stopping = threading.Event()
        self.metrics = ServiceMetrics()
        self.metrics.registry.register(LedgerGauges(lambda: self.jobs, Clock.real))
        owner = new_owner()
        Info("rollup_service", "Who this process is in the ledger", registry=self.metrics.registry).info(
            {"owner": owner}
        )
        self.worker = Worker(lambda: self.jobs, self.metrics, owner, self.stopping, self._windows_done)
        serve = settings.serve
        self.scheduler = Scheduler(
            self.worker.run_job, serve.concurrency, serve.sweep.seconds, serve.misfire_grace_seconds
        )
        self.endpoints = Endpoints(serve.host, serve.port, self.metrics.registry, self._health, self._ready)
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()

    # -- running ------------------------------------------------------------------------------

    def run(self) -> int:
        for handled in (*_STOP_SIGNALS, signal.SIGHUP):
            signal.signal(handled, self._on_signal)
        self._count_jobs(self.jobs)
        self._report_problems(self.jobs)
        restore_last_success(self.metrics, self.jobs)
        self.endpoints.start()
        self.scheduler.start()
        self.scheduler.schedule(self.jobs.jobs, now=self.jobs.jobs)
        names = ", ".join(sorted(self.jobs.jobs)) or "none (add job files and send SIGHUP)"
        log.info(
            "serving %d job(s): %s; %s/metrics, /healthz, /readyz",
            len(self.jobs.jobs),
            names,
            self.endpoints.url,
            extra={"event": "serve_started"},
        )
        while True:
            try:
                signum = self._signals.get(timeout=_TICK_SECONDS)
            except queue.Empty:
                continue
            if signum == signal.SIGHUP:
                self.reload()
            else:
                return self._stop(signum)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.put(signum)  # SimpleQueue.put is safe in a signal handler

    def reload(self) -> None:
        """Replace the job set by the files' current content (a broken file keeps its job as it was)."""
        try:
            newer = load_job_set(Workspace(self.settings), self.jobs)
        except RollupError as exc:
            self.metrics.reloads.labels("refused").inc()
            log.error(
                "reload refused, still running the %d job(s) loaded before: %s",
                len(self.jobs.jobs),
                exc,
                extra={"event": "reload_refused"},
            )
            return
        added, removed, changed = self.jobs.changes(newer)
        self.jobs = newer
        for name in removed:
            self.metrics.forget_job(name)
        self._count_jobs(newer)
        self._report_problems(newer)
        self.scheduler.schedule(newer.jobs, now=[*added, *changed])
        self.metrics.reloads.labels("partial" if newer.problems else "ok").inc()
        log.info(
            "reloaded %d job(s): added %s; removed %s; changed %s",
            len(newer.jobs),
            ", ".join(added) or "none",
            ", ".join(removed) or "none",
            ", ".join(changed) or "none",
            extra={"event": "reload_done"},
        )

    def _windows_done(self, name: str) -> None:
        """Job ``name`` recorded windows done: a pass of each job that reads it, now (whatever
        became complete for it runs; the rest waits)."""
        current = self.jobs
        readers = [down for down in current.workspace.downstream_of(name) if down in current.jobs]
        for down in readers:
            self.worker.request(down)
            self.scheduler.run_now(down)
        if readers:
            log.debug(
                "windows done: passes of %s triggered",
                ", ".join(readers),
                extra={"job": name, "event": "downstream_triggered"},
            )

    def _count_jobs(self, jobs: JobSet) -> None:
        self.metrics.jobs.set(len(jobs.jobs))
        self.metrics.job_files_invalid.set(len(jobs.problems))
        for name, spec in jobs.jobs.items():
            self.metrics.start_job(name)
            for sink in spec.output.sinks:
                self.metrics.start_sink(sink)

    @staticmethod
    def _report_problems(jobs: JobSet) -> None:
        for problem in jobs.problems:
            log.error("job file invalid: %s", problem, extra={"event": "job_file_invalid"})

    # -- stopping -----------------------------------------------------------------------------

    def _stop(self, signum: int) -> int:
        timeout = self.settings.serve.shutdown_timeout.seconds
        log.info(
            "%s: no new windows; waiting up to %gs for %d pass(es) in flight (again: exit at once)",
            signal.Signals(signum).name,
            timeout,
            self.worker.in_flight.count,
            extra={"event": "serve_stopping"},
        )
        self.stopping.set()
        self.scheduler.shutdown()
        idle = self._drain(timeout)
        self._release()
        self.endpoints.close()
        if not idle:
            log.warning(
                "%d pass(es) still running after %gs: stopped, their windows are owed again",
                self.worker.in_flight.count,
                timeout,
                extra={"event": "serve_stopped"},
            )
            _exit_now(EXIT_OK)  # the pass threads cannot be interrupted; do not wait for them
        log.info("stopped", extra={"event": "serve_stopped"})
        return EXIT_OK

    def _drain(self, timeout: float) -> bool:
        """Wait for the passes in flight; a second stop signal exits at once."""
        deadline = time.monotonic() + timeout
        while not self.worker.in_flight.wait_idle(min(_TICK_SECONDS, max(0.0, deadline - time.monotonic()))):
            while not self._signals.empty():
                again = self._signals.get_nowait()
                if again in _STOP_SIGNALS:
                    name = signal.Signals(again).name
                    log.warning("second %s: exiting at once", name, extra={"event": "serve_killed"})
                    _exit_now(128 + again)
            if time.monotonic() >= deadline:
                return False
        return True

    def _release(self) -> None:
        """Give back what this process still holds, so another pass takes it without waiting."""
        try:
            with self.jobs.workspace.ledger() as ledger:
                released = ledger.release(self.worker.owner)
        except RollupError as exc:
            log.error(
                "could not release this process's windows (owed again once their lease expires): %s",
                exc,
                extra={"event": "release_failed"},
            )
            return
        for job, window in released:
            spec = self.jobs.jobs.get(job)
            shown = str(window) if spec is None else spec.local_time(window.start)
            log.warning(
                "window released unfinished: it is owed again",
                extra={"job": job, "window": shown, "event": "window_released"},
            )

    # -- probes -------------------------------------------------------------------------------

    def _health(self) -> tuple[bool, dict[str, Any]]:
        if self.stopping.is_set():
            return True, {"status": "stopping"}
        if not self.scheduler.running:
            return False, {"status": "the scheduler is not running"}
        return True, {"status": "ok", "jobs": len(self.jobs.jobs)}

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        if self.stopping.is_set():
            return False, {"ready": False, "checks": {}, "status": "stopping"}
        checks = run_checks(readiness_checks(self.jobs))
        ready = all(result == "ok" for result in checks.values())
        return ready, {"ready": ready, "checks": checks}


def _exit_now(code: int) -> None:
    logging.shutdown()
    os._exit(code)
