"""Window ledgers behind one interface (``rollup.ledger.base.Ledger``): SQLite and PostgreSQL.

``open_ledger`` picks the backend from the URL:

* ``sqlite:///var/lib/rollup/ledger.sqlite`` (absolute) or ``sqlite:state/ledger.sqlite``
  (relative to the working directory): an embedded file, the default;
* ``postgresql://user@host:5432/dbname?sslmode=require`` (or ``postgres://``): a shared database
  for several replicas; psycopg 3 is needed (``pip install 'rollup[postgres]'``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from rollup.errors import ConfigError
from rollup.ledger.base import Ledger

SCHEMES = "sqlite:PATH, sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST:PORT/DBNAME"


def ledger_scheme(url: str) -> str:
    """``sqlite`` or ``postgresql``; ValueError (without the URL, it may hold a password) otherwise."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not sqlite_path(url).name:
            raise ValueError(f"a sqlite ledger needs a file name: expected {SCHEMES}")
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"unsupported ledger URL scheme {scheme!r}: expected {SCHEMES}")


def sqlite_path(url: str) -> Path:
    rest = url.split(":", 1)[1]
    return Path(rest[2:] if rest.startswith("//") else rest)


def open_ledger(url: SecretStr, password: SecretStr | None = None) -> Ledger:
    """The ledger at ``url`` (created and migrated to the current schema if needed)."""
    text = url.get_secret_value()
    try:
        scheme = ledger_scheme(text)
    except ValueError as exc:
        raise ConfigError(f"ledger: {exc}") from None
    if scheme == "sqlite":
        if password is not None:
            raise ConfigError("ledger: a sqlite ledger takes no password (ledger_password_env/_file)")
        from rollup.ledger.sqlite import SqliteLedger

        return SqliteLedger(sqlite_path(text))
    try:
        from rollup.ledger.postgres import PostgresLedger
    except ImportError:
        raise ConfigError(
            "ledger: a PostgreSQL ledger needs psycopg 3: pip install 'rollup[postgres]'"
        ) from None
    return PostgresLedger(url, password)
