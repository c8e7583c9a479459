"""Run a job over windows: read the source, roll up, write every sink.

Contiguous windows are read in *spans* (one query per span) so a backfill of short windows does not
pay one round trip per window. A span's size adapts to the number of groups seen so far, keeping
the accumulators near ``slot_budget`` (group × window) entries whatever the window length: memory
follows the number of groups, never the number of points. A span succeeds or fails as a whole,
and a window is only reported written once every sink has accepted its rows.

Percentiles keep their values only until a group's last series has been read, as the source's
declared order tells; should a source break its declared order, the span is read again without
relying on it (exact either way, see :mod:`rollup.core.completion`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import ByteSize

from rollup.core.completion import SeriesOrderError
from rollup.core.pipeline import OutputRow, Rollup, WindowResult
from rollup.core.windows import DAY_NS, Window
from rollup.errors import RollupError
from rollup.jobs.spec import JobSpec
from rollup.sinks.base import Sink
from rollup.sources.base import Source, SourceQuery

log = logging.getLogger(__name__)

DEFAULT_SLOT_BUDGET = 200_000
MAX_SPAN_NS = DAY_NS


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    window: Window
    points: int
    rows: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
    ):
        self.job = job
        self.source = source
        self.sinks = list(sinks)
        self.slot_budget = slot_budget
        self._groups_seen = 0

    def query(self, span: Sequence[Window]) -> SourceQuery:
        spec = self.job.source
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
        """Spans to read, sized from the groups seen so far (re-evaluated after each span)."""
        for run in contiguous_runs(windows):
            position = 0
            while position < len(run):
                per_span = max(1, self.slot_budget // max(self._groups_seen, 1))
                span = [run[position]]
                while (
                    len(span) < per_span
                    and position + len(span) < len(run)
                    and run[position + len(span)].end - span[0].start <= MAX_SPAN_NS
                ):
                    span.append(run[position + len(span)])
                position += len(span)
                yield span

    def compute(self, span: Sequence[Window]) -> list[WindowResult]:
        """Roll up one span of contiguous windows without writing anything."""
        try:
            return self._compute(span, finish_early=True)
        except SeriesOrderError as exc:
            log.warning(
                "%s; reading the span again, keeping every group's values to the end",
                exc,
                extra={"job": self.job.name, "window": str(span[0]), "event": "series_order_broken"},
            )
        return self._compute(span, finish_early=False)

    def _compute(self, span: Sequence[Window], finish_early: bool) -> list[WindowResult]:
        rollup = Rollup(self.job.rollup, span, finish_early=finish_early)
        batches = self.source.read(self.query(span))
        try:
            for batch in batches:
                rollup.feed(batch)
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
        try:
            results = self.compute(span)
            rows = [row for result in results for row in result.rows]
            if rows:
                self.write(rows)
        except RollupError as exc:
            elapsed = (time.monotonic() - started) / len(span)
            return [WindowOutcome(w, 0, 0, elapsed, error=str(exc)) for w in span]
        elapsed = (time.monotonic() - started) / len(span)
        outcomes = []
        for result in results:
            if result.points == 0:
                log.warning(
                    "source returned no points for the window",
                    extra={"job": self.job.name, "window": str(result.window), "event": "empty_window"},
                )
            outcomes.append(WindowOutcome(result.window, result.points, len(result.rows), elapsed))
        return outcomes

    def close(self) -> None:
        """Close the source and every sink."""
        for sink in self.sinks:
            sink.close()
        self.source.close()

    def run(self, windows: Sequence[Window]) -> Iterator[WindowOutcome]:
        for span in self.spans(windows):
            yield from self.run_span(span)
