"""One pass of one job through the ledger: plan what is owed, report windows lost to the buffer
retention (once), run the due windows. ``rollup run`` makes one pass per job; ``rollup serve``
one per trigger.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rollup.core.windows import format_instant, load_zone
from rollup.jobs.clock import Clock
from rollup.jobs.planner import Plan, Policy, plan, snapshot_bounds
from rollup.jobs.runner import JobRunner, WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.jobs.tracked import Skipped, TrackedRunner
from rollup.ledger.base import Ledger

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    job: str
    plan: Plan
    outcomes: list[WindowOutcome] = field(default_factory=list)
    skipped: int = 0
    """Due windows another process claimed first."""

    @property
    def failed(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def points(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes)

    @property
    def left(self) -> int:
        """Owed windows left for a later pass (``max_windows_per_pass``)."""
        return self.plan.owed - len([d for d in self.plan.due if d.reason != "recompute"])

    def summary(self) -> str:
        """One line for the log: what the pass did and what it left for later."""
        failed = len(self.failed)
        parts = [f"{len(self.outcomes) - failed} window(s) done", f"{failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (another process claimed them)")
        if self.left > 0:
            parts.append(f"{self.left} still owed (max_windows_per_pass)")
        if self.plan.waiting:
            parts.append(f"{self.plan.waiting} failed window(s) waiting to retry")
        return ", ".join(parts)


def plan_job(job: JobSpec, policy: Policy, ledger: Ledger, now: int) -> Plan:
    """What a pass of ``job`` at ``now`` owes, from the ledger's current rows."""
    horizon = ledger.job_state(job.name).horizon
    low, high = snapshot_bounds(policy, horizon, now)
    return plan(job.grid, policy, ledger.snapshot(job.name, low, high), horizon, now)


def run_pass(
    job: JobSpec,
    policy: Policy,
    runner: JobRunner,
    ledger: Ledger,
    clock: Clock,
    lease_ns: int,
    on_outcome: Callable[[WindowOutcome | Skipped], None] | None = None,
    owner: str | None = None,
    stop: threading.Event | None = None,
) -> PassReport:
    """Plan, then claim and run what is due. ``owner`` names the claims (default: a new one per
    pass); once ``stop`` is set, no further span of windows is claimed."""
    current = plan_job(job, policy, ledger, clock.now())
    if current.horizon is not None:
        lost = current.lost
        moved = ledger.advance_horizon(
            job.name,
            current.previous_horizon,
            current.horizon,
            lost.count if lost else 0,
            lost.since if lost else current.horizon,
        )
        if moved and lost is not None:
            zone = load_zone(job.window.timezone)
            log.warning(
                "%d window(s) from %s to %s are older than the buffer retention and were never "
                "done: they can no longer be computed",
                lost.count,
                format_instant(lost.first, zone),
                format_instant(lost.last, zone),
                extra={"job": job.name, "event": "windows_unrecoverable"},
            )
    report = PassReport(job.name, current)
    for item in TrackedRunner(runner, ledger, clock, lease_ns, owner).run(current.due, stop):
        if isinstance(item, Skipped):
            report.skipped += 1
        else:
            report.outcomes.append(item)
        if on_outcome is not None:
            on_outcome(item)
    return report
