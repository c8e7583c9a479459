"""The unit of data flowing from a source into the core: one chunk of a query result.

A batch holds *runs*: consecutive rows that belong to one series (measurement + full tag set), in
time order within the run. A series may continue in the next batch (InfluxDB splits long series
across chunks), and the core carries its state across. Times are epoch nanoseconds.

Field values arrive in the dtype that keeps them exact: ``int64`` or ``uint64`` for integer counters
(from -2^63 up to 2^64 - 1), ``float64`` otherwise, or, when no one dtype keeps every value of the
batch exact, as a *mixed* column (``kinds``, see :mod:`rollup.core.numbers`). ``valid`` marks rows
whose value is a usable number (a point that lacks the field is simply not valid); ``invalid``
marks rows that carried something that is not a number (a string, a boolean), which the core skips
and counts.

A source that knows the order in which it hands series over says so (:class:`SeriesOrder`): the
core can then finish a group as soon as its last series has been read, and free what it kept for
it (:mod:`rollup.core.completion`). A source that reads several queries at once numbers them:
``stream`` tells which one a batch comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rollup.core import numbers

SeriesKey = tuple[tuple[str, str], ...]
"""A series' tags as sorted ``(key, value)`` pairs, empty values left out."""


def series_key(tags: dict[str, str]) -> SeriesKey:
    return tuple(sorted((k, v) for k, v in tags.items() if v != ""))


@dataclass(frozen=True, slots=True)
class FieldColumn:
    values: np.ndarray
    valid: np.ndarray | None = None
    invalid: np.ndarray | None = None
    kinds: np.ndarray | None = None
    """None: every value is of ``values``' dtype. Else ``values`` is uint64, each row's 64 bits read
    as ``kinds`` says (:data:`~rollup.core.numbers.INT`, ``UINT`` or ``FLOAT``)."""

    def __post_init__(self) -> None:
        numbers.check(self.values, self.kinds)


@dataclass(frozen=True, slots=True)
class SeriesOrder:
    """Within each stream, series come sorted by their values of ``tag_keys`` compared in that
    order, a tag that a series lacks counting as "" (InfluxQL's ``GROUP BY *``). ``tag_keys`` are
    sorted and name every tag a series of the read can carry. With several streams, every series
    with a given value of ``split_on`` comes in the same stream."""

    tag_keys: tuple[str, ...]
    split_on: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    keys: list[SeriesKey]
    run_lengths: np.ndarray
    time: np.ndarray
    fields: dict[str, FieldColumn] = field(default_factory=dict)
    stream: int = 0
    """Which of a source's concurrent queries the batch comes from: their batches interleave, each
    stream's in its order (its series one after the other, see :mod:`rollup.sources.base`)."""
    order: SeriesOrder | None = None
    """How the stream's series are ordered, if the source knows (None: in no known order)."""

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.run_lengths):
            raise ValueError("a batch needs one run length per series key")
        rows = int(self.run_lengths.sum()) if len(self.run_lengths) else 0
        if rows != len(self.time):
            raise ValueError(f"run lengths add up to {rows} rows but the batch has {len(self.time)} times")
        for name, column in self.fields.items():
            if len(column.values) != rows:
                raise ValueError(f"field {name!r} has {len(column.values)} values for {rows} rows")

    @property
    def rows(self) -> int:
        return len(self.time)
