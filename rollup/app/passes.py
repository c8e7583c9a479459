"""One pass of one job: plan what is owed, report windows lost to the buffer retention (once),
run the due windows, prune old ledger rows. ``rollup run`` makes one pass per job, ``rollup
serve`` one per trigger: both call :func:`run_pass`.

A job without ``start`` begins where its data begins: its first pass asks the source for the
oldest point within the buffer retention and records that window in the ledger as the job's
*origin* (a measurement without any point yet begins at the current window). So a new job never
owes thousands of empty windows. A job reading a job begins with the window that holds the start
(or origin) of the job it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rollup.app.execution import Skipped, execute, reclaim_dead
from rollup.app.session import Session
from rollup.app.upstreams import dependency
from rollup.core.windows import format_instant, load_zone
from rollup.jobs.planner import Lost, Plan, Policy, Tally, plan, require_owed_range
from rollup.jobs.runner import WindowOutcome
from rollup.jobs.spec import JobSpec

log = logging.getLogger(__name__)

OnOutcome = Callable[[WindowOutcome | Skipped], None]


@dataclass
class PassReport:
    job: str
    planned: int = 0
    """Windows due this pass that were not done (recomputed ones not counted)."""
    tally: Tally = field(default_factory=Tally)
    outcomes: list[WindowOutcome] = field(default_factory=list)
    skipped: int = 0
    """Due windows another process claimed first."""
    lost: Lost | None = None
    """Windows this pass recorded as unrecoverable."""
    unreachable: str | None = None
    """The source stopped answering: the error, and the pass stopped early."""

    @property
    def failed(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def empty(self) -> int:
        return sum(1 for o in self.outcomes if o.empty)

    @property
    def points(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes)

    @property
    def left(self) -> int:
        """Owed windows left for a later pass (``max_windows_per_pass``)."""
        return self.tally.due - self.planned

    def summary(self) -> str:
        """One line for the log: what the pass did and what it left for later."""
        failed = len(self.failed)
        done = f"{len(self.outcomes) - failed} window(s) done"
        if self.empty:
            done += f" ({self.empty} empty: no point in the source)"
        parts = [done, f"{failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (another process claimed them)")
        if self.unreachable is not None:
            parts.append(f"stopped: the source does not answer ({self.unreachable})")
        elif self.left > 0:
            parts.append(f"{self.left} still owed (max_windows_per_pass)")
        if self.tally.waiting:
            parts.append(f"{self.tally.waiting} failed window(s) waiting to retry")
        if self.tally.waiting_upstream:
            parts.append(f"{self.tally.waiting_upstream} window(s) waiting for the job they read")
        return ", ".join(parts)


def job_policy(session: Session, job: JobSpec) -> Policy:
    """The job's policy, its origin decided (and recorded) if it has neither start nor origin yet."""
    workspace = session.workspace
    state = session.ledger.job_state(job.name)
    policy = workspace.policy_for(job, state.origin)
    if policy.start is None and job.upstream is not None:
        policy = workspace.policy_for(
            job, session.ledger.set_origin(job.name, _upstream_origin(session, job))
        )
    elif policy.start is None and policy.retention is not None:
        policy = workspace.policy_for(job, session.ledger.set_origin(job.name, _origin(session, job, policy)))
    require_owed_range(job, policy)
    return policy


def _upstream_origin(session: Session, job: JobSpec) -> int:
    """The window holding the start of the job ``job`` reads (its origin decided first)."""
    upstream = session.workspace.upstream_of(job)
    assert upstream is not None
    theirs = job_policy(session, upstream.job)
    begin = theirs.start if theirs.start is not None else theirs.cut(session.clock.now().plan)
    start = job.grid.window_at(begin).start
    log.info(
        "the job has no start: it begins with the window of the start of job %s",
        upstream.job.name,
        extra={"job": job.name, "window": job.local_time(start), "event": "job_origin"},
    )
    return start


def _origin(session: Session, job: JobSpec, policy: Policy) -> int:
    """The window of the job's oldest point within the retention, or the current window."""
    now = session.clock.now().plan
    runner = session.workspace.runner_for(job)
    try:
        query = replace(runner.query([job.grid.window_at(now)]), start=policy.cut(now), end=now)
        first = runner.source.first_time(query)
    finally:
        runner.close()
    start = job.grid.window_at(first if first is not None else now - policy.delay).start
    log.info(
        "the job has no start: it begins with the window of %s",
        "its oldest point in the buffer"
        if first is not None
        else "now (the buffer holds no point of it yet)",
        extra={"job": job.name, "window": job.local_time(start), "event": "job_origin"},
    )
    return start


