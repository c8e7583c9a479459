"""Jobs that read jobs: the *ladder* (raw → daily → monthly …).

A job whose ``[source]`` names a job (the *upstream*) reads the rows that job wrote to one of its
InfluxDB sinks and merges them exactly (:mod:`rollup.core.merge`) into coarser windows and groups.
Whether that is possible depends on both jobs, so it is checked here, for every job at once, when
the jobs are loaded:

* the upstream exists, loads, and no job reads itself through others (no cycle);
* the sink read is one of the upstream's InfluxDB sinks, written with the v1 API (a database);
* each window is a union of whole upstream windows, in the same time zone (3h → 1d, 1d → 1w,
  1d → 1mo, 1mo → 3mo …) — see :func:`window_problem`;
* the groups are the upstream's or coarser (``group_by`` a subset of the upstream's), and a
  ``where`` filters on the upstream's groups only;
* every field is one the upstream writes, and the upstream writes every aggregate a merge needs
  (the count behind a mean …): if not, the message says what to add to which of its fields.

Every problem names both jobs. A job that cannot run this way stops only itself and the jobs that
read it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from pydantic import BaseModel

from rollup.core.durations import NS_PER_SECOND
from rollup.core.merge import MergeSpec, NotMergeableError, upstream_aggregates
from rollup.core.spec import FieldRule, Kind, RollupSpec, Stamp, check_aggregate, output_field
from rollup.core.windows import DAY_NS, WindowGrid, to_ns
from rollup.jobs.spec import JobSourceSpec, JobSpec
from rollup.sinks.influxdb import InfluxSinkProfile

_MONDAY_AFTER_EPOCH_DAYS = 4
"""Weeks start on Mondays counted from 1970-01-05, days from 1970-01-01: four days apart."""
_SCANNED = (1970, 2100)
"""Years whose clock changes are checked when a calendar window has an offset (see _nested)."""


class LadderError(ValueError):
    """Why a job cannot read the job it names (the message names both)."""


@dataclass(frozen=True, slots=True)
class OutputField:
    """A field a job writes (``<output>_<aggregate>``), as a job reading it sees it."""

    key: str
    """Its ``[fields.KEY]`` in the job that writes it."""
    kind: Kind
    unit_seconds: float
    aggregates: frozenset[str]


@dataclass(frozen=True)
class Upstream:
    """The job a job reads, where its rows are, and how they merge."""

    job: JobSpec
    sink: str
    """The upstream's sink profile the rows are read from."""
    profile: InfluxSinkProfile
    merge: MergeSpec

    @property
    def database(self) -> str:
        assert self.profile.database is not None  # checked by link()
        return self.profile.database

    @property
    def retention_policy(self) -> str | None:
        return self.profile.retention_policy

    @property
    def measurement(self) -> str:
        return self.job.output.measurement

    @property
    def stamp(self) -> Stamp:
        return self.job.output.timestamp


@dataclass
class Ladder:
    """Every job's upstream (if it reads a job), and why the jobs that cannot run cannot."""

    upstreams: dict[str, Upstream] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    """Job name → why it cannot read its upstream (naming both)."""

    def downstream_of(self, name: str) -> list[str]:
        """The jobs that read job ``name``, by name."""
        return sorted(down for down, up in self.upstreams.items() if up.job.name == name)


def resolve(jobs: Sequence[JobSpec], sinks: Mapping[str, BaseModel], unusable: Mapping[str, str]) -> Ladder:
    """Check every job that reads a job against the job it reads (transitively).

    ``sinks``: the sink profiles that load; ``unusable``: names of jobs that cannot run (their
    file or a sink profile does not load) → why."""
    by_name = {job.name: job for job in jobs}
    ladder = Ladder()
    written: dict[str, dict[str, OutputField]] = {}

    def visit(name: str, path: tuple[str, ...]) -> bool:
        job = by_name[name]
        if name in written:
            return True
        if name in ladder.problems:
            return False
        if job.upstream is None:
            written[name] = raw_outputs(job)
            return True
        if name in path:
            cycle = (*path[path.index(name) :], name)
            for member in cycle[:-1]:
                ladder.problems[member] = (
                    f"job {member} is part of a cycle of jobs reading jobs: {' → '.join(cycle)}"
                )
            return False
        upstream = job.upstream
        if upstream not in by_name:
            reason = unusable.get(upstream)
            known = ", ".join(sorted(n for n in by_name if n != name)) or "none"
            ladder.problems[name] = (
                f"job {name} reads job {upstream}, which cannot run: {reason}"
                if reason is not None
                else f"job {name} reads job {upstream}, which does not exist (jobs: {known})"
            )
            return False
        if not visit(upstream, (*path, name)):
            if name not in ladder.problems:
                ladder.problems[name] = (
                    f"job {name} reads job {upstream}, which cannot run: {ladder.problems[upstream]}"
                )
            return False
        try:
            found = link(job, by_name[upstream], written[upstream], sinks)
        except LadderError as exc:
            ladder.problems[name] = str(exc)
            return False
        ladder.upstreams[name] = found
        written[name] = merged_outputs(job, found)
        return True

    for job in jobs:
        visit(job.name, ())
    return ladder


