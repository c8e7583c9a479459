"""What ``rollup status`` shows: per job, the ledger's counts and what a pass would owe now; per
window, the ledger's rows. Reading only: status never writes the ledger or asks a source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rollup.app.upstreams import dependency, known_policy
from rollup.app.workspace import Workspace
from rollup.core.windows import Window, format_instant, load_zone
from rollup.jobs.planner import Now, plan
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Ledger, Record, Status
from rollup.secrets import redact


@dataclass(frozen=True)
class JobStatus:
    job: JobSpec
    done: int
    """Windows recorded done, pruned ones included."""
    empty: int
    """Done windows for which the source had no point at all."""
    running: int
    failed: int
    unrecoverable: int
    """Reported so far, plus those a pass now would report."""
    owed: int | None
    """Closed windows not done (failed ones included); None: the job has neither a start nor a
    buffer retention, so what it owes is unknown."""
    waiting: int
    """Failed windows waiting for their retry backoff."""
    waiting_upstream: int
    """Closed windows waiting for windows of the job they read (not counted in ``owed``)."""
    oldest_owed: Window | None
    next_retry: int | None
    last_failure: Record | None
    origin_pending: bool
    """The job has no start and its first pass has not decided where it begins: ``owed`` counts
    the whole buffer retention, the most it can be."""

    def as_json(self) -> dict[str, Any]:
        zone = load_zone(self.job.window.timezone)

        def instant(ns: int | None) -> str | None:
            return None if ns is None else format_instant(ns, zone)

        failure = self.last_failure
        return {
            "job": self.job.name,
            "enabled": self.job.enabled,
            "timezone": self.job.window.timezone,
            "done": self.done,
            "empty": self.empty,
            "running": self.running,
            "failed": self.failed,
            "waiting_for_retry": self.waiting,
            "reads_job": self.job.upstream,
            "waiting_for_upstream": self.waiting_upstream,
            "owed": self.owed,
            "owed_at_most": self.origin_pending,
            "unrecoverable": self.unrecoverable,
            "oldest_owed": instant(self.oldest_owed.start if self.oldest_owed else None),
            "next_retry": instant(self.next_retry),
            "last_error": None
            if failure is None
            else {
                "window": instant(failure.window.start),
                "status": failure.status,
                "attempts": failure.attempts,
                "error": None if failure.error is None else redact(failure.error),
                "transient": failure.transient,
                "at": instant(failure.finished),
            },
        }


def job_status(workspace: Workspace, ledger: Ledger, job: JobSpec, now: Now) -> JobStatus:
    summary = ledger.summary(job.name, now.real)
    state = ledger.job_state(job.name)
    policy = known_policy(workspace, ledger, job, now)
    owed: int | None = None
    oldest = next_retry = None
    waiting = waiting_upstream = pending_lost = 0
    if policy.start is not None or policy.retention is not None:
        current = plan(
            job.grid,
            policy,
            lambda start, end: ledger.snapshot(job.name, start, end),
            now,
            horizon=state.horizon,
            upstream=dependency(workspace, ledger, job, now),
            count_done=lambda start, end, width: ledger.count_done(job.name, start, end, width),
        )
        tally = current.tally()
        owed, waiting, next_retry, oldest = tally.owed, tally.waiting, tally.next_retry, tally.oldest_owed
        waiting_upstream = tally.waiting_upstream
        lost = current.lost()
        pending_lost = lost.count if lost else 0
    return JobStatus(
        job=job,
        done=summary.counts["done"] + state.pruned,
        empty=summary.empty,
        running=summary.counts["running"],
        failed=summary.counts["failed"],
        unrecoverable=state.unrecoverable + pending_lost,
        owed=owed,
        waiting=waiting,
        waiting_upstream=waiting_upstream,
        oldest_owed=oldest,
        next_retry=next_retry,
        last_failure=summary.last_failure,
        origin_pending=job.start is None
        and state.origin is None
        and (policy.retention is not None or job.upstream is not None),
    )


def statuses(workspace: Workspace, jobs: Sequence[JobSpec], now: Now) -> list[JobStatus]:
    with workspace.ledger() as ledger:
        return [job_status(workspace, ledger, job, now) for job in jobs]


@dataclass(frozen=True)
class WindowRows:
    job: JobSpec
    records: list[Record]
    """Newest first."""


def window_rows(
    workspace: Workspace, job: JobSpec, statuses: Sequence[Status] | None, limit: int
) -> WindowRows:
    """The job's newest ledger rows (of the given statuses), at most ``limit``."""
    with workspace.ledger() as ledger:
        found = ledger.records(job.name, -(2**63), 2**63 - 1, statuses, limit=limit, newest_first=True)
    return WindowRows(job, found)