def live_plan(session: Session, job: JobSpec, policy: Policy) -> Plan:
    """The plan of a live pass of ``job`` now, from the ledger's current rows."""
    ledger = session.ledger
    horizon = ledger.job_state(job.name).horizon
    now = session.clock.now()
    return plan(
        job.grid,
        policy,
        lambda start, end: ledger.snapshot(job.name, start, end),
        now,
        horizon=horizon,
        upstream=dependency(session.workspace, ledger, job, now),
        count_done=lambda start, end, width: ledger.count_done(job.name, start, end, width),
    )


def run_pass(session: Session, job: JobSpec, on_outcome: OnOutcome | None = None) -> PassReport:
    """Plan, then claim and run what is due; once ``session.stop`` is set, no further span is
    claimed, and once the job's source stopped answering in this session, nothing is tried."""
    policy = job_policy(session, job)
    upstream = session.workspace.upstream_of(job)
    if upstream is not None:
        job_policy(session, upstream.job)  # where the job it reads begins, decided
    current = live_plan(session, job, policy)
    tally = current.tally()
    if tally.running and reclaim_dead(session.ledger, tally):
        current = live_plan(session, job, policy)
        tally = current.tally()
    report = PassReport(job.name, tally=tally)
    report.lost = _record_lost(session, job, current)
    breaker = session.breaker(job)
    if breaker.tripped:
        report.unreachable = breaker.reason
        return report
    due = current.due
    report.planned = sum(1 for d in due if d.reason not in ("recompute", "upstream"))
    runner = session.runner(job)
    try:
        for item in execute(due, runner, session.claims(job), stop=session.stop, breaker=breaker):
            if isinstance(item, Skipped):
                report.skipped += 1
            else:
                report.outcomes.append(item)
            if on_outcome is not None:
                on_outcome(item)
    finally:
        runner.close()
    if breaker.tripped:
        report.unreachable = breaker.reason
    _prune(session, job, current)
    return report


def _record_lost(session: Session, job: JobSpec, current: Plan) -> Lost | None:
    horizon = current.new_horizon
    if horizon is None:
        return None
    lost = current.lost()
    moved = session.ledger.advance_horizon(
        job.name,
        current.horizon,
        horizon,
        lost.count if lost else 0,
        lost.since if lost else horizon,
    )
    if not moved or lost is None:
        return None
    zone = load_zone(job.window.timezone)
    log.warning(
        "%d window(s) from %s to %s are older than the buffer retention and were never done: they "
        "can no longer be computed",
        lost.count,
        format_instant(lost.first, zone),
        format_instant(lost.last, zone),
        extra={"job": job.name, "event": "windows_unrecoverable"},
    )
    return lost


def _prune(session: Session, job: JobSpec, current: Plan) -> None:
    """Forget rows of windows older than both the owed range and ``ledger_keep``. The jobs reading
    this one do not miss them: a window older than this job's owed range holds none of theirs back,
    whether its row is there or not (the planner's ``Dependency.cut``)."""
    keep = session.workspace.settings.ledger_keep.nanos
    before = min(current.low, session.clock.real() - keep)
    pruned = session.ledger.prune(job.name, before)
    if pruned:
        log.info(
            "pruned %d ledger row(s) of windows older than %s",
            pruned,
            job.local_time(before),
            extra={"job": job.name, "event": "ledger_pruned"},
        )


def log_outcome(job: JobSpec, item: WindowOutcome | Skipped, *, done: bool = True) -> None:
    """A line per window: failed ones always, done ones when ``done`` (``serve`` logs both)."""
    context: dict[str, object] = {"job": job.name, "window": job.local_time(item.window.start)}
    if isinstance(item, Skipped):
        log.info("window skipped: another process claimed it", extra={**context, "event": "window_skipped"})
        return
    context |= {"points": item.points, "rows": item.rows, "duration": round(item.seconds, 3)}
    if not item.ok:
        log.error("window failed: %s", item.error, extra={**context, "event": "window_failed"})
    elif done:
        log.info("window done", extra={**context, "event": "window_done"})


def log_pass(job: JobSpec, report: PassReport, seconds: float | None = None) -> None:
    """The pass's summary line (``rollup run`` and ``rollup serve`` alike)."""
    extra: dict[str, object] = {
        "job": job.name,
        "event": "pass_done",
        "points": report.points,
        "rows": report.rows,
    }
    if seconds is not None:
        extra["duration"] = round(seconds, 3)
    level = logging.ERROR if report.unreachable else logging.INFO
    log.log(level, "pass: %s", report.summary(), extra=extra)
