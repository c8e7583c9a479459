"""The ledger in SQL, shared by the SQLite and PostgreSQL backends.

Statements are written once, with ``?`` placeholders and syntax both databases accept
(``INSERT … ON CONFLICT DO NOTHING``, ``UPDATE … RETURNING``). A backend supplies transactions
and says how to run one statement for many parameter rows.

The schema is versioned: ``rollup_schema`` holds the version, and every migration in
``MIGRATIONS`` not applied yet runs, in order, in one locked transaction when a ledger is opened.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from rollup.core.windows import Window
from rollup.errors import LedgerError
from rollup.ledger.base import (
    STATUSES,
    Finished,
    JobState,
    LatestDone,
    Ledger,
    Record,
    Seen,
    Snapshot,
    Status,
    Summary,
)

Row = tuple[Any, ...]

MIGRATIONS: list[list[str]] = [
    [  # 1: windows and per-job state
        """CREATE TABLE rollup_windows (
            job TEXT NOT NULL,
            window_start BIGINT NOT NULL,
            window_end BIGINT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'unrecoverable')),
            attempts INTEGER NOT NULL,
            failures INTEGER NOT NULL,
            last_error TEXT,
            points BIGINT NOT NULL,
            rows_written BIGINT NOT NULL,
            started BIGINT,
            finished BIGINT,
            duration DOUBLE PRECISION,
            owner TEXT,
            lease_until BIGINT,
            PRIMARY KEY (job, window_start)
        )""",
        "CREATE INDEX rollup_windows_status ON rollup_windows (job, status)",
        """CREATE TABLE rollup_jobs (
            job TEXT PRIMARY KEY,
            horizon BIGINT NOT NULL,
            unrecoverable BIGINT NOT NULL
        )""",
    ],
    [  # 2: the nature of a failure, a job's origin and its pruned windows
        "ALTER TABLE rollup_windows ADD COLUMN transient INTEGER",
        "ALTER TABLE rollup_jobs ADD COLUMN pruned BIGINT NOT NULL DEFAULT 0",
        """CREATE TABLE rollup_origins (
            job TEXT PRIMARY KEY,
            origin BIGINT NOT NULL
        )""",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)

_RECORD_COLUMNS = (
    "window_start, window_end, status, attempts, failures, last_error, points, rows_written, "
    "started, finished, duration, owner, lease_until, transient"
)
_CLAIM_NEW = """
    INSERT INTO rollup_windows (job, window_start, window_end, status, attempts, failures,
                                points, rows_written, started, owner, lease_until)
    VALUES (?, ?, ?, 'running', 1, 0, 0, 0, ?, ?, ?)
    ON CONFLICT (job, window_start) DO NOTHING
    RETURNING window_start"""
_CLAIM_SEEN = """
    UPDATE rollup_windows
    SET status = 'running', attempts = attempts + 1, window_end = ?, started = ?, finished = NULL,
        duration = NULL, owner = ?, lease_until = ?
    WHERE job = ? AND window_start = ? AND status = ? AND attempts = ?
      AND (status <> 'running' OR lease_until < ?)
    RETURNING window_start"""
_FINISH = """
    UPDATE rollup_windows
    SET status = CASE WHEN ? THEN 'done' WHEN status = 'unrecoverable' THEN 'unrecoverable'
                      ELSE 'failed' END,
        failures = CASE WHEN ? THEN 0 ELSE failures + 1 END,
        last_error = COALESCE(?, last_error),
        transient = CASE WHEN ? THEN transient ELSE ? END,
        points = ?, rows_written = ?, finished = ?, duration = ?, owner = NULL, lease_until = NULL
    WHERE job = ? AND window_start = ? AND owner = ? AND status IN ('running', 'unrecoverable')
    RETURNING window_start"""


class Tx(AbstractContextManager["Tx"]):
    """One transaction: statements with ``?`` placeholders."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; return the rows it produced (none for most writes)."""

    @abstractmethod
    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return how many rows it changed."""

    def rows_each(self, sql: str, params: Sequence[Sequence[Any]]) -> list[Row]:
        """Run one statement per parameter row; return every row they produced, in order."""
        found: list[Row] = []
        for one in params:
            found.extend(self.rows(sql, one))
        return found


class SqlLedger(Ledger):
    """Everything but connections and transactions; a backend calls ``_migrate()`` once open."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def _transaction(self) -> Tx:
        """A transaction that holds the write lock from its start (SQLite: BEGIN IMMEDIATE)."""

    @abstractmethod
    def _lock_schema(self, tx: Tx) -> None:
        """Serialise migrations between processes (inside the migration's transaction)."""

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock, self._transaction() as tx:
            self._lock_schema(tx)
            tx.count("CREATE TABLE IF NOT EXISTS rollup_schema (version INTEGER NOT NULL)")
            found = tx.rows("SELECT version FROM rollup_schema")
            version = int(found[0][0]) if found else 0
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self.location}: its schema version {version} is newer than this rollup "
                    f"knows ({SCHEMA_VERSION}): upgrade rollup, or point 'ledger' at another database"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    tx.count(statement)
            if not found:
                tx.count("INSERT INTO rollup_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                tx.count("UPDATE rollup_schema SET version = ?", (SCHEMA_VERSION,))

    def schema_version(self) -> int:
        with self._lock, self._transaction() as tx:
            return int(tx.rows("SELECT version FROM rollup_schema")[0][0])

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self, job: str, start: int, end: int) -> Snapshot:
        where = "WHERE job = ? AND window_start >= ? AND window_start < ?"
        with self._lock, self._transaction() as tx:
            done = tx.rows(
                "SELECT window_start, window_end, attempts, COALESCE(started, 0), COALESCE(finished, 0) "
                f"FROM rollup_windows {where} AND status = 'done' ORDER BY window_start",
                (job, start, end),
            )
            others = tx.rows(
                f"SELECT {_RECORD_COLUMNS} FROM rollup_windows {where} "
                "AND status IN ('running', 'failed', 'unrecoverable') "
                "ORDER BY window_start",
                (job, start, end),
            )
        table = np.asarray(done, dtype=np.int64).reshape(-1, 5)
        pending = {int(row[0]): _record(row) for row in others}
        starts, ends, attempts, started, finished = (table[:, i].copy() for i in range(5))
        return Snapshot(starts, ends, attempts, pending, started, finished)

    def count_done(self, job: str, start: int, end: int, width: int) -> int:
        # Integer division in both databases: a start on the grid is start + k·width exactly.
        with self._lock, self._transaction() as tx:
            rows = tx.rows(
                "SELECT COUNT(*) FROM rollup_windows WHERE job = ? AND window_start >= ? "
                "AND window_start < ? AND status = 'done' AND window_end - window_start = ? "
                "AND (window_start - ?) / ? * ? = window_start - ?",
                (job, start, end, width, start, width, width, start),
            )
        return int(rows[0][0])

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
        wanted = tuple(statuses or STATUSES)
        marks = ", ".join("?" for _ in wanted)
        order = "DESC" if newest_first else "ASC"
        bound = "" if limit is None else f" LIMIT {int(limit)}"
        with self._lock, self._transaction() as tx:
            rows = tx.rows(
                f"SELECT {_RECORD_COLUMNS} FROM rollup_windows WHERE job = ? AND window_start >= ? "
                f"AND window_start < ? AND status IN ({marks}) ORDER BY window_start {order}{bound}",
                (job, start, end, *wanted),
            )
        return [_record(row) for row in rows]

    def job_state(self, job: str) -> JobState:
        with self._lock, self._transaction() as tx:
            rows = tx.rows("SELECT horizon, unrecoverable, pruned FROM rollup_jobs WHERE job = ?", (job,))
            origins = tx.rows("SELECT origin FROM rollup_origins WHERE job = ?", (job,))
        origin = int(origins[0][0]) if origins else None
        if not rows:
            return JobState(None, 0, origin)
        return JobState(int(rows[0][0]), int(rows[0][1]), origin, int(rows[0][2]))

    def set_origin(self, job: str, origin: int) -> int:
        with self._lock, self._transaction() as tx:
            tx.count(
                "INSERT INTO rollup_origins (job, origin) VALUES (?, ?) ON CONFLICT (job) DO NOTHING",
                (job, origin),
            )
            return int(tx.rows("SELECT origin FROM rollup_origins WHERE job = ?", (job,))[0][0])

    def prune(self, job: str, before: int) -> int:
        where = "job = ? AND window_start < ?"
        with self._lock, self._transaction() as tx:
            done = tx.rows(
                f"SELECT COUNT(*) FROM rollup_windows WHERE {where} AND status = 'done'", (job, before)
            )
            counted = tx.count(
                "UPDATE rollup_jobs SET pruned = pruned + ? WHERE job = ?", (int(done[0][0]), job)
            )
            if not counted:  # no pass recorded the job yet: nothing is old enough
                return 0
            return tx.count(
                f"DELETE FROM rollup_windows WHERE {where} AND status IN ('done', 'unrecoverable')",
                (job, before),
            )

    def latest_done(self, job: str) -> LatestDone | None:
        with self._lock, self._transaction() as tx:
            ((newest_end, last_finished),) = tx.rows(
                "SELECT MAX(window_end), MAX(finished) FROM rollup_windows WHERE job = ? AND status = 'done'",
                (job,),
            )
        if newest_end is None:
            return None
        return LatestDone(int(newest_end), int(last_finished))

    def summary(self, job: str, now: int) -> Summary:
        with self._lock, self._transaction() as tx:
            counted = tx.rows(
                "SELECT status, COUNT(*) FROM rollup_windows WHERE job = ? "
                "AND NOT (status = 'running' AND lease_until < ?) GROUP BY status",
                (job, now),
            )
            last = tx.rows(
                f"SELECT {_RECORD_COLUMNS} FROM rollup_windows WHERE job = ? "
                "AND status IN ('failed', 'unrecoverable') AND last_error IS NOT NULL "
                "ORDER BY finished DESC, window_start DESC LIMIT 1",
                (job,),
            )
            empty = tx.rows(
                "SELECT COUNT(*) FROM rollup_windows WHERE job = ? AND status = 'done' AND points = 0", (job,)
            )
        counts: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for status, number in counted:
            counts[status] = int(number)
        return Summary(counts, _record(last[0]) if last else None, int(empty[0][0]))

    # -- writing ----------------------------------------------------------------------------

    def claim(
        self, job: str, wanted: Sequence[tuple[Window, Seen | None]], owner: str, now: int, lease_ns: int
    ) -> list[Window]:
        lease = now + lease_ns
        fresh = [(job, w.start, w.end, now, owner, lease) for w, seen in wanted if seen is None]
        known = [
            (w.end, now, owner, lease, job, w.start, seen.status, seen.attempts, now)
            for w, seen in wanted
            if seen is not None
        ]
        with self._lock, self._transaction() as tx:
            starts = {int(row[0]) for row in tx.rows_each(_CLAIM_NEW, fresh)}
            starts.update(int(row[0]) for row in tx.rows_each(_CLAIM_SEEN, known))
        return sorted((w for w, _ in wanted if w.start in starts), key=lambda w: w.start)

    def renew(self, job: str, windows: Sequence[Window], owner: str, now: int, lease_ns: int) -> int:
        if not windows:
            return 0
        with self._lock, self._transaction() as tx:
            return tx.count(
                "UPDATE rollup_windows SET lease_until = ? WHERE job = ? AND window_start >= ? "
                "AND window_start <= ? AND owner = ? AND status = 'running'",
                (now + lease_ns, job, windows[0].start, windows[-1].start, owner),
            )

    def finish(self, job: str, results: Sequence[Finished], owner: str, now: int) -> list[Window]:
        params = [
            (
                r.error is None,
                r.error is None,
                r.error,
                r.error is None,
                int(r.transient),
                r.points,
                r.rows,
                now,
                r.seconds,
                job,
                r.window.start,
                owner,
            )
            for r in results
        ]
        with self._lock, self._transaction() as tx:
            starts = {int(row[0]) for row in tx.rows_each(_FINISH, params)}
        return [r.window for r in results if r.window.start in starts]

    def release(self, owner: str) -> list[tuple[str, Window]]:
        with self._lock, self._transaction() as tx:
            rows = tx.rows(
                "UPDATE rollup_windows SET owner = NULL, lease_until = 0 "
                "WHERE owner = ? AND status = 'running' RETURNING job, window_start, window_end",
                (owner,),
            )
        return sorted((str(job), Window(int(start), int(end))) for job, start, end in rows)

    def advance_horizon(self, job: str, seen: int | None, horizon: int, lost: int, lost_from: int) -> bool:
        with self._lock, self._transaction() as tx:
            if seen is None:
                moved = tx.count(
                    "INSERT INTO rollup_jobs (job, horizon, unrecoverable) VALUES (?, ?, ?) "
                    "ON CONFLICT (job) DO NOTHING",
                    (job, horizon, lost),
                )
            else:
                moved = tx.count(
                    "UPDATE rollup_jobs SET horizon = ?, unrecoverable = unrecoverable + ? "
                    "WHERE job = ? AND horizon = ?",
                    (horizon, lost, job, seen),
                )
            if moved:
                tx.count(
                    "UPDATE rollup_windows SET status = 'unrecoverable' WHERE job = ? "
                    "AND window_start >= ? AND window_start < ? AND status IN ('failed', 'running')",
                    (job, lost_from, horizon),
                )
        return moved == 1


def _record(row: Row) -> Record:
    return Record(
        window=Window(int(row[0]), int(row[1])),
        status=row[2],
        attempts=int(row[3]),
        failures=int(row[4]),
        error=row[5],
        points=int(row[6]),
        rows=int(row[7]),
        started=None if row[8] is None else int(row[8]),
        finished=None if row[9] is None else int(row[9]),
        duration=None if row[10] is None else float(row[10]),
        owner=row[11],
        lease_until=None if row[12] is None else int(row[12]),
        transient=None if row[13] is None else bool(row[13]),
    )
