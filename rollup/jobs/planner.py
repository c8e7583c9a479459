"""The planner: which windows of a job are owed, and why. One pure function of the job's window
grid and policy, the ledger's rows and the time — ``run``, ``serve``, ``status`` and ``backfill``
(and its ``--dry-run``) all ask it.

A plan covers a *scope* of windows:

* a live pass (no ``span``): every *closed* window (``now ≥ end + delay``) whose start is at or
  after the *cut*, ``max(job start, now − buffer retention)``;
* an explicit range (``span``, for backfill): every window overlapping ``[start, end)``, closed or
  not, within the retention or not — each is classified, and only the closed ones within the
  retention can be due.

Each window of the scope gets one verdict, by one classifier (:func:`classify`):

* ``done`` — the ledger holds it done (same start and end); due again only as ``recompute`` (one of
  the last ``recompute`` closed windows of a live pass: late data) or ``forced`` (``--force``);
* ``running`` — another process holds it under a lease that has not ended;
* ``waiting`` — it failed and its retry backoff (``retry_backoff × 2^(failures−1)``, capped at
  ``retry_backoff_max``, from its last failure) has not passed; an explicit range does not wait;
* ``due`` — it must run: never run (``missing``; also a row left ``unrecoverable`` that is inside
  the scope again, or a done row of another window size), ``failed`` (backoff passed),
  ``expired`` (its owner stopped renewing the lease), ``recompute``, ``forced`` or ``upstream``
  (see below);
* ``not_closed`` and ``too_old`` (explicit ranges only): not closed yet, or older than the buffer
  retention;
* ``waiting_upstream`` — the job reads another job (:class:`Dependency`) and a window of that job
  which this window covers is not done yet, though it still can be: it is closed and younger than
  that job's buffer retention, or not closed yet. A window of the upstream that can no longer be
  done (older than its retention or before its start) holds nothing back: the merge goes on
  without it, and the row's coverage shows the hole. Whatever it was before (missing, failed,
  even done), such a window waits; only a run in progress stays ``running``.

A window of a job reading a job is due again (``upstream``) when one of the upstream windows it
covers was recorded done after this window's last run began: the upstream re-ran it (backfill
``--force``, ``recompute``, a failure that finally succeeded), so the merge is stale. Both times
come from the ledger (the real clocks of the processes that ran them).

Two clocks: ``Now.plan`` decides which windows are closed and where the cut is (``--now`` moves
it, for a dry run or to look back); leases and retry backoffs are always compared with
``Now.real``, the clock the ledger's times were recorded with.

Windows are generated lazily, a page at a time, and the ledger is read page by page: a plan over
ten years of 5-second windows holds one page in memory, and its first due window is known after
reading one page. Counting (:meth:`Plan.tally`) walks every page. A page whose windows all have
one width and follow each other, every one of them done, is known from a count
(:data:`DoneCounter`) without reading its rows, when nothing could make one of them due (no
``--force``, no recompute, no job read): a ledger holding years of done 5-second windows costs a
count per page, not millions of rows.

Windows that fell behind the cut since the last pass (the *horizon*) without being done can no
longer be computed: :meth:`Plan.lost` counts them once, and the pass records them in the ledger as
unrecoverable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from rollup.core.durations import Duration
from rollup.core.windows import DAY_NS, Window, WindowGrid
from rollup.errors import ConfigError
from rollup.jobs.spec import JobSpec, SourceSpec
from rollup.ledger.base import Record, Seen, Snapshot

Reason = Literal["missing", "failed", "expired", "recompute", "forced", "upstream"]
"""Why a window is due: never run (or no longer tracked), failed and its backoff has passed, its
owner's lease expired, re-run for late data, re-run on request (backfill --force), or re-run
because the job it reads re-ran a window it covers."""

Verdict = Literal["due", "done", "running", "waiting", "waiting_upstream", "not_closed", "too_old"]

RowReader = Callable[[int, int], Snapshot]
"""The ledger's rows of the job whose window starts in ``[start, end)``."""

DoneCounter = Callable[[int, int, int], int]
"""How many done windows of the job are ``[start + k·width, start + (k+1)·width)`` for a start in
``[start, end)``; arguments ``(start, end, width)``."""

