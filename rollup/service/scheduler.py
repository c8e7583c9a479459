"""APScheduler 3 behind the few operations ``rollup serve`` needs.

One scheduled entry per job, id = job name, fired by ``pass_trigger`` (each window close, and every
sweep), or at once (:meth:`Scheduler.run_now`: a job it reads recorded windows done). ``coalesce``
folds a backlog of fire times into one pass, ``max_instances = 1`` keeps one pass per job at a time
(a fire time that finds the job's pass still running is simply dropped: the running pass or the
next sweep takes what is owed), and ``misfire_grace_time`` drops a fire time that could not start
in time because every worker was busy. A thread pool of ``concurrency`` workers runs passes of
different jobs at once.

The scheduler remembers nothing: what is done lives in the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from rollup.jobs.spec import JobSpec
from rollup.service.triggers import pass_trigger

log = logging.getLogger(__name__)


class _BusyJobFilter(logging.Filter):
    """APScheduler warns each time a fire time finds the job's pass still running; for us that
    is ordinary (a long catch-up pass outlives many sweeps), so it is logged at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


class Scheduler:
    def __init__(
        self,
        run_pass: Callable[[str], None],
        concurrency: int,
        sweep_seconds: float,
        misfire_grace_seconds: int,
    ):
        self._run_pass = run_pass
        self._sweep = sweep_seconds
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_seconds},
            timezone=dt.UTC,
        )
        self._scheduler.add_listener(self._busy, EVENT_JOB_MAX_INSTANCES)
        apscheduler = logging.getLogger("apscheduler")
        apscheduler.setLevel(max(logging.WARNING, logging.getLogger().level))
        logging.getLogger("apscheduler.scheduler").addFilter(_BusyJobFilter())

    @property
    def running(self) -> bool:
        return bool(self._scheduler.state == STATE_RUNNING)

    def start(self) -> None:
        self._scheduler.start()

    def schedule(self, jobs: Mapping[str, JobSpec], now: Iterable[str]) -> None:
        """Schedule each of ``jobs`` that is not scheduled yet or is named in ``now`` (its pass
        runs at once, then on its trigger), and unschedule every other job. A pass already
        running for a job finishes with the job as it was."""
        rerun = set(now)
        scheduled = {entry.id for entry in self._scheduler.get_jobs()}
        for name in scheduled - jobs.keys():
            self._scheduler.remove_job(name)
        for name, spec in jobs.items():
            if name in scheduled and name not in rerun:
                continue
            self._scheduler.add_job(
                self._run_pass,
                trigger=pass_trigger(spec.grid, spec.window.delay_ns, self._sweep),
                args=[name],
                id=name,
                name=name,
                replace_existing=True,
                next_run_time=dt.datetime.now(dt.UTC),
            )

    def run_now(self, name: str) -> None:
        """Fire job ``name``'s pass at once (dropped if one is running: see ``Worker.request``);
        its trigger goes on as before."""
        entry = self._scheduler.get_job(name)
        if entry is not None:
            entry.modify(next_run_time=dt.datetime.now(dt.UTC))

    def shutdown(self) -> None:
        """Start no further pass; passes running go on (the caller waits for them)."""
        if self.running:
            self._scheduler.shutdown(wait=False)

    @staticmethod
    def _busy(event: JobSubmissionEvent) -> None:
        log.debug(
            "a pass of the job is still running: this fire time is dropped", extra={"job": event.job_id}
        )
