"""Half-open time windows ``[start, end)`` aligned to the calendar of an IANA time zone.

One enumerator serves live runs, catch-up, backfill and preview alike, so they all agree on where
a window starts. Instants are integer nanoseconds since the Unix epoch (UTC).

How a window size is aligned:

* whole months (``1mo``, ``3mo``): the first day of the month at local midnight (+ offset),
  counted from January so ``3mo`` gives calendar quarters;
* whole weeks (``1w``, ``7d``, ``14d``): local midnight of a Monday (+ offset), ISO weeks;
* other whole days (``1d``, ``2d``): local midnight (+ offset), counted from 1970-01-01; a day across a
  DST change is 23 or 25 hours long;
* sizes that divide a day (``3h``, ``15m``, ``5s``): the local wall-clock times
  ``00:00 + offset + k × size``. Every instant that shows such a time is a boundary, so across a DST
  change a ``3h`` window may last 2 or 4 hours and ``1h`` windows stay 1 hour long (the repeated hour
  gets its own window; the skipped hour has none);
* any other size (``7m``, ``5h``): fixed length from the Unix epoch (+ offset); the time zone plays no
  part because such windows cannot line up with days.

Nonexistent local midnights (a DST jump at 00:00) move forward to the first instant that exists.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from rollup.core.durations import NS_PER_SECOND, Duration, parse_duration

DAY_NS = 86400 * NS_PER_SECOND
WEEK_NS = 7 * DAY_NS
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MONDAY_ORDINAL = dt.date(1970, 1, 5).toordinal()
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SAMPLE_SECONDS = 900


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A half-open interval ``[start, end)`` in epoch nanoseconds, keyed by its start."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"[{format_instant(self.start)}, {format_instant(self.end)})"


def format_instant(ns: int, zone: dt.tzinfo = dt.UTC) -> str:
    """ISO 8601 with offset, seconds precision unless the instant has a fraction."""
    seconds, remainder = divmod(ns, NS_PER_SECOND)
    moment = (_EPOCH + dt.timedelta(seconds=seconds)).astimezone(zone)
    if remainder:
        moment = moment + dt.timedelta(microseconds=remainder // 1000)
        return moment.isoformat(timespec="microseconds")
    return moment.isoformat(timespec="seconds")


def to_ns(moment: dt.datetime) -> int:
    """Epoch nanoseconds of an aware datetime (exact to the microsecond)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as UTC or Europe/Zurich"
        ) from exc


