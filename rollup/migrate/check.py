"""``--check``: a continuous query's own numbers next to the imported job's, row by row.

The CQ's SELECT runs without its INTO against the live InfluxDB — once per window when it takes
a derivative in a subquery, as the CQ itself does, so each window's derivative starts afresh — and
the job is computed over the same windows without writing anything (what ``rollup preview``
does: the source's batches through :class:`~rollup.core.pipeline.Rollup`). Rows are matched by
timestamp and group tags, values by the job's names for the CQ's columns. Two numbers agree when
they are equal to 1e-9 relatively (the two sum in different orders); a missing row or value on
one side is a difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rollup.core.pipeline import OutputRow, Rollup
from rollup.core.windows import Window
from rollup.errors import ConfigError
from rollup.influx import InfluxConnection
from rollup.jobs.spec import JobSpec
from rollup.migrate.emit import ImportedJob
from rollup.migrate.live import Row, select_rows
from rollup.migrate.plan import CheckQuery
from rollup.sources.base import Source, SourceQuery
from rollup.sources.influxdb import InfluxQLSource

RELATIVE_TOLERANCE = 1e-9
Value = float | int | None
Key = tuple[int, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Difference:
    time: int
    tags: tuple[tuple[str, str], ...]
    column: str
    """The CQ's column (the job's field is in :attr:`field`)."""
    field: str
    original: Value
    job: Value

    def describe(self, spec: JobSpec) -> str:
        tags = " ".join(f"{k}={v}" for k, v in self.tags) or "(no tags)"
        return (
            f"{spec.local_time(self.time)} {tags} {self.column}: CQ {_show(self.original)}, "
            f"job {self.field} {_show(self.job)}"
        )


@dataclass
class CheckReport:
    jobs: list[ImportedJob]
    windows: list[Window]
    original_rows: int
    job_rows: int
    differences: list[Difference] = field(default_factory=list)
    uncompared: list[str] = field(default_factory=list)
    """Columns of the CQ the jobs have no counterpart for (a spread, …)."""


def check_jobs(
    jobs: Sequence[ImportedJob], connection: InfluxConnection, start: int, end: int
) -> CheckReport:
    """Compare the jobs imported from one continuous query with it over ``[start, end)`` (a CQ that
    reads a field two ways became several jobs writing to the same points)."""
    first = jobs[0]
    if first.check is None or any(job.check != first.check for job in jobs):
        raise ConfigError(f"job {first.name}: only the jobs of one continuous query can be checked together")
    windows = first.spec.grid.windows(start, end)
    if not windows:
        raise ConfigError("the time range holds no window")
    original = _original_rows(first.check, connection, windows)
    theirs = {_key(row.time, row.tags): row.values for row in original if _written(row)}
    ours: dict[Key, dict[str, Value]] = {}
    renames: dict[str, str] = {}
    for job in jobs:
        renames.update(job.renames)
        for row in _job_rows(job.spec, connection, windows):
            ours.setdefault(_key(row.time, row.tags), {}).update(row.values)
    report = CheckReport(list(jobs), windows, len(theirs), len(ours))
    columns = sorted({c for values in theirs.values() for c in values})
    report.uncompared = [c for c in columns if c not in renames]
    for key in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(key, {}), theirs.get(key, {})
        for column, name in sorted(renames.items()):
            a, b = other.get(column), mine.get(name)
            if not _agree(a, b):
                report.differences.append(Difference(key[0], key[1], column, name, a, b))
    return report


def _job_rows(spec: JobSpec, connection: InfluxConnection, windows: list[Window]) -> list[OutputRow]:
    # Without lookback each window is computed alone, as the runner does: no prev crosses its edge.
    spans = [[w] for w in windows] if spec.window.lookback_ns == 0 else [windows]
    source = InfluxQLSource(connection, format="json")
    try:
        return [row for span in spans for row in preview_rows(spec, source, span)]
    finally:
        source.close()


def preview_rows(spec: JobSpec, source: Source, windows: Sequence[Window]) -> list[OutputRow]:
    """The job's rows over contiguous ``windows``, computed and not written (``rollup preview``)."""
    buffer = spec.buffer
    query = SourceQuery(
        database=buffer.database,
        retention_policy=buffer.retention_policy,
        measurement=buffer.measurement,
        fields=tuple(spec.fields),
        start=windows[0].start - spec.window.lookback_ns,
        end=windows[-1].end,
        where=buffer.tag_matches(),
        together=tuple(spec.group_by or ()),
    )
    rollup = Rollup(spec.rollup, windows)
    for batch in source.read(query):
        rollup.feed(batch)
    return [row for result in rollup.finish() for row in result.rows]


def _original_rows(check: CheckQuery, connection: InfluxConnection, windows: list[Window]) -> list[Row]:
    each = [(w.start, w.end) for w in windows]
    spans = each if check.per_window else [(windows[0].start, windows[-1].end)]
    rows: list[Row] = []
    for start, end in spans:
        statement = check.template.replace("{time}", f"time >= {start} AND time < {end}")
        rows += select_rows(connection, check.database, statement)
    return rows


def _written(row: Row) -> bool:
    """A CQ writes no point for a row whose values are all null (an empty bucket)."""
    return any(value is not None for value in row.values.values())


def _key(time: int, tags: dict[str, str]) -> Key:
    return time, tuple(sorted((k, v) for k, v in tags.items() if v))


def _agree(a: Value, b: Value) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def _show(value: Value) -> str:
    return "none" if value is None else repr(value)
