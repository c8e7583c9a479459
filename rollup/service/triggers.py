"""When a job's pass fires: as each of its windows closes (``end + delay``), and at least every
``sweep``.

The closing instants come from the job's ``WindowGrid``, so they follow its calendar: a daily job
in Europe/Zurich fires ``delay`` after local midnight, 23 or 25 hours apart around DST changes, and
a job of 2-second windows fires every 2 seconds. The sweep catches up whatever a closing trigger
could not finish (failed windows after their backoff, windows missed while the service was down,
passes cut at ``max_windows_per_pass``).
"""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rollup.core.windows import WindowGrid, to_ns

_NS_PER_MICROSECOND = 1000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def next_close(grid: WindowGrid, delay_ns: int, after_ns: int) -> int:
    """The first instant strictly after ``after_ns`` at which a window closes (its end + delay)."""
    window = grid.window_at(after_ns - delay_ns)  # window.end > after - delay, the first such end
    return window.end + delay_ns


def to_datetime(ns: int) -> dt.datetime:
    """Epoch ns as an aware UTC datetime, rounded up to the microsecond (never fires early)."""
    micros = -(-ns // _NS_PER_MICROSECOND)
    return _EPOCH + dt.timedelta(microseconds=micros)


class WindowCloseTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """Fires whenever a window of ``grid`` closes."""

    def __init__(self, grid: WindowGrid, delay_ns: int):
        self.grid = grid
        self.delay_ns = delay_ns

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        # The first fire time is at or after now; each later one strictly after the previous.
        after = to_ns(now) - 1 if previous_fire_time is None else to_ns(previous_fire_time)
        return to_datetime(next_close(self.grid, self.delay_ns, after))

    def __str__(self) -> str:
        return (
            f"window close ({self.grid.every.text} windows, {self.grid.timezone}, +{self.delay_ns / 1e9:g}s)"
        )

    def __repr__(self) -> str:
        return f"<WindowCloseTrigger {self.grid!r} delay={self.delay_ns}ns>"


def pass_trigger(grid: WindowGrid, delay_ns: int, sweep_seconds: float) -> OrTrigger:
    """A job's trigger: each window close, and at most ``sweep_seconds`` between two passes."""
    sweep = IntervalTrigger(seconds=sweep_seconds, timezone=dt.UTC)
    return OrTrigger([WindowCloseTrigger(grid, delay_ns), sweep])
