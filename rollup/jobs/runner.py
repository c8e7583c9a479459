"""Run a job over windows: read the source, roll up, write every sink.

Contiguous windows are read in *spans* (one query per span) so a backfill of short windows does not
pay one round trip per window. A span's size adapts to the number of groups seen so far, keeping
the accumulators near ``slot_budget`` (group × window) entries whatever the window length: memory
follows the number of groups, never the number of points. A span succeeds or fails as a whole,
and a window is only reported written once every sink has accepted its rows.

Before its first span the runner checks the job against the source's schema (the measurement,
every field and every ``group_by`` tag exist): a typo must fail the window with a message that
names it, not look like a window without data.

Percentiles keep their values only until a group's last series has been read, as the source's
declared order tells; should a source break its declared order, the span is read again without
relying on it (exact either way, see :mod:`rollup.core.completion`).

A job that reads another job's output (an :class:`~rollup.jobs.ladder.Upstream`) reads that job's
rows of the span's windows and merges them (:mod:`rollup.core.merge`) instead of rolling up raw
points.

A plug-in aggregate that fails on a window fails that window alone (not transient: it needs a
fix, or new data): its rows are not written, the span's other windows are.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ByteSize

from rollup.core.completion import SeriesOrderError
from rollup.core.merge import Merge, MissingPartError
from rollup.core.pipeline import OutputRow, Rollup, WindowResult
from rollup.core.plugins import PluginFailure
from rollup.core.windows import DAY_NS, Window
from rollup.errors import RollupError, SinkError, SourceError
from rollup.jobs.ladder import Upstream
from rollup.jobs.spec import JobSpec
from rollup.sinks.base import Sink
from rollup.sources.base import Source, SourceQuery

log = logging.getLogger(__name__)

DEFAULT_SLOT_BUDGET = 200_000
MAX_SPAN_NS = DAY_NS

Cause = Literal["source", "sink", "job"]
"""What a window failed on: reading, writing, or the job itself (a value out of range, a bug)."""

OnPoints = Callable[[int], None]
"""Called with the number of points of each batch read."""


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    window: Window
    points: int
    """Source rows read for the window (also when writing it failed)."""
    rows: int
    """Rows written (0 when the window failed)."""
    seconds: float
    error: str | None = None
    transient: bool = False
    """The failure may go away by itself (a server down or busy); else it needs a fix."""
    cause: Cause | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def empty(self) -> bool:
        """Done, but the source had no point at all for the window."""
        return self.ok and self.points == 0


def contiguous_runs(windows: Sequence[Window]) -> list[list[Window]]:
    """Split sorted windows into runs with no hole between neighbours."""
    runs: list[list[Window]] = []
    for window in sorted(windows):
        if runs and runs[-1][-1].end == window.start:
            runs[-1].append(window)
        else:
            runs.append([window])
    return runs


class JobRunner:
    def __init__(
        self,
        job: JobSpec,
        source: Source,
        sinks: Sequence[Sink] = (),
        slot_budget: int = DEFAULT_SLOT_BUDGET,
        on_points: OnPoints | None = None,
        upstream: Upstream | None = None,
    ):
        if (upstream is None) != (job.upstream is None):
            raise ValueError(f"job {job.name}: a job reading a job needs its Upstream, and only it")
        self.job = job
        self.upstream = upstream
        self.source = source
        self.sinks = list(sinks)
        self.slot_budget = slot_budget
        self.on_points = on_points
        self._groups_seen = 0
        self._schema_checked = False

    def query(self, span: Sequence[Window]) -> SourceQuery:
        if self.upstream is not None:
            up = self.upstream
            return SourceQuery(
                database=up.database,
                retention_policy=up.retention_policy,
                measurement=up.measurement,
                fields=up.merge.columns(),
                start=span[0].start,
                end=span[-1].end,
                where=self.job.source.tag_matches(),
                together=tuple(self.job.group_by or ()),
            )
        spec = self.job.buffer
        return SourceQuery(
            database=spec.database,
            retention_policy=spec.retention_policy,
            measurement=spec.measurement,
            fields=tuple(self.job.fields),
            start=span[0].start - self.job.window.lookback_ns,
            end=span[-1].end,
            where=spec.tag_matches(),
            together=tuple(self.job.group_by or ()),
        )

    def spans(self, windows: Sequence[Window]) -> Iterator[list[Window]]:
        """Spans to read, sized from the groups seen so far (re-evaluated after each span).

        With ``lookback = "0s"`` every window is a span of its own: a series' prev must not cross a
        window edge (the Kapacitor and continuous-query convention), and within a span it would.
        """
        alone = self.upstream is None and self.job.window.lookback_ns == 0
        for run in contiguous_runs(windows):
            position = 0
            while position < len(run):
                per_span = 1 if alone else max(1, self.slot_budget // max(self._groups_seen, 1))
                span = [run[position]]
                while (
                    len(span) < per_span
                    and position + len(span) < len(run)
                    and run[position + len(span)].end - span[0].start <= MAX_SPAN_NS
                ):
                    span.append(run[position + len(span)])
                position += len(span)
                yield span

    def check_schema(self) -> None:
        """SourceError (not transient) unless the measurement, the fields and the group tags exist."""
        if self._schema_checked:
            return
        if self.upstream is not None:
            self._check_upstream_schema(self.upstream)
            self._schema_checked = True
            return
        spec = self.job.buffer
        schema = self.source.schema(spec.database, spec.retention_policy, spec.measurement)
        where = f"database {spec.database!r}" + (
            f", retention policy {spec.retention_policy!r}" if spec.retention_policy else ""
        )
        if not schema.exists:
            known = _listed(schema.measurements)
            raise SourceError(
                f"job {self.job.name}: measurement {spec.measurement!r} does not exist in {where} "
                f"(measurements: {known})",
                transient=False,
            )
        missing = [name for name in self.job.fields if name not in schema.fields]
        if missing:
            raise SourceError(
                f"job {self.job.name}: field(s) {', '.join(map(repr, missing))} do not exist in measurement "
                f"{spec.measurement!r} of {where} (fields: {_listed(schema.fields)})",
                transient=False,
            )
        tags = [name for name in (*(self.job.group_by or ()), *spec.where) if name not in schema.tags]
        if tags:
            raise SourceError(
                f"job {self.job.name}: tag(s) {', '.join(map(repr, dict.fromkeys(tags)))} of group_by/where "
                f"do not exist in measurement {spec.measurement!r} of {where} (tags: {_listed(schema.tags)})",
                transient=False,
            )
        self._schema_checked = True

    def _check_upstream_schema(self, up: Upstream) -> None:
        """A measurement the upstream has not written yet is no error (its windows were empty);
        a group tag must exist when the upstream writes every tag (no group_by of its own)."""
        schema = self.source.schema(up.database, up.retention_policy, up.measurement)
        if not schema.exists or up.job.group_by is not None:
            return
        wanted = (*(self.job.group_by or ()), *self.job.source.where)
        tags = [name for name in wanted if name not in schema.tags]
        if tags:
            raise SourceError(
                f"job {self.job.name}: tag(s) {', '.join(map(repr, dict.fromkeys(tags)))} of group_by/where "
                f"do not exist in measurement {up.measurement!r} written by job {up.job.name} "
                f"(tags: {_listed(schema.tags)})",
                transient=False,
            )

    def compute(self, span: Sequence[Window]) -> list[WindowResult]:
        """Roll up (or merge) one span of contiguous windows without writing anything."""
        if self.upstream is not None:
            return self._merge(self.upstream, span)
        try:
            return self._compute(span, finish_early=True)
        except SeriesOrderError as exc:
            log.warning(
                "%s; reading the span again, keeping every group's values to the end",
                exc,
                extra={"job": self.job.name, "window": str(span[0]), "event": "series_order_broken"},
            )
        return self._compute(span, finish_early=False)

    def _merge(self, upstream: Upstream, span: Sequence[Window]) -> list[WindowResult]:
        merge = Merge(upstream.merge, span)
        try:
            for batch in self.source.read(self.query(span)):
                merge.feed(batch)
                if self.on_points is not None:
                    self.on_points(batch.rows)
        except MissingPartError as exc:
            raise self._missing(exc) from exc
        results = merge.finish()
        self._groups_seen = max(self._groups_seen, merge.group_count)
        return results

    def _compute(self, span: Sequence[Window], finish_early: bool) -> list[WindowResult]:
        rollup = Rollup(self.job.rollup, span, finish_early=finish_early)
        batches = self.source.read(self.query(span))
        try:
            for batch in batches:
                rollup.feed(batch)
                if self.on_points is not None:
                    self.on_points(batch.rows)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # stop the read now, not when the error is gone
                close()
        results = rollup.finish()
        self._groups_seen = max(self._groups_seen, rollup.group_count)
        if rollup.spilled_bytes:
            log.info(
                "percentile values did not fit in values_memory (%s): %s went through a temporary "
                "file (%d of %d groups were finished before the end of the read)",
                self.job.values_memory.human_readable(),
                ByteSize(rollup.spilled_bytes).human_readable(),
                rollup.groups_finished_early,
                rollup.group_count,
                extra={"job": self.job.name, "window": str(span[0]), "event": "values_spilled"},
            )
        return results

    def write(self, rows: Sequence[OutputRow]) -> None:
        for sink in self.sinks:
            sink.write(rows)

    def run_span(self, span: Sequence[Window]) -> list[WindowOutcome]:
        """Compute and write one span; every window of it succeeds or fails together."""
        started = time.monotonic()
        results: list[WindowResult] = []
        try:
            self.check_schema()
            results = self.compute(span)
            rows = [row for result in results for row in result.rows]  # none of a failed window
            _check_finite(self.job, rows)
            if rows:
                self.write(rows)
        except RollupError as exc:
            elapsed = (time.monotonic() - started) / len(span)
            points = {result.window: result.points for result in results}
            cause: Cause = (
                "source" if isinstance(exc, SourceError) else "sink" if isinstance(exc, SinkError) else "job"
            )
            return [
                WindowOutcome(w, points.get(w, 0), 0, elapsed, str(exc), bool(exc.transient), cause)
                for w in span
            ]
        elapsed = (time.monotonic() - started) / len(span)
        return [
            WindowOutcome(r.window, r.points, len(r.rows), elapsed)
            if not r.failures
            else WindowOutcome(
                r.window, r.points, 0, elapsed, plugin_error(self.job, r.failures), False, "job"
            )
            for r in results
        ]

    def close(self) -> None:
        """Close the source and every sink."""
        for sink in self.sinks:
            sink.close()
        self.source.close()

    def _missing(self, exc: MissingPartError) -> RollupError:
        up = self.upstream
        assert up is not None
        return RollupError(
            f"job {self.job.name}: the row job {up.job.name} wrote for {exc.tags or '(all series)'} and "
            f"its window starting {up.job.local_time(exc.time)} has {exc.beside} but no {exc.column}: "
            f"it was written before job {up.job.name} was asked for it; re-run that window "
            f"(rollup backfill {up.job.name} --force)",
            transient=False,
        )


def plugin_error(job: JobSpec, failures: Sequence[PluginFailure]) -> str:
    """What failed a window: the first plug-in failure, naming the plug-in, the job, the field,
    the window and the group."""
    first = failures[0]
    group = ",".join(f"{k}={v}" for k, v in sorted(first.group.items())) or "(all series)"
    more = f" (and {len(failures) - 1} more failure(s) in this window)" if len(failures) > 1 else ""
    return (
        f"job {job.name}: plug-in aggregate {first.plugin!r} failed on field {first.field!r} for the window "
        f"starting {job.local_time(first.window.start)}, group {group}: {first.reason}{more}"
    )


def _check_finite(job: JobSpec, rows: Sequence[OutputRow]) -> None:
    """RollupError naming the field when an aggregate overflowed (e.g. a huge ``scale``)."""
    for row in rows:
        for name, value in row.values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise RollupError(
                    f"job {job.name}: {name} of group {row.tags or '(all series)'} is {value} for the "
                    f"window starting {job.local_time(row.window.start)}: the aggregate overflowed "
                    "(check the field's scale and unit)",
                    transient=False,
                )


def _listed(names: Iterable[str], limit: int = 20) -> str:
    ordered = sorted(names)
    if not ordered:
        return "none"
    shown = ", ".join(ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")
