"""A job's output as a source (rollup.sources.job_output): each row comes stamped at the start of
its upstream window, whichever stamp the upstream writes, and a query for [start, end) returns the
upstream windows that start in it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from rollup.core.batch import Batch, FieldColumn
from rollup.core.windows import WindowGrid, to_ns
from rollup.sources.base import SourceQuery, SourceSchema
from rollup.sources.job_output import JobOutputSource

ZURICH = "Europe/Zurich"
DAYS = WindowGrid("1d", ZURICH)


def local(text: str) -> int:
    return to_ns(dt.datetime.fromisoformat(text))


@dataclass
class Stored:
    """Rows as an InfluxDB would return them for a time range: those with start <= time < end."""

    times: list[int]
    queries: list[SourceQuery] = field(default_factory=list)

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        self.queries.append(query)
        inside = [t for t in self.times if query.start <= t < query.end]
        values = np.arange(len(inside), dtype=np.int64)
        yield Batch(
            [(("host", "a"),)],
            np.array([len(inside)]),
            np.array(inside, dtype=np.int64),
            {"v_count": FieldColumn(values)},
        )

    def first_time(self, query: SourceQuery) -> int | None:
        self.queries.append(query)
        inside = [t for t in self.times if query.start <= t < query.end]
        return min(inside) if inside else None

    def schema(self, database: str, retention_policy: str | None, measurement: str) -> SourceSchema:
        return SourceSchema(True)

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def month_query() -> SourceQuery:
    return SourceQuery(
        "rollups", "daily", ("v_count",), local("2026-10-01T00:00+02:00"), local("2026-11-01T00:00+01:00")
    )


def test_rows_stamped_at_the_window_end_come_back_at_the_window_start() -> None:
    """October 2026 in Zurich, days stamped at their end: 31 rows from October 2nd 00:00 to
    November 1st 00:00 (the 25-hour day among them), read from (start, end]."""
    ends = [int(b) for b in DAYS.boundaries(local("2026-09-30T00:00+02:00"), local("2026-11-03T00:00+01:00"))]
    stored = Stored(ends)
    (batch,) = JobOutputSource(stored, DAYS, "end").read(month_query())
    starts = [w.start for w in DAYS.windows(local("2026-10-01T00:00+02:00"), local("2026-11-01T00:00+01:00"))]
    assert batch.time.tolist() == starts
    assert len(starts) == 31
    (sent,) = stored.queries
    assert (sent.start, sent.end) == (month_query().start + 1, month_query().end + 1)
    assert JobOutputSource(stored, DAYS, "end").first_time(month_query()) == starts[0]


def test_rows_stamped_at_the_window_start_are_read_as_they_are() -> None:
    starts = [
        int(b) for b in DAYS.boundaries(local("2026-09-30T00:00+02:00"), local("2026-11-03T00:00+01:00"))
    ]
    stored = Stored(starts)
    (batch,) = JobOutputSource(stored, DAYS, "start").read(month_query())
    assert len(batch.time) == 31
    assert batch.time[0] == month_query().start
    (sent,) = stored.queries
    assert sent == month_query()
