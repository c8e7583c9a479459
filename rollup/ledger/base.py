"""The window ledger: what every backend stores and offers.

One row per job and window (keyed by the window start): its status, how often it was attempted,
the last error, points read, rows written, when it started and finished. A window is *claimed*
before it runs: the claim checks again, atomically, that the row is still in the state the
planner saw (compare-and-set on status and attempts), so two processes never run a window twice.
A claim is a lease: the owner renews it while it works; once it has expired (the owner died), the
window is owed again.

Per job the ledger also keeps the *horizon* (the oldest window start still owed at the last
pass) and a counter of windows that fell out of the buffer retention without ever being done.

Instants are integer nanoseconds since the Unix epoch, given by the caller: the ledger has no
clock of its own, so a pass with a fixed ``now`` (tests, dry runs) is consistent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rollup.core.windows import Window

Status = Literal["running", "done", "failed", "unrecoverable"]
STATUSES: tuple[Status, ...] = ("running", "done", "failed", "unrecoverable")


@dataclass(frozen=True, slots=True)
class Seen:
    """A window's row as the planner saw it; a claim succeeds only if the row still matches."""

    status: Status
    attempts: int


@dataclass(frozen=True, slots=True)
class Record:
    """One window's row."""

    window: Window
    status: Status
    attempts: int
    """Runs started (each claim counts one)."""
    failures: int
    """Failed runs since the last success (drives the retry backoff)."""
    error: str | None
    """The last error seen, kept after a later success."""
    points: int
    rows: int
    started: int | None
    finished: int | None
    duration: float | None
    """Seconds the last run took."""
    owner: str | None
    lease_until: int | None
    transient: bool | None = None
    """Whether the last failure may go away by itself (None: not recorded, rows of schema 1)."""

    @property
    def seen(self) -> Seen:
        return Seen(self.status, self.attempts)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A job's rows whose window starts in a range, shaped for the planner.

    Done windows come as sorted arrays (there may be hundreds of thousands of short ones);
    every other row as a record.
    """

    done_starts: np.ndarray
    done_ends: np.ndarray
    done_attempts: np.ndarray
    pending: dict[int, Record]
    """Rows that are not done, by window start."""
    done_started: np.ndarray | None = None
    """When each done window's last run began (None: not read)."""
    done_finished: np.ndarray | None = None
    """When each done window was recorded done (None: not read)."""

    @staticmethod
    def empty() -> Snapshot:
        nothing = np.zeros(0, dtype=np.int64)
        return Snapshot(nothing, nothing, nothing, {}, nothing, nothing)


@dataclass(frozen=True, slots=True)
class Finished:
    """The result of one window's run, to record."""

    window: Window
    error: str | None
    points: int
    rows: int
    seconds: float
    transient: bool = False
    """The failure may go away by itself (a server down or busy); else it needs a fix."""


@dataclass(frozen=True, slots=True)
class JobState:
    horizon: int | None
    """The oldest window start that was still owed at the last pass (None: no pass yet)."""
    unrecoverable: int
    """Windows that fell out of the buffer retention without being done (a counter)."""
    origin: int | None = None
    """Where a job without ``start`` begins: the window of the oldest point its first pass found
    in the buffer (None: not decided yet)."""
    pruned: int = 0
    """Done windows whose rows were pruned (still counted as done)."""


@dataclass(frozen=True, slots=True)
class LatestDone:
    """How far a job got, for lag metrics."""

    newest_end: int
    """The end of the newest window recorded done."""
    last_finished: int
    """When a window of the job was last recorded done (whichever window it was)."""


@dataclass(frozen=True, slots=True)
class Summary:
    counts: dict[Status, int]
    last_failure: Record | None
    """The failed or unrecoverable window that finished last (with its error)."""
    empty: int = 0
    """Done windows for which the source had no point at all."""


class Ledger(ABC):
    """Where window state lives. Backends: SQLite (embedded) and PostgreSQL (several replicas).

    Every method raises LedgerError when the store cannot be read or written. Methods may be
    called from several threads (a heartbeat renews leases while the main thread works).
    """

    location: str
    """Where the ledger is, for messages (never holds a password)."""

    @abstractmethod
    def snapshot(self, job: str, start: int, end: int) -> Snapshot:
        """The rows of ``job`` whose window starts in ``[start, end)``."""

    @abstractmethod
    def count_done(self, job: str, start: int, end: int, width: int) -> int:
        """How many done windows of ``job`` are ``[start + k·width, start + (k+1)·width)`` and start
        before ``end``: with one row per window start, as many as the range holds means that every
        one of them is done (the planner then skips reading their rows)."""

    @abstractmethod
    def records(
        self,
        job: str,
        start: int,
        end: int,
        statuses: Sequence[Status] | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Record]:
        """Full rows of ``job`` with window start in ``[start, end)``, oldest first (or newest
        first), at most ``limit``."""

    @abstractmethod
    def claim(
        self, job: str, wanted: Sequence[tuple[Window, Seen | None]], owner: str, now: int, lease_ns: int
    ) -> list[Window]:
        """Atomically mark as running (owned by ``owner`` until ``now + lease_ns``) every wanted
        window whose row is still as seen (None: no row), or running with an expired lease.

        Returns the windows claimed, oldest first; the others belong to someone else now.
        """

    @abstractmethod
    def renew(self, job: str, windows: Sequence[Window], owner: str, now: int, lease_ns: int) -> int:
        """Extend the lease of ``owner``'s running windows; return how many are still held."""

    @abstractmethod
    def finish(self, job: str, results: Sequence[Finished], owner: str, now: int) -> list[Window]:
        """Record done (no error) or failed for windows ``owner`` holds; return those recorded.

        A window whose claim was taken over (lease expired) is not recorded.
        """

    @abstractmethod
    def release(self, owner: str) -> list[tuple[str, Window]]:
        """Give up every window ``owner`` still holds as running (a process stopping before it
        could finish them): the claim ends at once, so the window is owed again right away — not
        failed, no backoff. A late ``renew`` or ``finish`` by ``owner`` no longer matches it.

        Returns the released windows as (job, window), by job and oldest first.
        """

    @abstractmethod
    def job_state(self, job: str) -> JobState: ...

    @abstractmethod
    def advance_horizon(self, job: str, seen: int | None, horizon: int, lost: int, lost_from: int) -> bool:
        """Move ``job``'s horizon from ``seen`` to ``horizon``, add ``lost`` to its unrecoverable
        counter and mark rows in ``[lost_from, horizon)`` that are not done as unrecoverable.

        Returns False (and changes nothing) when another process moved the horizon first.
        """

    @abstractmethod
    def set_origin(self, job: str, origin: int) -> int:
        """Record where a job without ``start`` begins, unless another process did first; return
        the origin recorded."""

    @abstractmethod
    def prune(self, job: str, before: int) -> int:
        """Delete the done and unrecoverable rows of windows starting before ``before`` (done ones
        are added to the job's pruned count); return how many rows went."""

    @abstractmethod
    def latest_done(self, job: str) -> LatestDone | None:
        """The newest done window's end and the last time a window was recorded done; None when
        no window of ``job`` is done. A done window being run again (recompute, ``--force``) is
        not done until it is recorded done again."""

    @abstractmethod
    def summary(self, job: str, now: int) -> Summary:
        """Windows per status; a running window whose lease ended before ``now`` (its process died
        or released it) is not counted as running: it is owed again."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
