"""Everything a command needs, built from settings: jobs, their source, sinks and policy, the ledger."""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel

from rollup.core.spec import output_schema
from rollup.errors import ConfigError
from rollup.jobs.loader import JobFile, Known, find_job, load_jobs, scan_jobs
from rollup.jobs.planner import Policy, policy_for
from rollup.jobs.spec import JobSpec
from rollup.ledger import open_ledger
from rollup.ledger.base import Ledger
from rollup.settings import Settings
from rollup.sinks.base import OutputTarget, Sink
from rollup.sinks.profiles import build_sink, load_sink_profiles
from rollup.sources.base import Source
from rollup.sources.influxdb import InfluxQLSource


class Workspace:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def sink_profiles(self) -> dict[str, BaseModel]:
        return load_sink_profiles(self.settings.sinks_dir)

    @property
    def known(self) -> Known:
        return Known(sources=set(self.settings.sources), sinks=set(self.sink_profiles))

    @cached_property
    def jobs(self) -> list[JobSpec]:
        return load_jobs(self.settings.jobs_dir, self.known)

    def scan(self) -> list[JobFile]:
        return scan_jobs(self.settings.jobs_dir, self.known)

    def job(self, name: str) -> JobSpec:
        return find_job(self.jobs, name)

    def source_for(self, job: JobSpec) -> Source:
        profile = self.settings.sources.get(job.source.profile)
        if profile is None:  # pragma: no cover - the loader checked the reference
            raise ConfigError(f"job {job.name}: unknown source profile {job.source.profile!r}")
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

    def policy_for(self, job: JobSpec) -> Policy:
        profile = self.settings.sources.get(job.source.profile)
        return policy_for(job, None if profile is None else profile.retention)

    def ledger(self) -> Ledger:
        """The ledger named by the settings, opened (and migrated); the caller closes it."""
        return open_ledger(self.settings.ledger, self.settings.ledger_password())
