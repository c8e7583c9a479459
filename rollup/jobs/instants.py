"""Instants as operators type them on the command line."""

from __future__ import annotations

import datetime as dt
import re

from rollup.core.durations import parse_fixed_duration
from rollup.core.windows import load_zone, to_ns

_RELATIVE = re.compile(r"now(?:\s*-\s*(\S+))?")


def parse_instant(text: str, timezone: str, now_ns: int) -> int:
    """``2026-11-01`` (local midnight), ``2026-11-01T06:00`` (local), ``2026-11-01T06:00Z`` /
    ``+01:00`` (absolute), ``now``, ``now-2d``, ``today``, ``yesterday`` → epoch ns.
    """
    value = text.strip()
    zone = load_zone(timezone)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        back = relative.group(1)
        return now_ns - (parse_fixed_duration(back) if back else 0)
    if value in ("today", "yesterday"):
        now = dt.datetime.fromtimestamp(now_ns / 1e9, zone)
        day = now.date() - dt.timedelta(days=1 if value == "yesterday" else 0)
        return to_ns(dt.datetime.combine(day, dt.time(), tzinfo=zone))
    try:
        moment = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: expected an ISO date or time (2026-11-01, 2026-11-01T06:00, "
            "2026-11-01T06:00Z), now, now-2d, today or yesterday"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return to_ns(moment)