PAGE_WINDOWS = 50_000
"""Windows generated and matched with the ledger at a time."""


@dataclass(frozen=True, slots=True)
class Now:
    """The instant a plan is made for, and the real clock."""

    plan: int
    """Decides which windows are closed and where the cut is (``--now``, else the real clock)."""
    real: int
    """Leases and retry backoffs: the clock the ledger's times are recorded with."""

    @staticmethod
    def at(instant: int) -> Now:
        """The same instant for both (the usual case, and tests)."""
        return Now(instant, instant)


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
        """When a failed window may run again: after a backoff doubling with each failure, or at
        once after the longest one if the failure needs a fix (a retry soon would fail the same)."""
        exponent = min(max(record.failures - 1, 0), 62)
        wait = min(self.backoff * (1 << exponent), self.backoff_max)
        if record.transient is False:
            wait = self.backoff_max
        return (record.finished or 0) + wait


def policy_for(job: JobSpec, source_retention: Duration | None, start: int | None = None) -> Policy:
    """The job's policy; the job's ``[schedule] buffer_retention`` overrides the source's, and
    ``start`` (the first window of a job without ``start``, see the ledger's origin) stands in for
    the job's own start when it has none."""
    given = job.schedule.buffer_retention or source_retention
    retention = None if given is None else given.nanos
    if retention is not None and retention <= job.grid.nominal_ns() + job.window.delay_ns:
        raise ConfigError(
            f"job {job.name}: the buffer retention ({given}) must be longer than one window plus its "
            f"delay ({job.window.every} + {job.window.delay}): no window could ever be computed"
        )
    configured = job.start_ns()
    return Policy(
        start=configured if configured is not None else start,
        retention=retention,
        delay=job.window.delay_ns,
        recompute=job.schedule.recompute,
        max_windows=job.schedule.max_windows_per_pass,
        backoff=job.schedule.retry_backoff.nanos,
        backoff_max=job.schedule.retry_backoff_max.nanos,
    )


def require_owed_range(job: JobSpec, policy: Policy) -> None:
    """A live pass needs a start or a retention to know the oldest window owed (a job reading a
    job without either begins where the job it reads begins)."""
    if policy.start is None and policy.retention is None and job.upstream is None:
        where = (
            f"'retention' in [sources.{job.source.profile}] of the settings, or "
            if isinstance(job.source, SourceSpec)
            else ""
        )
        raise ConfigError(
            f"job {job.name}: set 'start' in the job file, or a buffer retention ({where}[schedule] "
            "buffer_retention in the job): without either, rollup cannot tell which windows are owed"
        )


@dataclass(frozen=True, slots=True)
class Dependency:
    """What the planner knows of the job a job reads (its *upstream*)."""

    grid: WindowGrid
    rows: RowReader
    """The upstream's ledger rows."""
    cut: int | None
    """Upstream windows starting before this can no longer be done (older than its buffer
    retention, or before its start): they hold nothing back. None: every one can."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One window of a plan's scope and its verdict."""

    window: Window
    verdict: Verdict
    reason: Reason | None = None
    """Why it is due (``verdict == "due"``)."""
    seen: Seen | None = None
    """The ledger row the plan was made from (None: no row); a claim checks it again."""
    record: Record | None = None
    """The full row, for windows that are not done."""
    retry_at: int | None = None
    """When a waiting window may run again."""


@dataclass(frozen=True, slots=True)
class Due:
    """A window to run, and the ledger row it was planned from."""

    window: Window
    reason: Reason
    seen: Seen | None


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


@dataclass(frozen=True, slots=True)
class Tally:
    """How many windows of a plan's scope have each verdict."""

    due: int = 0
    """Due and not done (recomputed and forced windows are not counted)."""
    done: int = 0
    running: int = 0
    waiting: int = 0
    not_closed: int = 0
    too_old: int = 0
    waiting_upstream: int = 0
    """Windows waiting for windows of the job they read."""
    recompute: int = 0
    """Done windows due again (recompute, --force, or an upstream window re-run)."""
    oldest_owed: Window | None = None
    """The oldest window not done: due now, or waiting for its retry."""
    next_retry: int | None = None
    running_records: tuple[Record, ...] = ()
    """The rows of the windows another process holds (their owners, leases)."""

    @property
    def owed(self) -> int:
        """Closed windows not done, failed ones waiting for their retry included."""
        return self.due + self.waiting


