"""The jobs a service runs: every enabled job whose file is valid, with the workspace (source and
sink profiles, ledger) its passes use, and the job files that are broken.

A broken file stops only its own job. On SIGHUP, a job whose file became invalid keeps running as
it was loaded before (and the file is reported), so a typo never stops a running job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rollup.app.workspace import Workspace
from rollup.jobs.planner import require_owed_range
from rollup.jobs.spec import JobSpec


@dataclass(frozen=True)
class JobSet:
    workspace: Workspace
    jobs: dict[str, JobSpec]
    problems: list[str] = field(default_factory=list)
    """One line per broken job file or sink profile."""
    paths: dict[str, Path] = field(default_factory=dict)
    """The file of each job."""

    def changes(self, newer: JobSet) -> tuple[list[str], list[str], list[str]]:
        """Names of the jobs ``newer`` adds, removes and changes, compared with this set."""
        added = sorted(newer.jobs.keys() - self.jobs.keys())
        removed = sorted(self.jobs.keys() - newer.jobs.keys())
        changed = sorted(
            name for name in newer.jobs.keys() & self.jobs.keys() if newer.jobs[name] != self.jobs[name]
        )
        return added, removed, changed


def load_job_set(workspace: Workspace, previous: JobSet | None = None) -> JobSet:
    """The enabled jobs of the files as they are now. A job that is broken now but ran in
    ``previous`` (same file) keeps its previous version. A job whose owed range is unknown, or whose
    sinks cannot be built, counts as broken."""
    jobs: dict[str, JobSpec] = {}
    problems = list(workspace.problems)
    paths = {entry.job.name: entry.path for entry in workspace.files if entry.job is not None}
    for spec in workspace.jobs:
        if not spec.enabled:
            continue
        try:
            require_owed_range(spec, workspace.policy_for(spec))
            for sink in workspace.sinks_for(spec):  # a missing client library or CA file fails here
                sink.close()
        except Exception as exc:
            problems.append(str(exc))
            continue
        jobs[spec.name] = spec
    if previous is not None:
        loads = {e.path for e in workspace.files if e.job is not None and not workspace.blocked_by(e.job)}
        present = {entry.path for entry in workspace.files}
        for name, spec in previous.jobs.items():
            path = previous.paths.get(name)
            if name not in jobs and path in present and path not in loads:  # still there, broken now
                jobs[name] = spec
                paths[name] = path
    return JobSet(workspace, jobs, problems, paths)
