"""Duration strings as operators write them: ``90s``, ``15m``, ``3h``, ``1d``, ``1w``, ``1h30m``, ``1mo``.

Fixed units (``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``) become nanoseconds; ``mo`` (calendar
months) is kept apart because a month has no fixed length. ``d`` and ``w`` are 24 h and 7 × 24 h when
used as a plain duration (delay, lookback, max_gap); as a *window size* they mean calendar days in
the job's time zone (see :mod:`rollup.core.windows`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NS_PER_SECOND = 1_000_000_000

_UNIT_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86400 * NS_PER_SECOND,
    "w": 7 * 86400 * NS_PER_SECOND,
}
_PART = re.compile(r"(\d+)(mo|ns|us|µs|ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:mo|ns|us|µs|ms|s|m|h|d|w))+")


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed duration: calendar ``months`` plus a fixed number of nanoseconds."""

    months: int
    nanos: int
    text: str

    @property
    def is_calendar(self) -> bool:
        return self.months != 0

    @property
    def seconds(self) -> float:
        if self.months:
            raise ValueError(f"{self.text!r} is a calendar duration and has no fixed length in seconds")
        return self.nanos / NS_PER_SECOND

    def __str__(self) -> str:
        return self.text


def parse_duration(text: str) -> Duration:
    """Parse ``text`` or raise ``ValueError`` saying what is accepted."""
    cleaned = text.strip().replace(" ", "")
    if cleaned == "0":
        return Duration(0, 0, "0s")
    if not cleaned or not _WHOLE.fullmatch(cleaned):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit such as 90s, 15m, 3h, 1d, 1w, "
            "1mo or a combination like 1h30m"
        )
    months = 0
    nanos = 0
    for number, unit in _PART.findall(cleaned):
        if unit == "mo":
            months += int(number)
        else:
            nanos += int(number) * _UNIT_NS[unit]
    if months and nanos:
        raise ValueError(f"invalid duration {text!r}: months cannot be combined with fixed units")
    return Duration(months, nanos, cleaned)


def parse_fixed_duration(text: str) -> int:
    """Parse a duration that must have a fixed length; return nanoseconds."""
    duration = parse_duration(text)
    if duration.is_calendar:
        raise ValueError(f"invalid duration {text!r}: a calendar month has no fixed length here")
    return duration.nanos
