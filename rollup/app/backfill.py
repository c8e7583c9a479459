"""Backfill: compute and write every closed window of a job in a time range, through the ledger.

Windows the ledger holds as done are left alone unless ``force``, so a second call continues
where an interrupted one stopped. What a backfill cannot run is reported, never passed over in
silence:

* windows not closed yet (``end + delay`` still ahead) are skipped and counted;
* windows older than the buffer retention (a setting: the buffer may still hold their points) are
  refused with a usage error naming the setting, unless ``ignore_retention``;
* windows another process holds: if that process provably died (same host, its PID gone or
  reused), its claims are released and the windows run now; otherwise they are reported as left,
  and the backfill does not count as complete;
* windows of a job reading a job whose upstream windows are not all done yet are not run (they
  would merge what is not there): reported, and the backfill does not count as complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from rollup.app.execution import Skipped, execute, reclaim_dead
from rollup.app.session import Session
from rollup.app.upstreams import dependency
from rollup.core.windows import Window
from rollup.errors import ConfigError
from rollup.jobs.planner import Due, Plan, Policy, Tally, plan
from rollup.jobs.runner import OnPoints, WindowOutcome
from rollup.jobs.spec import JobSpec, SourceSpec
from rollup.ledger.base import Record

log = logging.getLogger(__name__)

SHOWN_FAILURES = 5


@dataclass(frozen=True)
class BackfillRequest:
    job: JobSpec
    start: int
    end: int
    force: bool = False
    ignore_retention: bool = False


@dataclass
class BackfillReport:
    job: JobSpec
    tally: Tally
    """The range as planned (after releasing the windows of dead processes)."""
    done: int = 0
    empty: int = 0
    failed: int = 0
    points: int = 0
    rows: int = 0
    failures: list[WindowOutcome] = field(default_factory=list)
    """The first failures, oldest first."""
    skipped: list[Window] = field(default_factory=list)
    """Due windows another process claimed while this backfill ran."""
    held: tuple[Record, ...] = ()
    """Windows a live process held when the backfill began: not run by it."""
    left: list[Window] = field(default_factory=list)
    """Of the held and skipped windows, those still not done when the backfill ended."""
    reclaimed: int = 0
    """Windows released from processes that died, then run."""
    unreachable: str | None = None
    """The source stopped answering: the error; the windows after it were not tried."""

    @property
    def complete(self) -> bool:
        """Every closed window of the range within reach is done now."""
        return not (self.failed or self.left or self.unreachable or self.tally.waiting_upstream)

    def add(self, outcome: WindowOutcome) -> None:
        self.points += outcome.points
        self.rows += outcome.rows
        if outcome.ok:
            self.done += 1
            self.empty += outcome.empty
        else:
            self.failed += 1
            if len(self.failures) < SHOWN_FAILURES:
                self.failures.append(outcome)


def range_plan(session: Session, request: BackfillRequest) -> Plan:
    """The plan of the request's range, with the retention cut or without (``ignore_retention``)."""
    policy = session.workspace.policy_for(request.job)
    if request.ignore_retention:
        policy = replace(policy, retention=None)
    return _plan(session, request, policy)


def _plan(session: Session, request: BackfillRequest, policy: Policy) -> Plan:
    job = request.job
    now = session.clock.now()
    return plan(
        job.grid,
        policy,
        lambda start, end: session.ledger.snapshot(job.name, start, end),
        now,
        span=(request.start, request.end),
        force=request.force,
        upstream=dependency(session.workspace, session.ledger, job, now),
        count_done=lambda start, end, width: session.ledger.count_done(job.name, start, end, width),
    )


