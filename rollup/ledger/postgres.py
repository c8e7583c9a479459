"""The ledger in PostgreSQL (psycopg 3), for several replicas sharing one ledger.

Claims are ``UPDATE … WHERE status = seen AND attempts = seen`` and ``INSERT … ON CONFLICT DO
NOTHING``: under READ COMMITTED a second replica's statement waits for the first one's row lock,
re-checks the condition on the new row and matches nothing, so a window is claimed once.
Migrations take a transaction-scoped advisory lock, so replicas starting together do not race.

The password comes from ``ledger_password_env``/``ledger_password_file`` (or the URL); it is
passed to libpq as a separate parameter and never appears in ``location`` or in messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from types import TracebackType
from typing import Any, cast

import psycopg
from psycopg import conninfo
from pydantic import SecretStr

from rollup.errors import LedgerError
from rollup.ledger.sql import Row, SqlLedger, Tx
from rollup.secrets import redact, remember

CONNECT_TIMEOUT_SECONDS = 10
_SCHEMA_LOCK = 0x726F6C6C7570  # "rollup": the advisory lock key of migrations


def describe(url: str) -> str:
    """``postgresql://user@host:port/db`` without any password, for messages."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresLedger(SqlLedger):
    def __init__(self, url: SecretStr, password: SecretStr | None = None):
        super().__init__()
        secret = url.get_secret_value()
        self.location = describe(secret)
        extra: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "rollup"}
        if password is not None:
            remember(password.get_secret_value())
            extra["password"] = password.get_secret_value()
        try:
            embedded = conninfo.conninfo_to_dict(secret).get("password")
            if embedded:
                remember(str(embedded))
            self._connection = psycopg.connect(secret, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise LedgerError(redact(f"cannot open the ledger {self.location}: {_message(exc)}")) from None
        self._migrate()

    def _transaction(self) -> Tx:
        return _PostgresTx(self._connection, self.location)

    def _lock_schema(self, tx: Tx) -> None:
        tx.rows("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def close(self) -> None:
        with self._lock:
            self._connection.close()


@lru_cache(maxsize=64)
def _native(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (no statement here holds a literal ? or %)."""
    return sql.replace("?", "%s")


def _message(exc: psycopg.Error) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class _PostgresTx(Tx):
    def __init__(self, connection: psycopg.Connection[Any], location: str):
        self._connection = connection
        self._location = location
        self._transaction: AbstractContextManager[Any] | None = None

    def __enter__(self) -> Tx:
        try:
            self._transaction = self._connection.transaction()
            self._transaction.__enter__()
        except psycopg.Error as exc:
            raise self._error(exc) from None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._transaction is not None
        try:
            self._transaction.__exit__(kind, exc, trace)
        except psycopg.Error as error:
            raise self._error(error) from None

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(_native(sql), tuple(params))
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(_native(sql), tuple(params))
                return cursor.rowcount
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def rows_each(self, sql: str, params: Sequence[Sequence[Any]]) -> list[Row]:
        """One pipelined round trip for all parameter rows instead of one per row."""
        if not params:
            return []
        found: list[Row] = []
        try:
            with self._connection.cursor() as cursor:
                cursor.executemany(_native(sql), [tuple(p) for p in params], returning=True)
                while True:
                    found.extend(cast(list[Row], cursor.fetchall()))
                    if not cursor.nextset():
                        break
        except psycopg.Error as exc:
            raise self._error(exc) from None
        return found

    def _error(self, exc: psycopg.Error) -> LedgerError:
        return LedgerError(redact(f"ledger {self._location}: {_message(exc)}"))