def raw_outputs(job: JobSpec) -> dict[str, OutputField]:
    """The fields a job reading a buffer writes, by output name."""
    return {
        spec.output_name or key: OutputField(
            key, spec.kind, spec.unit.nanos / NS_PER_SECOND, frozenset(spec.builtins)
        )
        for key, spec in job.fields.items()
    }


def merged_outputs(job: JobSpec, upstream: Upstream) -> dict[str, OutputField]:
    """The fields a job reading a job writes, by output name."""
    return {
        rule.output: OutputField(rule.name, rule.kind, rule.unit_seconds, frozenset(rule.aggregates))
        for rule in upstream.merge.rollup.fields
    }


def link(
    job: JobSpec, upstream: JobSpec, written: Mapping[str, OutputField], sinks: Mapping[str, BaseModel]
) -> Upstream:
    """How ``job`` reads ``upstream`` (whose fields are ``written``); LadderError naming both
    jobs when it cannot."""
    source = job.source
    assert isinstance(source, JobSourceSpec)
    intro = f"job {job.name} reads job {upstream.name}"
    sink, profile = _sink(intro, source, upstream, sinks)
    problem = window_problem(job.grid, upstream.grid)
    if problem is not None:
        raise LadderError(f"{intro}: window: {problem}")
    merged_groups = _groups(intro, job, upstream)
    rules = _fields(intro, job, upstream, written, merged_groups)
    spec = RollupSpec(
        fields=rules,
        group_by=None if job.group_by is None else tuple(job.group_by),
        stamp=job.output.timestamp,
    )
    return Upstream(upstream, sink, profile, MergeSpec(spec, merged_groups))


def _sink(
    intro: str, source: JobSourceSpec, upstream: JobSpec, sinks: Mapping[str, BaseModel]
) -> tuple[str, InfluxSinkProfile]:
    if source.sink is not None:
        if source.sink not in upstream.output.sinks:
            raise LadderError(
                f"{intro}: source.sink: job {upstream.name} does not write to sink {source.sink!r} "
                f"(it writes to {', '.join(upstream.output.sinks)})"
            )
        name = source.sink
        profile = sinks.get(name)
        if not isinstance(profile, InfluxSinkProfile):
            kind = getattr(profile, "type", "unknown")
            raise LadderError(
                f"{intro}: source.sink: sink {name!r} is of type {kind}: a job's output is read back "
                "from InfluxDB only"
            )
    else:
        influx = [n for n in upstream.output.sinks if isinstance(sinks.get(n), InfluxSinkProfile)]
        if not influx:
            written_to = ", ".join(upstream.output.sinks)
            raise LadderError(
                f"{intro}: job {upstream.name} writes to no InfluxDB sink ({written_to}): a job's output "
                "is read back from InfluxDB: add one to its output.sinks"
            )
        name = influx[0]
        profile = sinks[name]
        assert isinstance(profile, InfluxSinkProfile)
    if profile.database is None:
        raise LadderError(
            f"{intro}: sink {name!r} writes with the InfluxDB 2.x API (org and bucket): reading it "
            "back needs the v1 API: give the sink the database its bucket is mapped to instead"
        )
    return name, profile


def _groups(intro: str, job: JobSpec, upstream: JobSpec) -> bool:
    """Check the groups; return whether parts of one upstream window merge into one group."""
    source = job.source
    assert isinstance(source, JobSourceSpec)
    theirs = upstream.group_by
    if theirs is not None:
        foreign = [tag for tag in job.group_by or () if tag not in theirs]
        if foreign:
            raise LadderError(
                f"{intro}: group_by: {', '.join(map(repr, foreign))} {'is' if len(foreign) == 1 else 'are'} "
                f"not a group_by tag of job {upstream.name} ({', '.join(theirs)}): groups can only "
                "be merged into coarser ones"
            )
        filtered = [tag for tag in source.where if tag not in theirs]
        if filtered:
            raise LadderError(
                f"{intro}: source.where: {', '.join(map(repr, filtered))} is not a group_by tag of job "
                f"{upstream.name} ({', '.join(theirs)}): its rows carry only those tags"
            )
    if job.group_by is None:
        return False
    return theirs is None or set(job.group_by) != set(theirs)