def check_retention(session: Session, request: BackfillRequest, tally: Tally) -> None:
    """ConfigError (a usage error) when the range reaches beyond the buffer retention."""
    if not tally.too_old or request.ignore_retention:
        return
    job = request.job
    source = job.source
    setting = (
        f"retention = {session.workspace.settings.sources[source.profile].retention} of source "
        f"profile {source.profile!r} ([sources.{source.profile}] in the settings)"
        if job.schedule.buffer_retention is None and isinstance(source, SourceSpec)
        else f"[schedule] buffer_retention = {job.schedule.buffer_retention} of job {job.name}"
    )
    cut = session.workspace.policy_for(job).cut(session.clock.now().plan)
    window = job.grid.window_at(cut)
    first = window.start if window.start >= cut else window.end
    raise ConfigError(
        f"{tally.too_old} window(s) of the range start before the buffer retention ({setting}): the "
        f"buffer may no longer hold all their points. Start at {job.local_time(first)} or later, or run "
        "them anyway with --ignore-retention"
    )


def backfill(
    session: Session,
    request: BackfillRequest,
    on_outcome: Callable[[WindowOutcome | Skipped], None] | None = None,
    on_points: OnPoints | None = None,
    on_plan: Callable[[Tally], None] | None = None,
) -> BackfillReport:
    """Run every due window of the range; ``on_plan`` gets the range's tally before the first runs.

    Windows another live process holds are waited for: once that process recorded them, they
    are done (or, failed there, run here); if it dies, its lease ends and they run here."""
    current = range_plan(session, request)
    tally = current.tally()
    check_retention(session, request, tally)
    reclaimed = reclaim_dead(session.ledger, tally) if tally.running else 0
    if reclaimed:
        current = range_plan(session, request)
        tally = current.tally()
    if request.ignore_retention:
        _warn_old(session, request)
    report = BackfillReport(request.job, tally, reclaimed=reclaimed, held=tally.running_records)
    if on_plan is not None:
        on_plan(tally)
    breaker = session.breaker(request.job)
    runner = session.runner(request.job, on_points)

    def run(due: Iterable[Due]) -> None:
        for item in execute(due, runner, session.claims(request.job), stop=session.stop, breaker=breaker):
            if isinstance(item, Skipped):
                report.skipped.append(item.window)
            else:
                report.add(item)
            if on_outcome is not None:
                on_outcome(item)

    try:
        run(current.due_windows())
        waiting = {*report.skipped, *(r.window for r in report.held)}
        if waiting:
            log.info(
                "waiting for %d window(s) another process is running (they run here if it fails or dies)",
                len(waiting),
                extra={"job": request.job.name, "event": "waiting_for_others"},
            )
        while waiting and not (session.stop.is_set() or breaker.tripped):
            waiting = _wait_for_others(session, request, waiting, run)
    finally:
        runner.close()
    report.unreachable = breaker.reason
    report.left = sorted(waiting)
    return report


WAIT_SECONDS = 1.0
"""How often a backfill looks again at windows another process holds."""


def _wait_for_others(
    session: Session, request: BackfillRequest, windows: set[Window], run: Callable[[Iterable[Due]], None]
) -> set[Window]:
    """One look at windows other processes held: run those that became due (their owner failed
    or died), keep waiting for those still held; return the latter."""
    first, last = min(windows), max(windows)
    current = _plan(
        session,
        replace(request, start=first.start, end=last.end, force=False),
        session.workspace.policy_for(request.job),
    )
    due: list[Due] = []
    held: set[Window] = set()
    for entry in current.entries():
        if entry.window not in windows:
            continue
        if entry.verdict == "running":
            held.add(entry.window)
        elif entry.verdict == "due" and entry.reason is not None:
            due.append(Due(entry.window, entry.reason, entry.seen))
    if due:
        run(due)
    if held:
        session.stop.wait(WAIT_SECONDS)
    return held


def _warn_old(session: Session, request: BackfillRequest) -> None:
    with_cut = _plan(session, request, session.workspace.policy_for(request.job)).tally()
    if with_cut.too_old:
        log.warning(
            "running %d window(s) older than the configured buffer retention (--ignore-retention): "
            "their raw data may be partly gone",
            with_cut.too_old,
            extra={"job": request.job.name, "event": "retention_ignored"},
        )
