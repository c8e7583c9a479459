"""The exceptions rollup raises, translated at the boundary where they happen.

::

    RollupError          .transient: True, False, or None when the raiser cannot tell
    ├── ConfigError      a job, profile or setting is wrong: names the file, the field and the reason
    │                    (always transient=False)
    ├── SourceError      reading raw points failed (HTTP, query error inside a 200, cut stream, bad data)
    ├── SinkError        writing aggregates failed (HTTP, rejected points or documents)
    └── LedgerError      the window ledger could not be read or updated

**Transient or not.** Every error an adapter (a source or a sink) raises says whether the same
call may succeed if simply made again later:

* ``transient=True`` — the other side is unavailable for now: connection refused or reset,
  timeout, HTTP 5xx or 429, documents of a bulk request turned away (per-item 429 or 5xx), a result
  stream cut off. The adapter has already retried it (:mod:`rollup.retry`); the window stays owed
  and a later pass tries again.
* ``transient=False`` — it fails the same way until something is fixed: HTTP 4xx (a mapping or
  field type conflict, 401/403 credentials, 404 database not found, 413 too large), a query error
  InfluxDB reports inside an HTTP 200, malformed data, a row that cannot be written, any
  :class:`ConfigError`. Retrying it soon only repeats the failure.

**Causes are kept.** An error raised while handling another is chained to it (``raise … from
exc``): the texts that reach a user are masked (:func:`rollup.secrets.redact` on messages, the
logging filter on tracebacks). ``from None`` remains only where the cause's text could hold a
secret that the masking does not know; each such place says why.

Messages never contain credentials: connections carry them in headers, never in URLs, URLs with
credentials are refused when a profile is loaded, and nothing here formats a profile's secret fields.
"""

from __future__ import annotations


class RollupError(Exception):
    """Base of every error rollup raises on purpose; ``transient`` as described above."""

    transient: bool | None

    def __init__(self, message: str, *, transient: bool | None = None):
        super().__init__(message)
        self.transient = transient


class ConfigError(RollupError):
    """Invalid configuration; nothing was started. Never transient: it needs a fix."""

    def __init__(self, message: str):
        super().__init__(message, transient=False)


class SourceError(RollupError):
    """The source could not deliver a complete, well-formed result."""


class SinkError(RollupError):
    """A sink did not accept everything it was given."""


class LedgerError(RollupError):
    """The ledger could not record or report window state."""
