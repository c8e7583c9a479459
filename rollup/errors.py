"""The exceptions rollup raises, translated at the boundary where they happen.

::

    RollupError
    ├── ConfigError      a job, profile or setting is wrong: names the file, the field and the reason
    ├── SourceError      reading raw points failed (HTTP, query error inside a 200, cut stream, bad data)
    ├── SinkError        writing aggregates failed (HTTP, rejected points or documents)
    └── LedgerError      the window ledger could not be read or updated

Messages never contain credentials: connections carry them in headers, never in URLs, and
nothing here formats a profile's secret fields.
"""

from __future__ import annotations


class RollupError(Exception):
    """Base of every error rollup raises on purpose.

    ``transient``: the failure may go away by itself (a server down, slow or busy), so a retry soon
    is worth it; otherwise (the default) it needs a fix (a typo, a refused value, a conflict).
    """

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None):
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class ConfigError(RollupError):
    """Invalid configuration; nothing was started."""


class SourceError(RollupError):
    """The source could not deliver a complete, well-formed result."""


class SinkError(RollupError):
    """A sink did not accept everything it was given."""


class LedgerError(RollupError):
    """The ledger could not record or report window state."""