def _fields(
    intro: str, job: JobSpec, upstream: JobSpec, written: Mapping[str, OutputField], merged_groups: bool
) -> tuple[FieldRule, ...]:
    rules: list[FieldRule] = []
    for name, spec in job.fields.items():
        found = written.get(name)
        if found is None:
            raise LadderError(
                f"{intro}: fields.{name}: job {upstream.name} writes no field {name!r} "
                f"(it writes {', '.join(sorted(written))}: the names after 'as')"
            )
        if spec.plugins:
            raise LadderError(
                f"{intro}: fields.{name}.aggregates: plug-in aggregates "
                f"({', '.join(sorted(spec.plugin_names))}) cannot be merged from another job's rows: "
                "compute them from raw points, with a buffer that keeps the whole window"
            )
        missing: list[str] = []
        for aggregate in spec.builtins:
            try:
                check_aggregate(aggregate, found.kind)
                needed = upstream_aggregates(aggregate, merged_groups=merged_groups)
            except (ValueError, NotMergeableError) as exc:
                raise LadderError(f"{intro}: fields.{name}.aggregates: {exc}") from None
            missing += [a for a in needed if a not in found.aggregates and a not in missing]
        if missing:
            why = ", ".join(
                f"{output_field(name, a)} from {_listed(name, _needs(a, merged_groups))}"
                for a in spec.builtins
                if set(_needs(a, merged_groups)) & set(missing)
            )
            raise LadderError(
                f"{intro}: fields.{name}: job {upstream.name} must also write "
                f"{', '.join(repr(a) for a in missing)}: add {'it' if len(missing) == 1 else 'them'} to "
                f"the aggregates of its [fields.{found.key}] (merged: {why}), then re-run the windows "
                f"it already wrote (rollup backfill {upstream.name} --force)"
            )
        rules.append(
            FieldRule(
                name=name,
                output=spec.output_name or name,
                kind=found.kind,
                aggregates=spec.builtins,
                unit_seconds=found.unit_seconds,
            )
        )
    return tuple(rules)


def _needs(aggregate: str, merged_groups: bool) -> tuple[str, ...]:
    return upstream_aggregates(aggregate, merged_groups=merged_groups)


def _listed(name: str, aggregates: Sequence[str]) -> str:
    return " and ".join(output_field(name, a) for a in aggregates)


# -- windows --------------------------------------------------------------------------------------


def window_problem(down: WindowGrid, up: WindowGrid) -> str | None:
    """Why the windows of ``down`` are not all unions of whole windows of ``up`` (None: they are).

    Boundaries must be boundaries of ``up``: months from months (a multiple of them), weeks from
    weeks or days, days from days, any calendar window or divisor of a day from a divisor of a day
    whose wall-clock times it shares, fixed-length windows from fixed-length ones, each with an
    offset that lines up."""
    if down.timezone != up.timezone:
        return (
            f"its time zone {down.timezone} is not that of the job it reads ({up.timezone}): days of one "
            "zone are not unions of windows of another"
        )
    if _nested(down, up):
        return None
    return (
        f"its windows ({_describe(down)}) are not unions of whole windows of the job it reads "
        f"({_describe(up)}): each window must start and end where windows of that job do"
    )


def _describe(grid: WindowGrid) -> str:
    offset = grid.offset_ns
    return grid.every.text + (f" + offset {offset / 3.6e12:g}h" if offset else "")


def _nested(down: WindowGrid, up: WindowGrid) -> bool:
    same_offset = down.offset_ns == up.offset_ns
    if up.kind == "months":
        return down.kind == "months" and down.every.months % up.every.months == 0 and same_offset
    if up.kind == "weeks":
        return down.kind == "weeks" and down.every.nanos % up.every.nanos == 0 and same_offset
    if up.kind == "days":
        days = up.every.nanos // DAY_NS
        if not same_offset:
            return False
        if down.kind == "days":
            return (down.every.nanos // DAY_NS) % days == 0
        if down.kind == "weeks":
            return (down.every.nanos // DAY_NS) % days == 0 and _MONDAY_AFTER_EPOCH_DAYS % days == 0
        return down.kind == "months" and days == 1
    if up.kind == "wallclock":
        size = up.every.nanos
        if (down.offset_ns - up.offset_ns) % size:
            return False
        if down.kind == "wallclock":
            return down.every.nanos % size == 0
        if down.kind in ("days", "weeks", "months"):
            # Local midnight starts a day in both grids, also where a DST jump skips it; another
            # wall time a jump skips starts the day at the first instant after the jump, which
            # must then be a boundary of the upstream too.
            return down.offset_ns == 0 or _nested_on_clock_changes(down, up)
        return False
    return (
        down.kind == "fixed"
        and down.every.nanos % up.every.nanos == 0
        and (down.offset_ns - up.offset_ns) % up.every.nanos == 0
    )


def _nested_on_clock_changes(down: WindowGrid, up: WindowGrid) -> bool:
    """Whether every boundary of ``down`` on a day the clocks change is a boundary of ``up``."""
    for midnight in _clock_changes(down.timezone):
        for boundary in down.boundaries(midnight, midnight + DAY_NS).tolist():
            if up.window_at(boundary).start != boundary:
                return False
    return True


@cache
def _clock_changes(timezone: str) -> tuple[int, ...]:
    """The local midnights (epoch ns) of the days whose clocks change, in the years of _SCANNED."""
    zone = WindowGrid("1d", timezone).zone
    found: list[int] = []
    day = dt.datetime(_SCANNED[0], 1, 1)
    previous = day.replace(tzinfo=zone).utcoffset()
    while day.year < _SCANNED[1]:
        following = day + dt.timedelta(days=1)
        offset = following.replace(tzinfo=zone).utcoffset()
        if offset != previous:
            found.append(to_ns(day.replace(tzinfo=zone)))
        previous = offset
        day = following
    return tuple(found)
