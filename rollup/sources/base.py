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


@dataclass(frozen=True, slots=True)
class SourceSchema:
    """What a source knows of a measurement (over all time)."""

    exists: bool
    measurements: tuple[str, ...] = ()
    """Every measurement of the database (to name them when the one asked for is missing)."""
    fields: dict[str, str] = field(default_factory=dict)
    """Field name → type (float, integer, string, boolean)."""
    tags: frozenset[str] = frozenset()


class Source(Protocol):
    def read(self, query: SourceQuery) -> Iterator[Batch]:
        """Batches in series order, each series time-ordered; batches of queries read at the same
        time interleave, each marked with its query (``Batch.stream``) and in series order. Raises
        SourceError on any failure, including a stream cut short (a partial read is never a short
        window)."""
        ...

    def schema(self, database: str, retention_policy: str | None, measurement: str) -> SourceSchema:
        """The measurement's fields and tags; SourceError if the source cannot tell."""
        ...

    def first_time(self, query: SourceQuery) -> int | None:
        """The time of the oldest point the query selects (None: none)."""
        ...

    def check(self) -> None:
        """Raise SourceError unless the source answers (used by readiness checks)."""
        ...

    def close(self) -> None: ...
