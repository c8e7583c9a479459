"""The planner: which windows of a job a pass runs. A pure function of the job's policy, the
ledger's rows and ``now`` — ``run``, ``serve``, ``status`` and ``backfill`` all ask it.

Owed, in a live pass (``plan``):

* every *closed* window (``now >= end + delay``) whose start is at or after the *cut*:
  ``max(job start, now - buffer retention)``, that is not done;
* except failed windows still waiting for their retry (exponential backoff from the last failure,
  ``retry_backoff × 2^(failures-1)``, capped at ``retry_backoff_max``) and windows another process
  holds with a live lease (an expired lease makes the window owed again);
* plus the last ``recompute`` closed windows even when done (late data);
* oldest first, at most ``max_windows_per_pass``.

Windows that fell behind the cut since the last pass (the *horizon*) without being done can no
longer be computed: the plan reports them once as ``lost``, and the pass records them in the
ledger as unrecoverable.

An explicit range (``plan_range``, for backfill) owes every closed window of the range that is not
done (or all of them with ``force``), ignores the job start and the retry backoff, and leaves out
windows older than the buffer retention.

Windows come from ``WindowGrid.boundaries`` and done windows are matched with numpy, so planning
days of 5-second windows stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rollup.core.durations import Duration
from rollup.core.windows import Window, WindowGrid
from rollup.errors import ConfigError
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Record, Seen, Snapshot

Reason = Literal["missing", "failed", "expired", "recompute", "forced"]
"""Why a window is due: never run (or no longer tracked), failed and its backoff has passed, its
owner's lease expired, re-run for late data, or re-run on request (backfill --force)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What the planner needs to know about a job besides its window grid."""

    start: int | None
    retention: int | None
    delay: int
    recompute: int = 0
    max_windows: int = 1000
    backoff: int = 60 * 1_000_000_000
    backoff_max: int = 3600 * 1_000_000_000

    def cut(self, now: int) -> int:
        """The oldest window start owed at ``now``."""
        if self.retention is None:
            if self.start is None:
                raise ValueError("no start and no retention: check with require_owed_range first")
            return self.start
        oldest = now - self.retention
        return oldest if self.start is None else max(self.start, oldest)

    def retry_at(self, record: Record) -> int:
        """When a failed window may run again."""
        exponent = min(max(record.failures - 1, 0), 62)
        wait = min(self.backoff * (1 << exponent), self.backoff_max)
        return (record.finished or 0) + wait


def policy_for(job: JobSpec, source_retention: Duration | None) -> Policy:
    """The job's policy; the job's ``[schedule] buffer_retention`` overrides the source's."""
    given = job.schedule.buffer_retention or source_retention
    retention = None if given is None else given.nanos
    if retention is not None and retention <= job.grid.nominal_ns() + job.window.delay_ns:
        raise ConfigError(
            f"job {job.name}: the buffer retention ({given}) must be longer than one window plus its "
            f"delay ({job.window.every} + {job.window.delay}): no window could ever be computed"
        )
    return Policy(
        start=job.start_ns(),
        retention=retention,
        delay=job.window.delay_ns,
        recompute=job.schedule.recompute,
        max_windows=job.schedule.max_windows_per_pass,
        backoff=job.schedule.retry_backoff.nanos,
        backoff_max=job.schedule.retry_backoff_max.nanos,
    )


def require_owed_range(job: JobSpec, policy: Policy) -> None:
    """A live pass needs a start or a retention to know the oldest window owed."""
    if policy.start is None and policy.retention is None:
        raise ConfigError(
            f"job {job.name}: set 'start' in the job file, or a buffer retention ('retention' in "
            f"[sources.{job.source.profile}] of the settings, or [schedule] buffer_retention in the "
            "job): without either, rollup cannot tell which windows are owed"
        )


@dataclass(frozen=True, slots=True)
class Due:
    window: Window
    reason: Reason
    seen: Seen | None
    """The ledger row the plan was made from (None: no row); the claim checks it again."""


@dataclass(frozen=True, slots=True)
class Lost:
    """Windows that fell out of the buffer retention without being done."""

    count: int
    first: int
    """Start of the oldest."""
    last: int
    """End of the newest."""
    since: int
    """Where the region checked began (the previous horizon)."""


