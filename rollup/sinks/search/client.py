"""The calls a search sink makes, and the only two errors a client adapter lets out.

Each adapter (``rollup.sinks.elasticsearch``, ``rollup.sinks.opensearch``) wraps its library's
client with its own retries switched off (the sink retries, with backoff and jitter, the same way
for both) and translates every library exception into :class:`UnreachableError` or :class:`HttpError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rollup.errors import ConfigError
from rollup.retry import retryable_status


class UnreachableError(Exception):
    """No answer: connection refused or reset, timeout, TLS failure."""


class HttpError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status

    @property
    def retryable(self) -> bool:
        return retryable_status(self.status)


class SearchClient(Protocol):
    def info(self) -> Mapping[str, Any]: ...

    def bulk(self, body: bytes) -> Mapping[str, Any]: ...

    def get_template(self, name: str) -> Mapping[str, Any] | None:
        """The index template's definition, or None if there is none of that name."""
        ...

    def put_template(self, name: str, body: Mapping[str, Any]) -> None: ...

    def put_mapping(self, index: str, mapping: Mapping[str, Any]) -> bool:
        """Add to an existing index's mapping; False if there is no such index."""
        ...

    def close(self) -> None: ...


def missing_library(package: str, extra: str) -> ConfigError:
    return ConfigError(
        f"the {package!r} package is not installed: install rollup with the {extra!r} extra "
        f"(pip install 'rollup[{extra}]')"
    )
