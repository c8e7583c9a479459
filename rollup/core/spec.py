"""What the core needs to know about a job: plain, frozen, validated data (no file formats here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge"]
OnDecrease = Literal["drop", "reset", "wrap32", "wrap64", "auto"]
Stamp = Literal["start", "end"]

COUNTER_ONLY = frozenset({"rate", "increase"})
SIMPLE_AGGREGATES = frozenset(
    {"mean", "rate", "increase", "min", "max", "sum", "count", "last", "last_time", "stddev"}
)
DEFAULT_VALUES_MEMORY = 128 * 2**20
"""Bytes that the values kept for ``pNN`` may take in memory, per rollup, before they spill to disk."""
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")


def percentile_of(aggregate: str) -> float | None:
    """``p95`` → 95.0, ``p99.9`` → 99.9; None for other aggregates."""
    match = _PERCENTILE.fullmatch(aggregate)
    return float(match.group(1)) if match else None


def check_aggregate(aggregate: str, kind: Kind) -> None:
    """Raise ValueError if ``aggregate`` is unknown or does not apply to ``kind``."""
    percentile = percentile_of(aggregate)
    if aggregate not in SIMPLE_AGGREGATES and percentile is None:
        known = ", ".join(sorted(SIMPLE_AGGREGATES))
        raise ValueError(f"unknown aggregate {aggregate!r}: expected one of {known} or pNN (e.g. p95)")
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"invalid percentile {aggregate!r}: it must be above 0 and at most 100")
    if kind == "gauge" and aggregate in COUNTER_ONLY:
        raise ValueError(f"aggregate {aggregate!r} needs a counter: a gauge has no increase")


@dataclass(frozen=True, slots=True)
class FieldRule:
    """How one source field becomes output fields ``<output>_<aggregate>``."""

    name: str
    output: str
    kind: Kind = "counter"
    aggregates: tuple[str, ...] = ("mean",)
    on_decrease: OnDecrease = "drop"
    unit_seconds: float = 1.0
    scale: float = 1.0
    max_rate: float | None = None

    def __post_init__(self) -> None:
        if not self.aggregates:
            raise ValueError(f"field {self.name!r}: at least one aggregate is needed")
        for aggregate in self.aggregates:
            check_aggregate(aggregate, self.kind)
        if self.unit_seconds <= 0:
            raise ValueError(f"field {self.name!r}: unit must be longer than zero")

    @property
    def percentiles(self) -> tuple[str, ...]:
        return tuple(a for a in self.aggregates if percentile_of(a) is not None)


@dataclass(frozen=True, slots=True)
class RollupSpec:
    fields: tuple[FieldRule, ...]
    group_by: tuple[str, ...] | None = None
    """Tags that form a group; None means every tag (one group per series)."""
    max_gap_ns: int | None = None
    stamp: Stamp = "start"
    values_memory: int = DEFAULT_VALUES_MEMORY
    """Bytes the values kept for aggregates that need all of them may take in memory (shared by
    the fields that keep some); beyond it they go to a temporary file."""

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a rollup needs at least one field")
        if self.values_memory < 1:
            raise ValueError(f"values_memory must be positive, got {self.values_memory}")
        outputs = [f.output for f in self.fields]
        if len(set(outputs)) != len(outputs):
            raise ValueError(f"output names must be unique, got {outputs}")


def output_field(output: str, name: str) -> str:
    """``in`` + ``p99.9`` → ``in_p99_9``: no dot, which Elasticsearch would read as nesting."""
    return f"{output}_{name.replace('.', '_')}"


INTEGER_OUTPUTS = frozenset({"count", "last_time", "samples", "invalid", "resets", "gaps"})


def output_schema(spec: RollupSpec) -> dict[str, Literal["long", "double"]]:
    """Every output field a rollup can write and its type: integers stay integers in every sink."""
    schema: dict[str, Literal["long", "double"]] = {}
    for rule in spec.fields:
        names = [*list(rule.aggregates), "samples", "invalid"]
        if rule.kind == "counter":
            names += ["seconds", "resets", "gaps"]
        for name in names:
            schema[output_field(rule.output, name)] = "long" if name in INTEGER_OUTPUTS else "double"
    return schema