@dataclass(frozen=True)
class Plan:
    due: list[Due]
    """What to run this pass: oldest first, capped."""
    owed: int
    """Windows due that are not done (before the cap; recomputed windows not counted)."""
    waiting: int = 0
    """Failed windows waiting for their retry."""
    next_retry: int | None = None
    running: int = 0
    """Windows another process holds with a live lease."""
    horizon: int | None = None
    """The new horizon to record (None: unchanged)."""
    lost: Lost | None = None
    previous_horizon: int | None = None
    """The horizon the plan was made from."""
    oldest_owed: Window | None = None
    """The oldest window not done, due now or waiting for its retry."""


@dataclass(frozen=True)
class RangePlan:
    due: list[Due]
    done: list[Window] = field(default_factory=list)
    """Done windows left alone (without force)."""
    running: list[Window] = field(default_factory=list)
    too_old: list[Window] = field(default_factory=list)
    """Older than the buffer retention."""
    not_closed: int = 0


def snapshot_bounds(policy: Policy, horizon: int | None, now: int) -> tuple[int, int]:
    """The window starts a live plan needs the ledger's rows for."""
    cut = policy.cut(now)
    low = cut if horizon is None else min(horizon, cut)
    if horizon is None and policy.start is not None:
        low = min(low, policy.start)
    return low, max(low, now - policy.delay)


def plan(grid: WindowGrid, policy: Policy, snapshot: Snapshot, horizon: int | None, now: int) -> Plan:
    """The live pass at ``now``; ``horizon`` is the job's horizon from the ledger."""
    cut = policy.cut(now)
    starts, ends = _closed_windows(grid, cut, now - policy.delay)
    done = _done_mask(snapshot, starts, ends)
    open_starts, open_ends = starts[~done], ends[~done]
    owed = np.ones(len(open_starts), dtype=bool)
    special: dict[int, Due] = {}
    waiting = running = 0
    next_retry: int | None = None
    oldest_waiting: Window | None = None
    for start, record in snapshot.pending.items():
        position = int(np.searchsorted(open_starts, start))
        if position >= len(open_starts) or open_starts[position] != start:
            continue
        window = Window(start, int(open_ends[position]))
        if record.status == "running":
            if record.lease_until is not None and record.lease_until >= now:
                owed[position] = False
                running += 1
            else:
                special[start] = Due(window, "expired", record.seen)
        elif record.status == "failed":
            retry = policy.retry_at(record)
            if retry > now:
                owed[position] = False
                waiting += 1
                next_retry = retry if next_retry is None else min(next_retry, retry)
                oldest_waiting = oldest_waiting or window
            else:
                special[start] = Due(window, "failed", record.seen)
        else:  # unrecoverable, yet inside the range again (start or retention moved back)
            special[start] = Due(window, "missing", record.seen)
    due_starts, due_ends = open_starts[owed], open_ends[owed]
    recompute: dict[int, Due] = {}
    if policy.recompute:
        tail = slice(max(len(starts) - policy.recompute, 0), len(starts))
        for start, end, is_done in zip(starts[tail], ends[tail], done[tail], strict=True):
            if is_done:
                attempts = _done_attempts(snapshot, int(start))
                recompute[int(start)] = Due(Window(int(start), int(end)), "recompute", Seen("done", attempts))
    chosen = _oldest(due_starts, due_ends, recompute, policy.max_windows)
    due = [
        special.get(s) or recompute.get(s) or Due(Window(s, e), "missing", _stale(snapshot, s))
        for s, e in chosen
    ]
    new_horizon, lost = _lost(grid, policy, snapshot, horizon, cut)
    oldest = oldest_waiting
    if len(due_starts) and (oldest is None or due_starts[0] < oldest.start):
        oldest = Window(int(due_starts[0]), int(due_ends[0]))
    return Plan(
        due=due,
        owed=len(due_starts),
        waiting=waiting,
        next_retry=next_retry,
        running=running,
        horizon=new_horizon,
        lost=lost,
        previous_horizon=horizon,
        oldest_owed=oldest,
    )


