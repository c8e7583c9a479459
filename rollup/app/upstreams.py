"""What the planner of a job reading a job needs to know of that job: its windows, its ledger
rows and which of its windows can no longer be done. Reading only: it decides nothing (a pass
decides the upstream's origin first, see :func:`rollup.app.passes.job_policy`)."""

from __future__ import annotations

from rollup.app.workspace import Workspace
from rollup.jobs.planner import Dependency, Now, Policy
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Ledger


def known_policy(workspace: Workspace, ledger: Ledger, job: JobSpec, now: Now) -> Policy:
    """The job's policy from the origin the ledger holds; a job reading a job without start nor
    origin yet begins with the window holding the start of the job it reads, or where that job's
    buffer retention begins (as its first pass will decide)."""
    policy = workspace.policy_for(job, ledger.job_state(job.name).origin)
    upstream = workspace.upstream_of(job)
    if policy.start is None and upstream is not None:
        theirs = known_policy(workspace, ledger, upstream.job, now)
        if theirs.start is not None or theirs.retention is not None:
            begin = theirs.start if theirs.start is not None else theirs.cut(now.plan)
            policy = workspace.policy_for(job, job.grid.window_at(begin).start)
    return policy


def dependency(workspace: Workspace, ledger: Ledger, job: JobSpec, now: Now) -> Dependency | None:
    """The planner's view of the job ``job`` reads (None: it reads a buffer)."""
    upstream = workspace.upstream_of(job)
    if upstream is None:
        return None
    theirs = upstream.job
    policy = known_policy(workspace, ledger, theirs, now)
    cut = None if policy.start is None and policy.retention is None else policy.cut(now.plan)
    return Dependency(theirs.grid, lambda start, end: ledger.snapshot(theirs.name, start, end), cut)
