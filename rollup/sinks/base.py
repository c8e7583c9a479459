"""What every sink offers the runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from rollup.core.pipeline import OutputRow


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """What a sink needs to know about the job whose rows it writes."""

    job: str
    measurement: str
    window: str
    timezone: str
    tags: tuple[str, ...] | None
    """The group tags (None: every tag of the source series)."""
    schema: Mapping[str, Literal["long", "double"]]
    """Every output field and its type."""


class Sink(Protocol):
    name: str

    def write(self, rows: Sequence[OutputRow]) -> int:
        """Write rows (all of one window or of several); return how many were written.

        Raises SinkError unless every row was stored."""
        ...

    def check(self) -> None:
        """Raise SinkError unless the sink answers."""
        ...

    def close(self) -> None: ...