def plan_range(
    grid: WindowGrid, policy: Policy, snapshot: Snapshot, now: int, start: int, end: int, force: bool = False
) -> RangePlan:
    """Every window overlapping ``[start, end)`` that is closed, within the retention and not done."""
    bounds = grid.boundaries(start, end)
    starts, ends = bounds[:-1], bounds[1:]
    closed = ends <= now - policy.delay
    old = np.zeros(len(starts), dtype=bool)
    if policy.retention is not None:
        old = closed & (starts < now - policy.retention)
    done = _done_mask(snapshot, starts, ends)
    result = RangePlan(due=[], not_closed=int((~closed).sum()))
    for index in np.flatnonzero(closed):
        window = Window(int(starts[index]), int(ends[index]))
        record = snapshot.pending.get(window.start)
        if old[index]:
            result.too_old.append(window)
        elif done[index]:
            if force:
                result.due.append(Due(window, "forced", Seen("done", _done_attempts(snapshot, window.start))))
            else:
                result.done.append(window)
        elif record is None:
            result.due.append(Due(window, "missing", _stale(snapshot, window.start)))
        elif record.status == "running" and record.lease_until is not None and record.lease_until >= now:
            result.running.append(window)
        else:
            reason: Reason = "missing"  # an unrecoverable row: asked for explicitly
            if record.status == "running":
                reason = "expired"
            elif record.status == "failed":
                reason = "failed"
            result.due.append(Due(window, reason, record.seen))
    return result


# -- helpers ----------------------------------------------------------------------------------


def _closed_windows(grid: WindowGrid, low: int, closed_until: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the windows with ``start >= low`` and ``end <= closed_until``."""
    if closed_until <= low:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    bounds = grid.boundaries(low, closed_until)
    starts, ends = bounds[:-1], bounds[1:]
    keep = (starts >= low) & (ends <= closed_until)
    return starts[keep], ends[keep]


def _done_mask(snapshot: Snapshot, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which windows the ledger holds as done (same start and same end)."""
    if len(snapshot.done_starts) == 0 or len(starts) == 0:
        return np.zeros(len(starts), dtype=bool)
    position = np.searchsorted(snapshot.done_starts, starts)
    inside = position < len(snapshot.done_starts)
    position = np.minimum(position, len(snapshot.done_starts) - 1)
    found: np.ndarray = (
        inside & (snapshot.done_starts[position] == starts) & (snapshot.done_ends[position] == ends)
    )
    return found


def _done_attempts(snapshot: Snapshot, start: int) -> int:
    position = int(np.searchsorted(snapshot.done_starts, start))
    return int(snapshot.done_attempts[position])


def _stale(snapshot: Snapshot, start: int) -> Seen | None:
    """A done row with this start but another end (the job's window changed): claim over it."""
    position = int(np.searchsorted(snapshot.done_starts, start))
    if position < len(snapshot.done_starts) and snapshot.done_starts[position] == start:
        return Seen("done", int(snapshot.done_attempts[position]))
    return None


def _oldest(starts: np.ndarray, ends: np.ndarray, extra: dict[int, Due], limit: int) -> list[tuple[int, int]]:
    """The ``limit`` oldest of the owed windows and the extra ones, as (start, end)."""
    head = [(int(s), int(e)) for s, e in zip(starts[:limit], ends[:limit], strict=True)]
    head += [(d.window.start, d.window.end) for d in extra.values()]
    return sorted(head)[:limit]


def _lost(
    grid: WindowGrid, policy: Policy, snapshot: Snapshot, horizon: int | None, cut: int
) -> tuple[int | None, Lost | None]:
    """The new horizon (None: unchanged) and the windows it leaves behind undone."""
    if horizon is not None and cut <= horizon:
        return None, None
    since = horizon if horizon is not None else policy.start
    if since is None or since >= cut:
        return cut, None
    bounds = grid.boundaries(since, cut)
    starts, ends = bounds[:-1], bounds[1:]
    keep = (starts >= since) & (starts < cut)
    starts, ends = starts[keep], ends[keep]
    undone = ~_done_mask(snapshot, starts, ends)
    if not undone.any():
        return cut, None
    lost_starts, lost_ends = starts[undone], ends[undone]
    return cut, Lost(int(undone.sum()), int(lost_starts[0]), int(lost_ends[-1]), since)
