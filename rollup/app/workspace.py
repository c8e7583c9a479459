"""Everything a command needs, built from the settings: the jobs (and the job files that are
broken), their source, sinks and policy, the ledger. The only place where settings become
adapters.

One broken file stops only itself: a job file that does not load, or that names a sink profile
that does not load, is reported (:attr:`Workspace.problems`) while every other job runs.
"""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel

from rollup.core.spec import output_schema
from rollup.errors import ConfigError
from rollup.jobs.loader import JobFile, Known, find_job, scan_jobs
from rollup.jobs.planner import Policy, policy_for
from rollup.jobs.spec import JobSpec
from rollup.ledger import open_ledger
from rollup.ledger.base import Ledger
from rollup.plugins import Registry, discover
from rollup.settings import Settings
from rollup.sinks.base import OutputTarget, Sink
from rollup.sinks.profiles import build_sink, scan_sink_profiles
from rollup.sources.base import Source
from rollup.sources.influxdb import InfluxQLSource


class Workspace:
    def __init__(self, settings: Settings):
        self.settings = settings

    # -- job files and sink profiles ----------------------------------------------------------

    @cached_property
    def _sinks(self) -> tuple[dict[str, BaseModel], dict[str, str]]:
        return scan_sink_profiles(self.settings.sinks_dir)

    @property
    def sink_profiles(self) -> dict[str, BaseModel]:
        """The sink profiles that load, by name."""
        return self._sinks[0]

    @property
    def broken_sinks(self) -> dict[str, str]:
        """Sink profiles that do not load: name → the error."""
        return self._sinks[1]

    @cached_property
    def aggregates(self) -> Registry:
        """The plug-in aggregates jobs may use: entry points and the settings' ``plugins``."""
        return discover(self.settings.plugins)

    @property
    def known(self) -> Known:
        """What a job file may refer to: profiles, plug-ins."""
        return Known(
            sources=set(self.settings.sources),
            sinks=set(self.sink_profiles) | set(self.broken_sinks),
            aggregates=self.aggregates,
        )

    @cached_property
    def files(self) -> list[JobFile]:
        """Every job file, loaded or with its errors."""
        return scan_jobs(self.settings.jobs_dir, self.known)

    def blocked_by(self, job: JobSpec) -> list[str]:
        """The job's sink profiles that do not load (the job cannot run until they do)."""
        return [name for name in job.output.sinks if name in self.broken_sinks]

    @property
    def jobs(self) -> list[JobSpec]:
        """Every job whose file loads and whose sink profiles load."""
        return [entry.job for entry in self.files if entry.job is not None and not self.blocked_by(entry.job)]

    @property
    def problems(self) -> list[str]:
        """One line per problem (file, key and reason): each broken sink profile, each broken job
        file."""
        return [self.broken_sinks[name] for name in sorted(self.broken_sinks)] + [
            error for entry in self.files for error in entry.errors
        ]

    def job(self, name: str) -> JobSpec:
        """The job called ``name``; ConfigError with the problem of its file or of its sink
        profiles if they do not load, or listing the jobs if there is none of that name."""
        for entry in self.files:
            if entry.job is not None and entry.job.name == name:
                blocked = self.blocked_by(entry.job)
                if blocked:
                    raise ConfigError("; ".join(self.broken_sinks[sink] for sink in blocked))
                return entry.job
        for entry in self.files:
            if entry.job is None and entry.path.stem == name:
                raise ConfigError("; ".join(entry.errors))
        return find_job(self.jobs, name)

    # -- adapters -----------------------------------------------------------------------------

    def source_for(self, job: JobSpec) -> Source:
        profile = self.settings.sources[job.source.profile]  # the loader checked the reference
        return InfluxQLSource(
            profile,
            chunk_size=profile.chunk_size,
            format=profile.format,
            concurrency=profile.concurrency,
            read_ahead=profile.read_ahead,
            attempts=profile.retries + 1,
            backoff=profile.backoff,
        )

    def target_for(self, job: JobSpec) -> OutputTarget:
        return OutputTarget(
            job=job.name,
            measurement=job.output.measurement,
            window=job.window.every.text,
            timezone=job.window.timezone,
            tags=None if job.group_by is None else tuple(job.group_by),
            schema=output_schema(job.rollup),
        )

    def sinks_for(self, job: JobSpec) -> list[Sink]:
        target = self.target_for(job)
        return [build_sink(name, self.sink_profiles[name], target) for name in job.output.sinks]

    def policy_for(self, job: JobSpec, origin: int | None = None) -> Policy:
        """The job's policy; ``origin`` is where a job without ``start`` begins (see the ledger)."""
        profile = self.settings.sources.get(job.source.profile)
        return policy_for(job, None if profile is None else profile.retention, origin)

    def ledger(self) -> Ledger:
        """The ledger named by the settings, opened (and migrated); the caller closes it."""
        return open_ledger(self.settings.ledger, self.settings.ledger_password())
