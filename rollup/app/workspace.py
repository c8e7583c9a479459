"""Everything a command needs, built from the settings: the jobs (and the job files that are
broken), their source, sinks and policy, the ledger. The only place where settings become
adapters.

One broken file stops only itself: a job file that does not load, or that names a sink profile
that does not load, is reported (:attr:`Workspace.problems`) while every other job runs. So is a
job that reads a job it cannot read (:mod:`rollup.jobs.ladder`: the job is missing or broken,
the windows or groups do not nest, an aggregate cannot be merged …), and the jobs that read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from pydantic import BaseModel

from rollup.core.spec import RollupSpec, output_schema
from rollup.errors import ConfigError
from rollup.jobs.ladder import Ladder, Upstream, resolve
from rollup.jobs.loader import JobFile, Known, find_job, scan_jobs
from rollup.jobs.planner import Policy, policy_for
from rollup.jobs.runner import JobRunner, OnPoints
from rollup.jobs.spec import JobSpec, SourceSpec
from rollup.ledger import open_ledger
from rollup.ledger.base import Ledger
from rollup.plugins import Registry, discover
from rollup.settings import Settings
from rollup.sinks.base import OutputTarget, Sink
from rollup.sinks.profiles import build_sink, scan_sink_profiles
from rollup.sources.base import Source
from rollup.sources.influxdb import InfluxQLSource
from rollup.sources.job_output import JobOutputSource


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

    @cached_property
    def ladder(self) -> Ladder:
        """Every job that reads a job, checked against the job it reads."""
        usable: list[JobSpec] = []
        unusable: dict[str, str] = {}
        for entry in self.files:
            if entry.job is None:
                unusable.setdefault(entry.path.stem, f"its file {entry.path} does not load")
            elif self.blocked_by(entry.job):
                unusable[entry.job.name] = (
                    f"sink profile(s) {', '.join(self.blocked_by(entry.job))} do not load"
                )
            else:
                usable.append(entry.job)
        return resolve(usable, self.sink_profiles, unusable)

    @property
    def jobs(self) -> list[JobSpec]:
        """Every job whose file loads, whose sink profiles load, and that can read the job it reads."""
        return [
            entry.job
            for entry in self.files
            if entry.job is not None
            and not self.blocked_by(entry.job)
            and entry.job.name not in self.ladder.problems
        ]

    def file_errors(self, entry: JobFile) -> list[str]:
        """The problems of one job file (file, key and reason), the job it reads included."""
        if entry.job is None or entry.job.name not in self.ladder.problems:
            return list(entry.errors)
        return [*entry.errors, f"{entry.path}: source.job: {self.ladder.problems[entry.job.name]}"]

    @property
    def problems(self) -> list[str]:
        """One line per problem (file, key and reason): each broken sink profile, each broken job
        file, each job that cannot read the job it reads."""
        return [self.broken_sinks[name] for name in sorted(self.broken_sinks)] + [
            error for entry in self.files for error in self.file_errors(entry)
        ]

    def job(self, name: str) -> JobSpec:
        """The job called ``name``; ConfigError with the problem of its file or of its sink
        profiles if they do not load, or listing the jobs if there is none of that name."""
        for entry in self.files:
            if entry.job is not None and entry.job.name == name:
                blocked = self.blocked_by(entry.job)
                if blocked:
                    raise ConfigError("; ".join(self.broken_sinks[sink] for sink in blocked))
                if name in self.ladder.problems:
                    raise ConfigError("; ".join(self.file_errors(entry)))
                return entry.job
        for entry in self.files:
            if entry.job is None and entry.path.stem == name:
                raise ConfigError("; ".join(entry.errors))
        return find_job(self.jobs, name)

    # -- adapters -----------------------------------------------------------------------------

    def upstream_of(self, job: JobSpec) -> Upstream | None:
        """The job ``job`` reads and how (None: it reads a buffer); ConfigError when it cannot."""
        if job.upstream is None:
            return None
        found = self.ladder.upstreams.get(job.name)
        if found is None:
            reason = self.ladder.problems.get(job.name, f"job {job.name} is not loaded")
            raise ConfigError(reason)
        return found

    def in_ladder_order(self, jobs: Sequence[JobSpec]) -> list[JobSpec]:
        """``jobs`` with every job after the jobs it reads (otherwise in their order), so that one
        pass of each brings a ladder up to date."""

        def depth(job: JobSpec) -> int:
            upstream = self.ladder.upstreams.get(job.name)
            return 0 if upstream is None else 1 + depth(upstream.job)

        return sorted(jobs, key=depth)

    def downstream_of(self, name: str) -> list[str]:
        """The jobs that read job ``name``."""
        return self.ladder.downstream_of(name)

    def rollup_of(self, job: JobSpec) -> RollupSpec:
        """What the job computes (a job reading a job: its merge, with that job's kinds)."""
        upstream = self.upstream_of(job)
        return job.rollup if upstream is None else upstream.merge.rollup

    def source_for(self, job: JobSpec) -> Source:
        upstream = self.upstream_of(job)
        if upstream is not None:
            sink = upstream.profile
            reader = InfluxQLSource(sink, attempts=sink.retries + 1, backoff=sink.backoff)
            return JobOutputSource(reader, upstream.job.grid, upstream.stamp)
        assert isinstance(job.source, SourceSpec)
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

    def runner_for(
        self, job: JobSpec, sinks: Sequence[Sink] = (), on_points: OnPoints | None = None
    ) -> JobRunner:
        """A runner of ``job`` writing to ``sinks`` (none: it computes only); the caller closes it."""
        return JobRunner(
            job, self.source_for(job), sinks, on_points=on_points, upstream=self.upstream_of(job)
        )

    def target_for(self, job: JobSpec) -> OutputTarget:
        return OutputTarget(
            job=job.name,
            measurement=job.output.measurement,
            window=job.window.every.text,
            timezone=job.window.timezone,
            tags=None if job.group_by is None else tuple(job.group_by),
            schema=output_schema(self.rollup_of(job)),
        )

    def sinks_for(self, job: JobSpec) -> list[Sink]:
        target = self.target_for(job)
        return [build_sink(name, self.sink_profiles[name], target) for name in job.output.sinks]

    def policy_for(self, job: JobSpec, origin: int | None = None) -> Policy:
        """The job's policy; ``origin`` is where a job without ``start`` begins (see the ledger).
        A job reading a job has no buffer of its own: only its [schedule] buffer_retention."""
        if not isinstance(job.source, SourceSpec):
            return policy_for(job, None, origin)
        profile = self.settings.sources.get(job.source.profile)
        return policy_for(job, None if profile is None else profile.retention, origin)

    def ledger(self) -> Ledger:
        """The ledger named by the settings, opened (and migrated); the caller closes it."""
        return open_ledger(self.settings.ledger, self.settings.ledger_password())
