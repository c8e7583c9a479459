"""The embedded ledger: one SQLite file in WAL mode (readers never wait for the writer).

Every write transaction starts with ``BEGIN IMMEDIATE``, which takes the database's write lock at
once: claims from several processes on one machine are serialised, so each window is claimed by
exactly one of them. The file must be on a local file system (WAL needs shared memory); for
several machines use PostgreSQL.

The file's identity (device and inode) is checked at the start of every transaction: a ledger
deleted or replaced while a process uses it (SQLite would go on writing to the unlinked file, and
every window recorded would be lost) fails the next transaction loudly instead.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rollup.errors import LedgerError
from rollup.ledger.sql import Row, SqlLedger, Tx

BUSY_TIMEOUT_SECONDS = 30.0


class SqliteLedger(SqlLedger):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.location = f"sqlite:{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._wal()
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._identity = _identity(path)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger {self.location}: {exc}") from exc
        self._migrate()

    def _wal(self) -> None:
        """Switch to WAL. It needs the file to itself for a moment, and SQLite does not wait for
        that (another process creating the same ledger answers "locked" at once): retry."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                self._connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _transaction(self) -> Tx:
        self._check_identity()
        return _SqliteTx(self._connection, self.location)

    def _check_identity(self) -> None:
        try:
            found = _identity(self.path)
        except FileNotFoundError:
            found = None
        if found != self._identity:
            what = "deleted" if found is None else "replaced by another file"
            raise LedgerError(
                f"the ledger {self.location} was {what} while this process was using it: the windows "
                "it recorded since may be lost and will be owed again; stop every rollup using this "
                "ledger before moving or deleting it"
            )

    def _lock_schema(self, tx: Tx) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _identity(path: Path) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_dev, found.st_ino


class _SqliteTx(Tx):
    def __init__(self, connection: sqlite3.Connection, location: str):
        self._connection = connection
        self._location = location

    def __enter__(self) -> Tx:
        self._call("BEGIN IMMEDIATE", ())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self._call("COMMIT", ())
        elif self._connection.in_transaction:
            self._connection.rollback()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._call(sql, params).fetchall()

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._call(sql, params).rowcount

    def _call(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._connection.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self._location}: {exc}") from None
