"""The clock a pass plans and records with: the real time, or one that starts at a given instant.

``--now`` / ``ROLLUP_NOW`` set the start: the clock then runs from there at the real pace, so
leases, retry backoffs and recorded times stay consistent within the process (tests, and
operators asking "what would a pass at this time do").
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, start: int | None = None):
        self._offset = 0 if start is None else start - time.time_ns()

    @property
    def shifted(self) -> bool:
        return self._offset != 0

    def now(self) -> int:
        """Epoch nanoseconds."""
        return time.time_ns() + self._offset
