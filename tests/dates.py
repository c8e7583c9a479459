"""Days for the tests that write windows, taken from the clock the tests run under.

``rollup backfill``, ``run`` and ``serve`` write windows, and they refuse a ``--now`` later than
the real clock: a simulated now must never mark done a window that has not closed. The suite must
pass on any date, and with the clock shifted (``scripts/test.sh --clock-shift +400d`` or
``-400d``), so a test that writes windows never names a calendar date: it takes a day from here
(a Monday at least some days in the past, a 23-hour day, two days across a month's end) and
computes from it its raw points, its ``--start``/``--end``/``--now`` and what it expects to read
back. Tests that only plan, preview or read (``status``, ``--dry-run``, unit tests with an
explicit now) may keep fixed dates.

Every day is found again each time a test module is imported; it never moves within a run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

DAY = 86400
SEARCH_DAYS = 800
"""How far back a day is looked for: each kind of day here comes round within a year."""


def today(zone: dt.tzinfo = dt.UTC) -> dt.date:
    """The date in ``zone`` by the clock the tests run under."""
    return dt.datetime.now(zone).date()


def midnight(day: dt.date, zone: dt.tzinfo = dt.UTC) -> dt.datetime:
    """The local midnight that starts ``day`` in ``zone``."""
    return dt.datetime.combine(day, dt.time(), zone)


def seconds(day: dt.date, zone: dt.tzinfo = dt.UTC) -> int:
    """Epoch seconds of the local midnight that starts ``day`` in ``zone``."""
    return int(midnight(day, zone).timestamp())


def length(day: dt.date, zone: dt.tzinfo = dt.UTC) -> int:
    """How many seconds the local ``day`` lasts in ``zone`` (82,800 when the clocks go forward)."""
    return seconds(day + dt.timedelta(days=1), zone) - seconds(day, zone)


def latest(days_ago: int, zone: dt.tzinfo, accept: Callable[[dt.date], bool], what: str) -> dt.date:
    """The latest date at least ``days_ago`` days before today (in ``zone``) that ``accept`` takes."""
    day = today(zone) - dt.timedelta(days=days_ago)
    for _ in range(SEARCH_DAYS):
        if accept(day):
            return day
        day -= dt.timedelta(days=1)
    raise LookupError(f"no {what} in the {SEARCH_DAYS} days before {today(zone)} - {days_ago} days")


def steady(first: dt.date, days: int, zone: dt.tzinfo) -> bool:
    """Whether the ``days`` local days from ``first`` on all last 24 hours (no clock change)."""
    return all(length(first + dt.timedelta(days=n), zone) == DAY for n in range(days))


def monday(days_ago: int, zone: dt.tzinfo = dt.UTC, *, days: int = 1, one_month: bool = False) -> dt.date:
    """The latest Monday at least ``days_ago`` days before today that starts ``days`` local days
    of 24 hours in ``zone``, all of them in one month with ``one_month``."""

    def accept(day: dt.date) -> bool:
        last = day + dt.timedelta(days=days - 1)
        return day.weekday() == 0 and steady(day, days, zone) and (not one_month or last.month == day.month)

    return latest(days_ago, zone, accept, "Monday")


def month_start(days_ago: int, zone: dt.tzinfo = dt.UTC) -> dt.date:
    """The latest first of a month at least ``days_ago`` days before today that, with the day
    before it, makes two local days of 24 hours in ``zone``: a month's end between them."""

    def accept(day: dt.date) -> bool:
        return day.day == 1 and steady(day - dt.timedelta(days=1), 2, zone)

    return latest(days_ago, zone, accept, "first of a month")


def spring_forward(days_ago: int, zone: dt.tzinfo) -> dt.date:
    """The latest local day of 23 hours (the clocks go forward) at least ``days_ago`` days ago."""
    return latest(days_ago, zone, lambda day: length(day, zone) == DAY - 3600, "23-hour day")


def next_month(first: dt.date) -> dt.date:
    """The first day of the month after the one of ``first``."""
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_with_clock_change(days_ago: int, zone: dt.tzinfo) -> dt.date:
    """The first day of the latest month that has a day of 23 or 25 hours in ``zone`` and ends at
    least ``days_ago`` days before today (its windows are closed, its days all in the past)."""

    def accept(day: dt.date) -> bool:
        if day.day != 1 or next_month(day) > today(zone) - dt.timedelta(days=days_ago):
            return False
        return not steady(day, (next_month(day) - day).days, zone)

    return latest(days_ago, zone, accept, "month with a clock change")


def range_options(first: dt.date, days: int = 1) -> tuple[str, str, str, str]:
    """``--start``/``--end`` of the ``days`` local days from ``first`` (in the job's zone)."""
    return ("--start", first.isoformat(), "--end", (first + dt.timedelta(days=days)).isoformat())


def utc_minute(seconds: int) -> str:
    """An instant to the minute in UTC, as ``--now`` takes it: ``2026-11-03T00:20Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def local_stamp(seconds: int, zone: dt.tzinfo = dt.UTC) -> str:
    """An instant as rollup writes it in a job's zone: ``2026-11-01T00:00:00+01:00``."""
    return dt.datetime.fromtimestamp(seconds, zone).isoformat()