@dataclass(frozen=True)
class Plan:
    """The windows of a job's scope at one instant, classified (see the module docstring).

    Nothing is read until asked: :meth:`entries` and :meth:`due_windows` generate the scope page by
    page (a fresh walk each time); :attr:`due` is the capped list a live pass runs; :meth:`tally`
    counts everything. A plan does not change once made: the ledger may, and a later walk sees it.
    """

    grid: WindowGrid
    policy: Policy
    rows: RowReader
    now: Now
    span: tuple[int, int] | None = None
    force: bool = False
    horizon: int | None = None
    """The job's horizon from the ledger (live passes)."""
    upstream: Dependency | None = None
    """The job it reads, if it reads a job."""
    page: int = PAGE_WINDOWS
    count_done: DoneCounter | None = None
    """Counts done windows in the ledger: pages known done are then not read (see the module)."""
    _recompute: frozenset[int] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        if self.span is None and self.policy.recompute:
            starts = last_closed_starts(self.grid, self.closed_until, self.policy.recompute, self.low)
            object.__setattr__(self, "_recompute", frozenset(starts))

    # -- scope ------------------------------------------------------------------------------

    @property
    def closed_until(self) -> int:
        """Windows ending at or before this instant are closed."""
        return self.now.plan - self.policy.delay

    @cached_property
    def low(self) -> int:
        """The first window start of the scope."""
        if self.span is not None:
            return self.grid.window_at(self.span[0]).start
        return self.policy.cut(self.now.plan)

    @property
    def high(self) -> int:
        """Windows of the scope start before this instant."""
        return self.span[1] if self.span is not None else self.closed_until

    @property
    def retention_cut(self) -> int | None:
        """Windows starting before this are older than the buffer retention."""
        return None if self.policy.retention is None else self.now.plan - self.policy.retention

    # -- walking ----------------------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every window of the scope with its verdict, oldest first."""
        for page in self._pages():
            yield from self._classified(page)

    def due_windows(self) -> Iterator[Due]:
        """The due windows of the scope, oldest first, uncapped."""
        for page in self._pages(skip_done=True):
            for entry in self._classified(page, only_due=True):
                if entry.verdict == "due" and entry.reason is not None:
                    yield Due(entry.window, entry.reason, entry.seen)

    @cached_property
    def due(self) -> list[Due]:
        """What a pass runs: the oldest due windows, at most ``max_windows`` (live passes)."""
        limit = self.policy.max_windows if self.span is None else None
        found: list[Due] = []
        for due in self.due_windows():
            if limit is not None and len(found) >= limit:
                break
            found.append(due)
        return found

    def tally(self) -> Tally:
        """Counts of the whole scope (walks every page)."""
        names = (
            "due",
            "done",
            "running",
            "waiting",
            "waiting_upstream",
            "not_closed",
            "too_old",
            "recompute",
        )
        counts = dict.fromkeys(names, 0)
        oldest: Window | None = None
        next_retry: int | None = None
        holders: list[Record] = []
        recompute = np.fromiter(self._recompute, dtype=np.int64)
        for page in self._pages(skip_done=True):
            starts, ends, snapshot = page.starts, page.ends, page.snapshot
            done = _done_mask(snapshot, starts, ends)
            closed = ends <= self.closed_until
            old = self._old_mask(starts, closed)
            candidates = closed & ~old
            blocked = candidates & ~page.ready
            fresh = candidates & page.ready
            stale = page.newest > _done_started(snapshot, starts, done)
            again = fresh & done & (True if self.force else np.isin(starts, recompute) | stale)
            counts["not_closed"] += int((~closed).sum())
            counts["too_old"] += int(old.sum())
            counts["recompute"] += int(again.sum())
            counts["done"] += int((fresh & done & ~again).sum())
            open_ = fresh & ~done
            held = np.zeros(len(starts), dtype=bool)
            for start, record in snapshot.pending.items():
                position = int(np.searchsorted(starts, start))
                if position >= len(starts) or starts[position] != start or not (candidates & ~done)[position]:
                    continue
                entry = self._pending_entry(Window(start, int(ends[position])), record)
                if entry.verdict == "running":
                    counts["running"] += 1
                    holders.append(record)
                    held[position] = True
                elif entry.verdict == "waiting" and entry.retry_at is not None and not blocked[position]:
                    counts["waiting"] += 1
                    next_retry = entry.retry_at if next_retry is None else min(next_retry, entry.retry_at)
            counts["waiting_upstream"] += int((blocked & ~held).sum())
            owed = open_ & ~held
            counts["due"] += int(owed.sum())
            if oldest is None and owed.any():
                first = int(np.argmax(owed))
                oldest = Window(int(starts[first]), int(ends[first]))
        counts["due"] -= counts["waiting"]
        return Tally(
            due=counts["due"],
            done=counts["done"],
            running=counts["running"],
            waiting=counts["waiting"],
            not_closed=counts["not_closed"],
            too_old=counts["too_old"],
            waiting_upstream=counts["waiting_upstream"],
            recompute=counts["recompute"],
            oldest_owed=oldest,
            next_retry=next_retry,
            running_records=tuple(holders),
        )

    # Attributes a live pass reports (the tally of its scope).

    @cached_property
    def _tally(self) -> Tally:
        return self.tally()

    @property
    def owed(self) -> int:
        """Windows due that are not done, before the cap (recomputed windows not counted)."""
        return self._tally.due

    @property
    def waiting(self) -> int:
        return self._tally.waiting

    @property
    def running(self) -> int:
        return self._tally.running

    @property
    def next_retry(self) -> int | None:
        return self._tally.next_retry

    @property
    def oldest_owed(self) -> Window | None:
        return self._tally.oldest_owed

    # -- the horizon ------------------------------------------------------------------------

    @property
    def new_horizon(self) -> int | None:
        """The horizon to record after this pass (None: unchanged)."""
        if self.span is not None:
            return None
        cut = self.low
        return None if self.horizon is not None and cut <= self.horizon else cut

    def lost(self) -> Lost | None:
        """Windows between the previous horizon (or the job start) and the cut never done."""
        cut = self.new_horizon
        if cut is None:
            return None
        since = self.horizon if self.horizon is not None else self.policy.start
        if since is None or since >= cut:
            return None
        count = 0
        first = last = 0
        for starts, ends in _windows(self.grid, since, cut, self.page):
            undone = ~_done_mask(self.rows(int(starts[0]), int(starts[-1]) + 1), starts, ends)
            if undone.any():
                if not count:
                    first = int(starts[undone][0])
                last = int(ends[undone][-1])
                count += int(undone.sum())
        return Lost(count, first, last, since) if count else None

    # -- internals --------------------------------------------------------------------------

    def _pages(self, skip_done: bool = False) -> Iterator[_Page]:
        """The scope's pages with their rows; ``skip_done``: a page known done from a count comes
        with rows made from its windows instead (what the ledger holds, but for their times and
        attempts: for counting and finding due windows, not for listing them)."""
        for starts, ends in _windows(self.grid, self.low, self.high, self.page):
            if self.span is None:
                closed = ends <= self.closed_until
                starts, ends = starts[closed], ends[closed]
                if not len(starts):
                    continue
            if skip_done and self._known_done(starts, ends):
                snapshot = Snapshot(starts, ends, np.ones(len(starts), dtype=np.int64), {})
            else:
                snapshot = self.rows(int(starts[0]), int(starts[-1]) + 1)
            yield _Page(starts, ends, snapshot, *self._upstream_state(starts, ends))

    def _known_done(self, starts: np.ndarray, ends: np.ndarray) -> bool:
        """Whether the ledger holds every window of the page done and none of them can be due
        whatever its row says (closed, within the retention, not forced, not recomputed)."""
        if self.count_done is None or self.force or self.upstream is not None:
            return False
        width = int(ends[0] - starts[0])
        if (ends - starts != width).any() or (np.diff(starts) != width).any():
            return False  # not one width, one after the other: a count cannot tell which are done
        if ends[-1] > self.closed_until:
            return False
        cut = self.retention_cut
        if self.span is not None and cut is not None and starts[0] < cut:
            return False
        if self._recompute and np.isin(starts, np.fromiter(self._recompute, dtype=np.int64)).any():
            return False
        return self.count_done(int(starts[0]), int(starts[-1]) + 1, width) == len(starts)

    def _upstream_state(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per window: whether every upstream window it covers is done or can no longer be, and
        when the newest of them was recorded done (0: none)."""
        ready = np.ones(len(starts), dtype=bool)
        newest = np.zeros(len(starts), dtype=np.int64)
        upstream = self.upstream
        if upstream is None or not len(starts):
            return ready, newest
        bounds = upstream.grid.boundaries(int(starts[0]), int(ends[-1]))
        covered_starts, covered_ends = bounds[:-1], bounds[1:]
        owner = np.searchsorted(starts, covered_starts, side="right") - 1
        inside = (owner >= 0) & (covered_ends <= ends[np.maximum(owner, 0)])
        covered_starts, covered_ends, owner = covered_starts[inside], covered_ends[inside], owner[inside]
        if not len(owner):
            return ready, newest
        snapshot = upstream.rows(int(covered_starts[0]), int(covered_starts[-1]) + 1)
        done = _done_mask(snapshot, covered_starts, covered_ends)
        settled = done if upstream.cut is None else done | (covered_starts < upstream.cut)
        ready = np.bincount(owner[~settled], minlength=len(starts)) == 0
        if done.any() and snapshot.done_finished is not None:
            position = np.searchsorted(snapshot.done_starts, covered_starts[done])
            np.maximum.at(newest, owner[done], snapshot.done_finished[position])
        return ready, newest

    def _old_mask(self, starts: np.ndarray, closed: np.ndarray) -> np.ndarray:
        cut = self.retention_cut
        if self.span is None or cut is None:
            return np.zeros(len(starts), dtype=bool)
        old: np.ndarray = closed & (starts < cut)
        return old

    def _classified(self, page: _Page, only_due: bool = False) -> Iterator[Entry]:
        """The page's entries; ``only_due``: none of the windows that cannot be due (not closed,
        too old, waiting for upstream, done and neither forced, recomputed nor stale), which then
        cost no Python object."""
        starts, ends, snapshot = page.starts, page.ends, page.snapshot
        done = _done_mask(snapshot, starts, ends)
        closed = ends <= self.closed_until
        old = self._old_mask(starts, closed)
        started = _done_started(snapshot, starts, done)
        indices: Iterable[int] = range(len(starts))
        if only_due:
            maybe = closed & ~old & page.ready
            if not self.force:
                recompute = np.isin(starts, np.fromiter(self._recompute, dtype=np.int64))
                maybe &= ~done | recompute | (page.newest > started)
            indices = np.flatnonzero(maybe).tolist()
        for index in indices:
            start, end = int(starts[index]), int(ends[index])
            window = Window(start, end)
            if not closed[index]:
                yield Entry(window, "not_closed")
            elif old[index]:
                yield Entry(window, "too_old")
            elif not page.ready[index]:
                yield self._waiting_entry(window, snapshot, bool(done[index]))
            elif done[index]:
                yield self._done_entry(window, snapshot, bool(page.newest[index] > started[index]))
            else:
                record = snapshot.pending.get(start)
                if record is None:
                    yield Entry(window, "due", "missing", _stale(snapshot, start))
                else:
                    yield self._pending_entry(window, record)

    def _done_entry(self, window: Window, snapshot: Snapshot, stale: bool) -> Entry:
        seen = Seen("done", _done_attempts(snapshot, window.start))
        if self.force:
            return Entry(window, "due", "forced", seen)
        if window.start in self._recompute:
            return Entry(window, "due", "recompute", seen)
        if stale:
            return Entry(window, "due", "upstream", seen)
        return Entry(window, "done", seen=seen)

    def _waiting_entry(self, window: Window, snapshot: Snapshot, done: bool) -> Entry:
        """A window whose upstream windows are not all done: it waits, unless it is running."""
        if done:
            return Entry(
                window, "waiting_upstream", seen=Seen("done", _done_attempts(snapshot, window.start))
            )
        record = snapshot.pending.get(window.start)
        if record is None:
            return Entry(window, "waiting_upstream", seen=_stale(snapshot, window.start))
        entry = self._pending_entry(window, record)
        if entry.verdict == "running":
            return entry
        return Entry(window, "waiting_upstream", seen=record.seen, record=record)

    def _pending_entry(self, window: Window, record: Record) -> Entry:
        """The verdict on a window whose row is running, failed or unrecoverable."""
        if record.status == "running":
            if record.lease_until is not None and record.lease_until >= self.now.real:
                return Entry(window, "running", seen=record.seen, record=record)
            return Entry(window, "due", "expired", record.seen, record)
        if record.status == "failed":
            retry = self.policy.retry_at(record)
            if self.span is None and retry > self.now.real:
                return Entry(window, "waiting", seen=record.seen, record=record, retry_at=retry)
            return Entry(window, "due", "failed", record.seen, record)
        return Entry(window, "due", "missing", record.seen, record)  # unrecoverable, inside again


def plan(
    grid: WindowGrid,
    policy: Policy,
    rows: RowReader,
    now: Now | int,
    *,
    span: tuple[int, int] | None = None,
    force: bool = False,
    horizon: int | None = None,
    upstream: Dependency | None = None,
    count_done: DoneCounter | None = None,
) -> Plan:
    """The plan of a live pass at ``now`` (``span`` None) or of the windows overlapping ``span``;
    ``upstream``: the job it reads, if it reads a job; ``count_done``: the ledger's count of done
    windows, to skip reading pages it shows done."""
    if span is not None and span[1] <= span[0]:
        raise ValueError(f"empty span: {span[1]} is not after {span[0]}")
    moment = now if isinstance(now, Now) else Now.at(now)
    page = PAGE_WINDOWS
    if upstream is not None:  # a page's windows cover about PAGE_WINDOWS upstream windows
        page = max(1, PAGE_WINDOWS * upstream.grid.nominal_ns() // grid.nominal_ns())
    return Plan(
        grid,
        policy,
        rows,
        moment,
        span=span,
        force=force,
        horizon=horizon,
        upstream=upstream,
        page=page,
        count_done=count_done,
    )


# -- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Page:
    """A page of a plan's windows, the ledger's rows of them and their upstream's state."""

    starts: np.ndarray
    ends: np.ndarray
    snapshot: Snapshot
    ready: np.ndarray
    """Every upstream window the window covers is done, or can no longer be."""
    newest: np.ndarray
    """When the newest of those was recorded done (0: none, or no upstream)."""


