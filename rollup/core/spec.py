"""What the core needs to know about a job: plain, frozen, validated data (no file formats here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rollup.core.plugins import PluginUse

Kind = Literal["counter", "gauge"]
OnDecrease = Literal["drop", "reset", "wrap32", "wrap64", "auto"]
Stamp = Literal["start", "end"]

COUNTER_ONLY = frozenset({"rate", "increase"})
COVERAGE = frozenset({"samples", "invalid", "seconds", "resets", "gaps"})
SIMPLE_AGGREGATES = frozenset(
    {"mean", "rate", "increase", "min", "max", "sum", "count", "last", "last_time", "stddev"}
)
DEFAULT_VALUES_MEMORY = 128 * 2**20
"""Bytes that the values kept for ``pNN`` may take in memory, per rollup, before they spill to disk."""
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")
_PERCENTILE_LIKE = re.compile(r"p[\d._]+")


def percentile_of(aggregate: str) -> float | None:
    """``p95`` → 95.0, ``p99.9`` → 99.9; None for other aggregates."""
    match = _PERCENTILE.fullmatch(aggregate)
    return float(match.group(1)) if match else None


def is_builtin(aggregate: str) -> bool:
    """Whether ``aggregate`` names a built-in aggregate (``p95`` included, valid or not) or a
    coverage output (``samples`` …): a plug-in cannot take such a name."""
    return aggregate in SIMPLE_AGGREGATES | COVERAGE or _PERCENTILE_LIKE.fullmatch(aggregate) is not None


def check_aggregate(aggregate: str, kind: Kind, plugins: str = "") -> None:
    """Raise ValueError if ``aggregate`` is unknown or does not apply to ``kind``; ``plugins``
    ends the message of an unknown one (which plug-ins there are)."""
    percentile = percentile_of(aggregate)
    if aggregate not in SIMPLE_AGGREGATES and percentile is None:
        known = ", ".join(sorted(SIMPLE_AGGREGATES))
        raise ValueError(
            f"unknown aggregate {aggregate!r}: expected one of {known} or pNN (e.g. p95){plugins}"
        )
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
    plugins: tuple[PluginUse, ...] = ()
    """Plug-in aggregates, written after the built-ins (see :mod:`rollup.core.plugins`)."""

    def __post_init__(self) -> None:
        if not self.aggregates and not self.plugins:
            raise ValueError(f"field {self.name!r}: at least one aggregate is needed")
        for aggregate in self.aggregates:
            check_aggregate(aggregate, self.kind)
        names = [*self.aggregates, *(use.name for use in self.plugins)]
        if len(set(names)) != len(names):
            raise ValueError(f"field {self.name!r}: an aggregate is listed more than once: {names}")
        outputs = [*_coverage(self), *(o for use in self.plugins for o in use.outputs(self.output))]
        outputs += [output_field(self.output, a) for a in self.aggregates]
        clashes = sorted({o for o in outputs if outputs.count(o) > 1})
        if clashes:
            twice = ", ".join(clashes)
            raise ValueError(f"field {self.name!r}: output field(s) {twice} would be written twice")
        if self.unit_seconds <= 0:
            raise ValueError(f"field {self.name!r}: unit must be longer than zero")

    @property
    def percentiles(self) -> tuple[str, ...]:
        return tuple(a for a in self.aggregates if percentile_of(a) is not None)

    @property
    def keeps_values(self) -> bool:
        """Whether some aggregate needs every value of a window at once (``pNN``, a plug-in)."""
        return bool(self.percentiles) or any(not use.streaming for use in self.plugins)


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


def _coverage(rule: FieldRule) -> list[str]:
    """The coverage outputs of a field."""
    names = ["samples", "invalid", *(["seconds", "resets", "gaps"] if rule.kind == "counter" else [])]
    return [output_field(rule.output, name) for name in names]


def output_schema(spec: RollupSpec) -> dict[str, Literal["long", "double"]]:
    """Every output field a rollup can write and its type: integers stay integers in every sink."""
    schema: dict[str, Literal["long", "double"]] = {}
    for rule in spec.fields:
        names = [*list(rule.aggregates), "samples", "invalid"]
        if rule.kind == "counter":
            names += ["seconds", "resets", "gaps"]
        for name in names:
            schema[output_field(rule.output, name)] = "long" if name in INTEGER_OUTPUTS else "double"
        for use in rule.plugins:
            schema.update(dict.fromkeys(use.outputs(rule.output), "double"))
    return schema
