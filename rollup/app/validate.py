"""Validate: every job file loads (and the profiles it names); ``online``, also that each job's
measurement, fields and tags exist in its source and that its sinks answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rollup.app.workspace import Workspace
from rollup.errors import RollupError
from rollup.jobs.spec import JobSpec
from rollup.secrets import redact
from rollup.sinks.base import Sink


@dataclass(frozen=True)
class FileCheck:
    path: Path
    job: JobSpec | None
    errors: list[str] = field(default_factory=list)
    """Loading errors, then (online) what the source and the sinks said."""

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class ValidationReport:
    directory: Path
    files: list[FileCheck]
    online: bool
    profiles: list[str] = field(default_factory=list)
    """Sink profiles that do not load, one line each (file, key and reason)."""

    @property
    def invalid(self) -> int:
        return sum(not f.ok for f in self.files) + len(self.profiles)


def validate(workspace: Workspace, online: bool = False) -> ValidationReport:
    files = []
    for entry in workspace.files:
        errors = workspace.file_errors(entry)
        if online and entry.job is not None and not errors:
            errors.extend(_online_problems(workspace, entry.job))
        files.append(FileCheck(entry.path, entry.job, errors))
    profiles = [workspace.broken_sinks[name] for name in sorted(workspace.broken_sinks)]
    return ValidationReport(workspace.settings.jobs_dir, files, online, profiles)


def _online_problems(workspace: Workspace, job: JobSpec) -> list[str]:
    problems: list[str] = []
    runner = workspace.runner_for(job)
    try:
        runner.check_schema()
    except RollupError as exc:
        problems.append(f"source: {redact(str(exc))}")
    finally:
        runner.close()
    for name, sink in zip(job.output.sinks, _sinks(workspace, job, problems), strict=False):
        try:
            sink.check()
        except RollupError as exc:
            problems.append(f"sink {name}: {redact(str(exc))}")
        finally:
            sink.close()
    return problems


def _sinks(workspace: Workspace, job: JobSpec, problems: list[str]) -> list[Sink]:
    try:
        return list(workspace.sinks_for(job))
    except RollupError as exc:
        problems.append(f"sinks: {redact(str(exc))}")
        return []
