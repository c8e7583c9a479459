"""What every source offers the runner."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rollup.core.batch import Batch


@dataclass(frozen=True, slots=True)
class TagMatch:
    """A condition on one tag: equal to any of ``values``, or matching ``regex``; ``negate`` inverts it."""

    values: tuple[str, ...] = ()
    regex: str | None = None
    negate: bool = False


@dataclass(frozen=True, slots=True)
class SourceQuery:
    """Raw points of some fields of one measurement in ``[start, end)`` (epoch ns), all series apart."""

    database: str
    measurement: str
    fields: tuple[str, ...]
    start: int
    end: int
    retention_policy: str | None = None
    where: Mapping[str, TagMatch] = field(default_factory=dict)
    together: tuple[str, ...] = ()
    """Tags that make a group (the job's ``group_by``): a source that reads subsets of the series
    in parallel splits on one of these when it can, so each group's rows arrive in one order."""


class Source(Protocol):
    def read(self, query: SourceQuery) -> Iterator[Batch]:
        """Batches in series order, each series time-ordered; batches of queries read at the same
        time interleave, each marked with its query (``Batch.stream``) and in series order. Raises
        SourceError on any failure, including a stream cut short (a partial read is never a short
        window)."""
        ...

    def check(self) -> None:
        """Raise SourceError unless the source answers (used by readiness checks)."""
        ...

    def close(self) -> None: ...
