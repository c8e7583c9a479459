"""Load job files (``jobs/*.toml``); every problem is reported with the file, the key and the reason."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollup.config import config_error, known_keys, read_toml
from rollup.errors import ConfigError
from rollup.jobs.spec import (
    PLUGINS_CONTEXT,
    FieldSpec,
    JobSourceSpec,
    JobSpec,
    OutputSpec,
    ScheduleSpec,
    SourceSpec,
    TagCondition,
    WindowSpec,
)
from rollup.plugins import Registry

_VOCABULARY = known_keys(
    {
        "the top level (before any [section])": JobSpec,
        "[source]": SourceSpec,
        "[source] of a job reading a job": JobSourceSpec,
        "[window]": WindowSpec,
        "[fields.NAME]": FieldSpec,
        "[output]": OutputSpec,
        "[schedule]": ScheduleSpec,
        "a where condition": TagCondition,
    }
)


@dataclass(frozen=True)
class Known:
    """The profile names a job may refer to (None: not checked), and the plug-in aggregates it may
    use (None: those of the installed distributions)."""

    sources: Collection[str] | None = None
    sinks: Collection[str] | None = None
    aggregates: Registry | None = None


@dataclass
class JobFile:
    path: Path
    job: JobSpec | None = None
    errors: list[str] = field(default_factory=list)


def load_job(path: Path, known: Known | None = None) -> JobSpec:
    """One job file; ConfigError names the file, the key and the reason."""
    data = read_toml(path)
    data.setdefault("name", path.stem)
    return job_from(data, path, known)


def job_from(data: dict[str, Any], where: Path | str, known: Known | None = None) -> JobSpec:
    """A job from the content of a job file; ConfigError names ``where``, the key and the reason."""
    known = known or Known()
    context = {} if known.aggregates is None else {PLUGINS_CONTEXT: known.aggregates}
    try:
        job = JobSpec.model_validate(data, context=context)
    except ValidationError as exc:
        raise config_error(where, exc, _VOCABULARY) from None
    _check_references(where, job, known)
    return job


def _check_references(path: Path | str, job: JobSpec, known: Known) -> None:
    source = job.source  # a job it reads is checked with every job (rollup.jobs.ladder)
    if isinstance(source, SourceSpec) and known.sources is not None and source.profile not in known.sources:
        names = ", ".join(sorted(known.sources)) or "none defined"
        raise ConfigError(
            f"{path}: source.profile: unknown source profile {source.profile!r} "
            f"(defined in config/rollup.toml [sources.*]: {names})"
        )
    if known.sinks is not None:
        for sink in job.output.sinks:
            if sink not in known.sinks:
                names = ", ".join(sorted(known.sinks)) or "none defined"
                raise ConfigError(
                    f"{path}: output.sinks: unknown sink profile {sink!r} (sinks/*.toml: {names})"
                )


def scan_jobs(directory: Path, known: Known | None = None) -> list[JobFile]:
    """Every ``*.toml`` in ``directory``, each loaded or with its errors.

    Two jobs whose names differ only in case are refused like a duplicate name: index names and
    file systems that ignore case would mix their output."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: jobs directory not found")
    files: list[JobFile] = []
    seen: dict[str, tuple[str, Path]] = {}
    for path in sorted(directory.glob("*.toml")):
        entry = JobFile(path)
        try:
            entry.job = load_job(path, known)
        except ConfigError as exc:
            entry.errors.append(str(exc))
        if entry.job is not None:
            name = entry.job.name
            other = seen.get(name.casefold())
            if other is not None:
                same = "" if other[0] == name else f" (as {other[0]!r}: names may not differ only in case)"
                entry.errors.append(f"{path}: name: job name {name!r} is also used by {other[1]}{same}")
                entry.job = None
            else:
                seen[name.casefold()] = (name, path)
        files.append(entry)
    return files


def find_job(jobs: list[JobSpec], name: str) -> JobSpec:
    for job in jobs:
        if job.name == name:
            return job
    names = ", ".join(job.name for job in jobs) or "none"
    raise ConfigError(f"unknown job {name!r} (jobs: {names})")