class WindowGrid:
    """The windows of one size, offset and time zone."""

    def __init__(self, every: str | Duration, timezone: str = "UTC", offset: str | Duration = "0s"):
        self.every = every if isinstance(every, Duration) else parse_duration(every)
        off = offset if isinstance(offset, Duration) else parse_duration(offset)
        if off.is_calendar:
            raise ValueError(f"invalid offset {off.text!r}: an offset must have a fixed length")
        self.offset_ns = off.nanos
        self.zone = load_zone(timezone)
        self.timezone = timezone
        size = self.every.nanos
        if not self.every.is_calendar and size <= 0:
            raise ValueError(f"invalid window {self.every.text!r}: a window must be longer than zero")
        if self.every.is_calendar:
            self.kind = "months"
        elif size % WEEK_NS == 0:
            self.kind = "weeks"
        elif size % DAY_NS == 0:
            self.kind = "days"
        elif DAY_NS % size == 0:
            self.kind = "wallclock"
        else:
            self.kind = "fixed"
        limit = DAY_NS if self.kind in ("months", "weeks", "days") else size
        if self.offset_ns < 0 or self.offset_ns >= limit:
            what = (
                "a day" if limit == DAY_NS and self.kind != "wallclock" else f"the window ({self.every.text})"
            )
            raise ValueError(f"invalid offset {off.text!r}: it must be at least 0 and shorter than {what}")

    def __repr__(self) -> str:
        return f"WindowGrid({self.every.text!r}, {self.timezone!r}, offset={self.offset_ns}ns)"

    # -- public API -------------------------------------------------------------------------

    def boundaries(self, start: int, end: int) -> np.ndarray:
        """Boundaries ``b0 <= start < b1 < … < bk <= …`` with ``bk >= end``.

        They delimit every window overlapping ``[start, end)``.
        """
        if end <= start:
            end = start + 1
        if self.kind == "fixed" or (self.kind == "wallclock" and self._zone_is_fixed):
            return self._fixed_boundaries(start, end)
        candidates = self._calendar_candidates(start, end)
        first = int(np.searchsorted(candidates, start, side="right")) - 1
        last = int(np.searchsorted(candidates, end, side="left"))
        if first < 0 or last >= len(candidates):  # pragma: no cover - padding guarantees coverage
            raise AssertionError(f"window enumeration did not cover [{start}, {end})")
        return candidates[first : last + 1]

    def windows(self, start: int, end: int) -> list[Window]:
        """Every window overlapping ``[start, end)``, oldest first."""
        bounds = self.boundaries(start, end)
        return [Window(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def window_at(self, instant: int) -> Window:
        """The window that contains ``instant``."""
        bounds = self.boundaries(instant, instant + 1)
        return Window(int(bounds[0]), int(bounds[1]))

    def nominal_ns(self) -> int:
        """The nominal length (a month counts as 31 days) for sizing look-ahead and caps."""
        return self.every.months * 31 * DAY_NS if self.every.is_calendar else self.every.nanos

    # -- helpers ----------------------------------------------------------------------------

    @cached_property
    def _zone_is_fixed(self) -> bool:
        key = self.zone.key
        return key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Zulu")

    def _fixed_boundaries(self, start: int, end: int) -> np.ndarray:
        size = self.every.nanos
        first = (start - self.offset_ns) // size
        last = -((self.offset_ns - end) // size)  # ceil((end - offset) / size)
        steps = np.arange(first, last + 1, dtype=np.int64)
        return steps * size + self.offset_ns

    def _local_date(self, instant: int) -> dt.date:
        return (_EPOCH + dt.timedelta(microseconds=instant // 1000)).astimezone(self.zone).date()

    def _instant(self, wall: dt.datetime, fold: int = 0) -> int:
        return to_ns(wall.replace(tzinfo=self.zone, fold=fold))

    def _calendar_candidates(self, start: int, end: int) -> np.ndarray:
        first_day = self._local_date(start)
        last_day = self._local_date(end)
        offset = dt.timedelta(microseconds=self.offset_ns // 1000)
        if self.kind == "months":
            return self._month_starts(first_day, last_day, offset)
        if self.kind in ("weeks", "days"):
            days = self.every.nanos // DAY_NS
            anchor = _MONDAY_ORDINAL if self.kind == "weeks" else _EPOCH_ORDINAL
            lo = first_day.toordinal() - days - 1
            lo -= (lo - anchor) % days
            hi = last_day.toordinal() + days + 1
            stamps = [
                self._instant(dt.datetime.fromordinal(ordinal) + offset)
                for ordinal in range(lo, hi + 1, days)
            ]
            return np.unique(np.asarray(stamps, dtype=np.int64))
        return self._wallclock_candidates(first_day, last_day)

    def _month_starts(self, first_day: dt.date, last_day: dt.date, offset: dt.timedelta) -> np.ndarray:
        months = self.every.months
        lo = first_day.year * 12 + first_day.month - 1 - months - 1
        lo -= lo % months
        hi = last_day.year * 12 + last_day.month - 1 + months + 1
        stamps = []
        for index in range(lo, hi + 1, months):
            year, month0 = divmod(index, 12)
            stamps.append(self._instant(dt.datetime(year, month0 + 1, 1) + offset))
        return np.unique(np.asarray(stamps, dtype=np.int64))

    def _wallclock_candidates(self, first_day: dt.date, last_day: dt.date) -> np.ndarray:
        size = self.every.nanos
        per_day = DAY_NS // size
        wall_offsets = np.arange(per_day, dtype=np.int64) * size + self.offset_ns
        parts: list[np.ndarray] = []
        day = first_day - dt.timedelta(days=1)
        stop = last_day + dt.timedelta(days=1)
        while day <= stop:
            midnight = dt.datetime(day.year, day.month, day.day)
            this_midnight = self._instant(midnight)
            next_midnight = self._instant(midnight + dt.timedelta(days=1))
            if next_midnight - this_midnight == DAY_NS:  # no DST change that day
                parts.append(this_midnight + wall_offsets)
            else:
                parts.append(self._transition_day(midnight, wall_offsets))
            day += dt.timedelta(days=1)
        merged = np.concatenate(parts)
        if np.all(merged[1:] > merged[:-1]):  # the usual case: days in order, nothing twice
            return merged
        return np.unique(merged)

    def _transition_day(self, midnight: dt.datetime, wall_offsets: np.ndarray) -> np.ndarray:
        """Boundaries of a day with a DST change: every instant showing a boundary wall time.

        An instant ``i`` shows the wall time ``w`` (read as if it were UTC) when ``i + offset(i) ==
        w``: for each UTC offset the zone has around that day, ``w − offset`` is such an instant if
        that offset is in effect then.
        """
        walls = to_ns(midnight.replace(tzinfo=dt.UTC)) + wall_offsets
        found: list[np.ndarray] = []
        shows_midnight = False
        for offset, since, until in self._offsets(int(walls[0]) - 2 * DAY_NS, int(walls[-1]) + 2 * DAY_NS):
            instants = walls - offset
            valid = (instants >= since) & (instants < until)
            found.append(instants[valid])
            shows_midnight |= bool(valid[0])
        if wall_offsets[0] == 0 and not shows_midnight:
            # A nonexistent local midnight moves forward, exactly as the start of a day does.
            found.append(np.asarray([self._instant(midnight)], dtype=np.int64))
        return np.unique(np.concatenate(found))

    def _offsets(self, low: int, high: int) -> list[tuple[int, int, int]]:
        """``(offset, since, until)``: the zone's UTC offsets (ns) over ``[low, high)`` and the
        instants each holds for. Found by sampling every 15 minutes and bisecting each change to
        the second (the tz database changes offsets on whole seconds, never twice in 15 minutes)."""

        def offset_at(second: int) -> int:
            shown = (_EPOCH + dt.timedelta(seconds=second)).astimezone(self.zone)
            return (shown.utcoffset() or dt.timedelta()) // dt.timedelta(microseconds=1) * 1000

        first, last = low // NS_PER_SECOND, -(-high // NS_PER_SECOND)
        spans: list[tuple[int, int, int]] = []
        since, current, before = low, offset_at(first), first
        for sample in [*range(first + _SAMPLE_SECONDS, last, _SAMPLE_SECONDS), last]:
            if offset_at(sample) != current:
                lo, hi = before, sample  # offset_at(lo) == current != offset_at(hi)
                while hi - lo > 1:
                    middle = (lo + hi) // 2
                    lo, hi = (middle, hi) if offset_at(middle) == current else (lo, middle)
                spans.append((current, since, hi * NS_PER_SECOND))
                since, current = hi * NS_PER_SECOND, offset_at(hi)
            before = sample
        spans.append((current, since, high))
        return spans
