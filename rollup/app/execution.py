"""Running due windows through the ledger: claim a span's windows, run the claimed ones, record
each; every use case that writes (a pass, a backfill) goes through :func:`execute`.

Each span the runner reads is first claimed in the ledger (atomically: windows another process
took meanwhile are skipped). While the span runs, a heartbeat thread renews the lease, so a long
span is not taken over, while a dead process's windows become owed again once its lease expires.
A window is recorded done only after every sink accepted its rows, and failed (with the error and
its nature) otherwise. A run interrupted (Ctrl-C, SIGTERM's second signal) releases what it
holds: those windows are owed again at once, neither failed nor done.

Leases and recorded times follow the real clock, whatever instant the plan was made for.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollup.app.clock import Clock
from rollup.core.windows import Window
from rollup.errors import LedgerError
from rollup.jobs.planner import Due, Tally
from rollup.jobs.runner import JobRunner, WindowOutcome, contiguous_runs
from rollup.ledger.base import Finished, Ledger
from rollup.secrets import redact

log = logging.getLogger(__name__)

UNREACHABLE_AFTER = 2
"""Consecutive spans failing on the source's side before a run stops trying that source."""
CHUNK_WINDOWS = 10_000
"""Due windows read ahead of the runner from a (possibly lazy) stream, at most."""


# -- owners -----------------------------------------------------------------------------------


def new_owner() -> str:
    """A claim owner: host, process, the process's start and a random part. A restarted process
    never reuses one, and a process on this host can tell whether the owner is still alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid()) or 0}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner provably ended: it ran on this host and its process is gone, or
    its PID now belongs to a process started at another time. An owner on another host, or one
    that cannot be checked, is not known to be dead (its lease decides)."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = _started(pid)
    return started is not None and parts[2].isdigit() and int(parts[2]) not in (0, started)


def reclaim_dead(ledger: Ledger, tally: Tally) -> int:
    """Release the windows of owners that provably died; return how many were released."""
    dead = {record.owner for record in tally.running_records if record.owner and owner_is_dead(record.owner)}
    released = 0
    for owner in sorted(dead):
        windows = ledger.release(owner)
        released += len(windows)
        log.warning(
            "released %d window(s) claimed by %s, a process that is no longer running",
            len(windows),
            owner,
            extra={"event": "claims_reclaimed"},
        )
    return released


def _started(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


# -- claims -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skipped:
    """A due window another process claimed first."""

    window: Window


@dataclass(frozen=True)
class Claims:
    """One process's claims on one job's windows: claim, renew, record, release."""

    ledger: Ledger
    job: str
    owner: str
    lease_ns: int
    clock: Clock = field(default_factory=Clock)

    def claim(self, due: Sequence[Due]) -> list[Window]:
        wanted = [(d.window, d.seen) for d in due]
        return self.ledger.claim(self.job, wanted, self.owner, self.clock.real(), self.lease_ns)

    def renew(self, windows: Sequence[Window]) -> None:
        self.ledger.renew(self.job, windows, self.owner, self.clock.real(), self.lease_ns)

    def record(self, outcomes: Sequence[WindowOutcome]) -> None:
        results = [
            Finished(
                o.window,
                None if o.error is None else redact(o.error),
                o.points,
                o.rows,
                o.seconds,
                transient=o.transient,
            )
            for o in outcomes
        ]
        recorded = set(self.ledger.finish(self.job, results, self.owner, self.clock.real()))
        for outcome in outcomes:
            if outcome.window not in recorded:
                log.warning(
                    "the claim on this window expired and another process took it over; its rows "
                    "were written anyway (writes are idempotent)",
                    extra={"job": self.job, "window": str(outcome.window), "event": "claim_lost"},
                )

    def release(self) -> list[tuple[str, Window]]:
        """Give back everything this owner holds: owed again at once."""
        return self.ledger.release(self.owner)


class Heartbeat:
    """Renews the lease of claimed windows every third of the lease until stopped."""

    def __init__(self, claims: Claims, windows: Sequence[Window]):
        self._claims = claims
        self._windows = windows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{claims.job}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._claims.lease_ns / 3e9):
            try:
                self._claims.renew(self._windows)
            except LedgerError as exc:
                log.warning(
                    "could not renew a lease: %s",
                    exc,
                    extra={"job": self._claims.job, "event": "lease_renewal_failed"},
                )


# -- running ----------------------------------------------------------------------------------


class Breaker:
    """Counts consecutive spans that failed on the source's side, for one source: after
    ``UNREACHABLE_AFTER`` of them the run stops trying it (its windows stay owed)."""

    def __init__(self, name: str, limit: int = UNREACHABLE_AFTER):
        self.name = name
        self.limit = limit
        self._failures = 0
        self.reason: str | None = None
        """The last source error, once tripped."""

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def observe(self, outcomes: Sequence[WindowOutcome]) -> None:
        failures = [o for o in outcomes if o.cause == "source" and o.transient]
        if outcomes and len(failures) == len(outcomes):
            self._failures += 1
            if self._failures >= self.limit:
                self.reason = failures[0].error
        elif outcomes:
            self._failures = 0


def execute(
    due: Iterable[Due],
    runner: JobRunner,
    claims: Claims,
    *,
    stop: threading.Event | None = None,
    breaker: Breaker | None = None,
) -> Iterator[WindowOutcome | Skipped]:
    """Claim, run and record ``due`` span by span; yield each window's outcome, oldest first.

    ``due`` may be a lazy stream (a backfill of years of short windows): it is read a span ahead.
    Once ``stop`` is set or the ``breaker`` trips, no further span is claimed; the span in flight
    finishes. An interrupt (KeyboardInterrupt) releases the windows in flight and goes on.
    """
    for span in _spans(due, runner):
        if (stop is not None and stop.is_set()) or (breaker is not None and breaker.tripped):
            return
        claimed = set(claims.claim(span))
        for entry in span:
            if entry.window not in claimed:
                yield Skipped(entry.window)
        for run in contiguous_runs(sorted(claimed)):
            outcomes = _run(runner, claims, run)
            if breaker is not None:
                breaker.observe(outcomes)
            yield from outcomes


def _spans(due: Iterable[Due], runner: JobRunner) -> Iterator[list[Due]]:
    """The due windows cut into the spans the runner reads: contiguous, sized by the runner as it
    goes, at most ``CHUNK_WINDOWS`` read ahead."""
    pending: list[Due] = []
    for entry in due:
        if pending and (pending[-1].window.end != entry.window.start or len(pending) >= CHUNK_WINDOWS):
            yield from _cut(pending, runner)
            pending = []
        pending.append(entry)
    if pending:
        yield from _cut(pending, runner)


def _cut(pending: list[Due], runner: JobRunner) -> Iterator[list[Due]]:
    by_start = {d.window.start: d for d in pending}
    for span in runner.spans([d.window for d in pending]):
        yield [by_start[w.start] for w in span]


def _run(runner: JobRunner, claims: Claims, windows: list[Window]) -> list[WindowOutcome]:
    try:
        with Heartbeat(claims, windows):
            outcomes = runner.run_span(windows)
    except KeyboardInterrupt:
        claims.release()
        raise
    except Exception as exc:  # a bug: recorded as the window's failure, then raised
        reason = f"{type(exc).__name__}: {exc}"
        claims.record([WindowOutcome(w, 0, 0, 0.0, error=reason, cause="job") for w in windows])
        raise
    claims.record(outcomes)
    return outcomes
