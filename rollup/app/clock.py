"""The time a command acts at: the real clock, or an instant the operator gave (``--now``).

A given instant only moves *planning*: which windows are closed and where the buffer retention
cuts. Leases, retry backoffs and the times the ledger records always follow the real clock, so a
process that plans at another instant never leaves a lease valid until a date no process will
reach, and a window's recorded times are true.

A command that writes windows refuses an instant later than the real clock: a window that is not
closed in real time may still receive points, and must never be recorded done. Looking ahead is
what ``status`` and ``backfill --dry-run`` are for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rollup.app.instants import format_utc, parse_instant
from rollup.errors import ConfigError
from rollup.jobs.planner import Now


@dataclass(frozen=True, slots=True)
class Clock:
    pinned: int | None = None
    """The planning instant the operator gave, or None for the real clock."""

    @staticmethod
    def real() -> int:
        """The real clock, epoch ns."""
        return time.time_ns()

    def now(self) -> Now:
        real = self.real()
        return Now(real if self.pinned is None else self.pinned, real)


def clock_for(text: str | None, *, writes: bool, option: str = "--now") -> Clock:
    """The clock of a command; ``text`` is ``--now`` (None: the real clock).

    ConfigError (a usage error) for an invalid instant, or for a later one when the command
    ``writes`` windows."""
    if text is None:
        return Clock()
    try:
        pinned = parse_instant(text, "UTC", Clock.real())
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from exc
    real = Clock.real()
    if writes and pinned > real:
        raise ConfigError(
            f"{option} {text} ({format_utc(pinned)}) is later than the real clock ({format_utc(real)}): "
            "windows that are not closed yet could be written and recorded done. A command that "
            f"writes may only look back; to look ahead use {option} with --dry-run or rollup status"
        )
    return Clock(pinned)