def _windows(grid: WindowGrid, low: int, high: int, page: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Starts and ends of the windows whose start is in ``[low, high)``, a page at a time."""
    step = max(grid.nominal_ns() * page, DAY_NS)
    position = low
    while position < high:
        stop = min(position + step, high)
        bounds = grid.boundaries(position, stop)
        starts, ends = bounds[:-1], bounds[1:]
        keep = (starts >= position) & (starts < stop)
        if keep.any():
            yield starts[keep], ends[keep]
        position = stop


def last_closed_starts(grid: WindowGrid, closed_until: int, count: int, low: int) -> list[int]:
    """Starts of the last ``count`` windows ending at or before ``closed_until``, none before ``low``."""
    reach = (count + 2) * grid.nominal_ns()
    bounds = grid.boundaries(max(low, closed_until - reach), closed_until)
    starts, ends = bounds[:-1], bounds[1:]
    keep = (ends <= closed_until) & (starts >= low)
    return [int(s) for s in starts[keep][-count:]]


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


def _done_started(snapshot: Snapshot, starts: np.ndarray, done: np.ndarray) -> np.ndarray:
    """When the last run of each done window began (the largest instant where unknown: such a
    window is never stale; 0 for windows not done)."""
    found = np.zeros(len(starts), dtype=np.int64)
    if not done.any():
        return found
    if snapshot.done_started is None:
        found[done] = np.iinfo(np.int64).max
        return found
    found[done] = snapshot.done_started[np.searchsorted(snapshot.done_starts, starts[done])]
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
