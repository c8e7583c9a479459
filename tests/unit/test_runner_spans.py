"""How the runner cuts windows into spans, where that changes the numbers."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

from rollup.core.batch import Batch
from rollup.jobs.loader import load_job
from rollup.jobs.runner import JobRunner
from rollup.sources.base import SourceQuery
from tests.unit.builders import T0, Row, hours, make_batch


class _Points:
    """A source holding rows in memory, answering each query with the rows in its time range."""

    def __init__(self, rows: list[Row]):
        self.rows = rows

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        yield make_batch([row for row in self.rows if query.start <= T0 + row[1] * 10**9 < query.end])

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None


def _hourly_job(tmp_path: Path, lookback: str) -> JobRunner:
    path = tmp_path / "hourly.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [source]
            profile = "buffer"
            database = "telegraf"
            measurement = "m"

            [window]
            every = "1h"
            lookback = "{lookback}"

            [fields.v]
            aggregates = ["mean", "count"]

            [output]
            measurement = "m_1h"
            sinks = ["out"]
            """
        )
    )
    rows: list[Row] = [({"host": "a"}, seconds, {"v": seconds}) for seconds in (0, 600, 4200, 4800)]
    return JobRunner(load_job(path), _Points(rows))


def _counts(runner: JobRunner) -> list[int]:
    return [
        int(row.values["v_count"])
        for span in runner.spans(hours(0, 2))
        for result in runner.compute(span)
        for row in result.rows
    ]


def test_without_lookback_no_window_gets_a_rate_from_the_window_before(tmp_path: Path) -> None:
    """lookback = "0s": each window's first point gives no rate, however many windows a run has."""
    runner = _hourly_job(tmp_path, "0s")
    assert [len(span) for span in runner.spans(hours(0, 2))] == [1, 1]
    assert _counts(runner) == [1, 1]


def test_with_lookback_the_interval_across_the_window_edge_counts(tmp_path: Path) -> None:
    assert _counts(_hourly_job(tmp_path, "1h")) == [1, 2]
