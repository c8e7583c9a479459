"""Instants as operators type them on the command line."""

from __future__ import annotations

import datetime as dt
import re

from rollup.core.durations import parse_duration
from rollup.core.windows import format_instant, load_zone, to_ns

_RELATIVE = re.compile(r"now(?:\s*-\s*(\S+))?")

EARLIEST = -(2**63) + 1
"""The instants an epoch-nanosecond int64 (InfluxDB, the ledger) can hold: 1677-09-21 to 2262-04-11."""
LATEST = 2**63 - 1
_EARLIEST_TEXT = "1677-09-21T00:12:43Z"
_LATEST_TEXT = "2262-04-11T23:47:16Z"


def parse_instant(text: str, timezone: str, now_ns: int) -> int:
    """``2026-11-01`` (local midnight), ``2026-11-01T06:00`` (local), ``2026-11-01T06:00Z`` /
    ``+01:00`` (absolute), ``now``, ``now-2d``, ``today``, ``yesterday`` → epoch ns.

    ValueError for anything else, and for instants outside what epoch nanoseconds in an int64 can
    hold (the ledger and InfluxDB store them so)."""
    value = text.strip()
    zone = load_zone(timezone)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        back = relative.group(1)
        return _in_range(now_ns - (0 if back is None else _fixed(back, text)), text)
    if value in ("today", "yesterday"):
        now = dt.datetime.fromtimestamp(now_ns / 1e9, zone)
        day = now.date() - dt.timedelta(days=1 if value == "yesterday" else 0)
        return _in_range(to_ns(dt.datetime.combine(day, dt.time(), tzinfo=zone)), text)
    try:
        moment = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: expected an ISO date or time (2026-11-01, 2026-11-01T06:00, "
            "2026-11-01T06:00Z), now, now-2d, today or yesterday"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return _in_range(to_ns(moment), text)
    except OverflowError:
        raise _out_of_range(text) from None


def format_utc(ns: int) -> str:
    return format_instant(ns).replace("+00:00", "Z")


def _fixed(amount: str, text: str) -> int:
    duration = parse_duration(amount)
    if duration.is_calendar:
        raise ValueError(f"invalid time {text!r}: a calendar month has no fixed length here")
    return duration.nanos


def _in_range(ns: int, text: str) -> int:
    if not EARLIEST <= ns <= LATEST:
        raise _out_of_range(text)
    return ns


def _out_of_range(text: str) -> ValueError:
    return ValueError(
        f"time {text!r} is out of range: rollup handles instants from {_EARLIEST_TEXT} to "
        f"{_LATEST_TEXT} (epoch nanoseconds in 64 bits, as InfluxDB stores them)"
    )
