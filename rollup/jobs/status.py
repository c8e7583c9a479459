"""What ``rollup status`` shows for a job: the ledger's counts and what a pass would owe now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollup.core.windows import Window, format_instant, load_zone
from rollup.jobs.passes import plan_job
from rollup.jobs.planner import Policy
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Ledger, Record


@dataclass(frozen=True)
class JobStatus:
    job: JobSpec
    done: int
    running: int
    failed: int
    unrecoverable: int
    """Reported so far, plus those a pass now would report."""
    owed: int | None
    """Closed windows not done (failed ones included); None: the job has neither a start nor a
    buffer retention, so what it owes is unknown."""
    waiting: int
    """Failed windows waiting for their retry backoff."""
    oldest_owed: Window | None
    next_retry: int | None
    last_failure: Record | None

    def as_json(self) -> dict[str, Any]:
        zone = load_zone(self.job.window.timezone)

        def instant(ns: int | None) -> str | None:
            return None if ns is None else format_instant(ns, zone)

        failure = self.last_failure
        return {
            "job": self.job.name,
            "enabled": self.job.enabled,
            "done": self.done,
            "running": self.running,
            "failed": self.failed,
            "waiting_for_retry": self.waiting,
            "owed": self.owed,
            "unrecoverable": self.unrecoverable,
            "oldest_owed": instant(self.oldest_owed.start if self.oldest_owed else None),
            "next_retry": instant(self.next_retry),
            "last_error": None
            if failure is None
            else {
                "window": instant(failure.window.start),
                "status": failure.status,
                "attempts": failure.attempts,
                "error": failure.error,
                "at": instant(failure.finished),
            },
        }


def job_status(job: JobSpec, policy: Policy, ledger: Ledger, now: int) -> JobStatus:
    summary = ledger.summary(job.name, now)
    state = ledger.job_state(job.name)
    counts = summary.counts
    if policy.start is None and policy.retention is None:
        owed = oldest = next_retry = None
        waiting = pending_lost = 0
    else:
        plan = plan_job(job, policy, ledger, now)
        owed, waiting, next_retry = plan.owed + plan.waiting, plan.waiting, plan.next_retry
        oldest = plan.oldest_owed
        pending_lost = plan.lost.count if plan.lost else 0
    return JobStatus(
        job=job,
        done=counts["done"],
        running=counts["running"],
        failed=counts["failed"],
        unrecoverable=state.unrecoverable + pending_lost,
        owed=owed,
        waiting=waiting,
        oldest_owed=oldest,
        next_retry=next_retry,
        last_failure=summary.last_failure,
    )
