"""The jobs a service runs: every enabled job of the job files, checked as ``rollup run`` checks
them, with the workspace (source and sink profiles, ledger) its passes use.

A set is loaded whole or not at all: at start-up an invalid set stops the service before anything
runs; on SIGHUP it leaves the running set in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollup.jobs.planner import Policy, require_owed_range
from rollup.jobs.spec import JobSpec
from rollup.jobs.workspace import Workspace
from rollup.settings import Settings


@dataclass(frozen=True)
class ServedJob:
    spec: JobSpec
    policy: Policy


@dataclass(frozen=True)
class JobSet:
    workspace: Workspace
    jobs: dict[str, ServedJob]

    def changes(self, newer: JobSet) -> tuple[list[str], list[str], list[str]]:
        """Names of the jobs ``newer`` adds, removes and changes, compared with this set."""
        added = sorted(newer.jobs.keys() - self.jobs.keys())
        removed = sorted(self.jobs.keys() - newer.jobs.keys())
        changed = sorted(
            name
            for name in newer.jobs.keys() & self.jobs.keys()
            if newer.jobs[name].spec != self.jobs[name].spec
        )
        return added, removed, changed


def load_job_set(settings: Settings) -> JobSet:
    """Read the job files and sink profiles again; ConfigError (naming file, key and reason) if
    any job or profile is invalid, a job's owed range is unknown, or a sink cannot be built."""
    workspace = Workspace(settings)
    jobs: dict[str, ServedJob] = {}
    for spec in workspace.jobs:
        if not spec.enabled:
            continue
        policy = workspace.policy_for(spec)
        require_owed_range(spec, policy)
        for sink in workspace.sinks_for(spec):  # a missing client library or CA file fails here
            sink.close()
        jobs[spec.name] = ServedJob(spec, policy)
    return JobSet(workspace, jobs)
