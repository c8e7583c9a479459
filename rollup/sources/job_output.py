"""Another job's output as a source: the rows it wrote to an InfluxDB sink, read back with the
same InfluxQL reader as raw points (:class:`~rollup.sources.influxdb.InfluxQLSource`).

Each row is one *part* for the core's merge (:mod:`rollup.core.merge`): its series is the
upstream group, its time the start of its upstream window, whichever stamp the upstream writes.
A query for ``[start, end)`` returns the upstream windows that start in it; rows stamped at the
window end are read from ``(start, end]`` and moved back to their window's start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from rollup.core.batch import Batch
from rollup.core.spec import Stamp
from rollup.core.windows import WindowGrid
from rollup.sources.base import Source, SourceQuery, SourceSchema


class JobOutputSource:
    """Reads the rows of a job stamped ``stamp`` on windows of ``grid`` through ``reader``."""

    def __init__(self, reader: Source, grid: WindowGrid, stamp: Stamp):
        self.reader = reader
        self.grid = grid
        self.stamp = stamp

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        if self.stamp == "start":
            yield from self.reader.read(query)
            return
        for batch in self.reader.read(self._by_end(query)):
            yield replace(batch, time=self._starts(np.asarray(batch.time, dtype=np.int64)))

    def schema(self, database: str, retention_policy: str | None, measurement: str) -> SourceSchema:
        return self.reader.schema(database, retention_policy, measurement)

    def first_time(self, query: SourceQuery) -> int | None:
        if self.stamp == "start":
            return self.reader.first_time(query)
        found = self.reader.first_time(self._by_end(query))
        return None if found is None else int(self._starts(np.asarray([found], dtype=np.int64))[0])

    def check(self) -> None:
        self.reader.check()

    def close(self) -> None:
        self.reader.close()

    @staticmethod
    def _by_end(query: SourceQuery) -> SourceQuery:
        """The rows of windows starting in ``[start, end)``, stamped at their end: ``(start, end]``."""
        return replace(query, start=query.start + 1, end=query.end + 1)

    def _starts(self, ends: np.ndarray) -> np.ndarray:
        """The start of the window ending at each of ``ends``."""
        if not len(ends):
            return ends
        bounds = self.grid.boundaries(int(ends.min()) - 1, int(ends.max()))
        position = np.searchsorted(bounds, ends, side="left")
        starts: np.ndarray = bounds[np.maximum(position - 1, 0)]
        return starts
