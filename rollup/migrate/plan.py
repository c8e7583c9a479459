"""The common intermediate form: what a Kapacitor task, a continuous query or a Flux task computes,
said once in rollup's terms, before any choice between ``--exact`` and recommended settings.

Each language's translator builds :class:`Plan` objects; :mod:`rollup.migrate.emit` turns them
into job files. A plan records the original's conventions (where it stamps results, whether its
windows lose their first interval, how decreases are treated) rather than settings, so that the
emitter can either reproduce them or recommend better ones and say what changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rollup.core.durations import NS_PER_SECOND, Duration, parse_duration
from rollup.core.spec import Stamp

Language = Literal["kapacitor", "cq", "flux"]
LANGUAGE_NAMES: dict[Language, str] = {
    "kapacitor": "Kapacitor task",
    "cq": "continuous query",
    "flux": "Flux task",
}

WhereValue = str | list[str] | dict[str, str | list[str]]
"""A job's ``source.where`` entry: ``"v"``, ``["a", "b"]``, ``{regex = "…"}`` or ``{not = …}``."""


@dataclass(frozen=True, slots=True)
class Output:
    """One value the original wrote: the rollup aggregate that gives it and the name it had."""

    aggregate: str
    name: str


@dataclass(frozen=True, slots=True)
class Derivative:
    unit_ns: int
    on_decrease: Literal["drop", "reset"]
    """What the original does with a decrease: drops the interval (``nonNegative``), or takes the
    counter as restarted from 0 (Flux ``initialZero``). A derivative that keeps negative rates has
    no equivalent and is refused."""


@dataclass
class FieldPlan:
    """One source field: raw values (gauge) or per-interval rates (counter), and what is kept."""

    field: str
    line: int
    derivative: Derivative | None
    outputs: list[Output]
    scale: float = 1.0

    def same_reading(self, other: FieldPlan) -> bool:
        """Whether ``other`` reads the field the same way, so both can share one ``[fields.*]``."""
        return self.field == other.field and self.derivative == other.derivative and self.scale == other.scale


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the original wrote its results."""

    kind: Literal["influxdb", "elasticsearch"]
    measurement: str
    database: str | None = None
    retention_policy: str | None = None
    org: str | None = None
    bucket: str | None = None
    url: str | None = None
    """The server's URL when the import knows it (Flux ``to(host: …)``); for Elasticsearch, the
    URL Kapacitor's ``httpPost()`` posted to (a relay), which is not the cluster's."""


@dataclass(frozen=True, slots=True)
class CheckQuery:
    """A continuous query's SELECT without INTO, for ``--check``: ``{time}`` marks where the time
    condition goes (with its own ``WHERE`` or ``AND``)."""

    database: str
    template: str
    per_window: bool
    """Run once per window, as the CQ does: a derivative in a subquery restarts at each window."""


@dataclass
class Plan:
    language: Language
    name: str
    """The original's name (task, CQ); jobs from one original get -2, -3 … by the importer."""
    file: str
    line: int
    database: str
    retention_policy: str | None
    measurement: str
    every: Duration
    group_by: list[str] | None
    fields: list[FieldPlan]
    stamp: Stamp
    first_interval_lost: bool
    """The original computes each window's rates from the window's own points only."""
    destination: Destination
    where: dict[str, WhereValue] = field(default_factory=dict)
    offset_ns: int = 0
    offset_is_delay: bool = False
    """The offset only comes from delaying the query (Kapacitor ``.offset()``), not from a wish."""
    timezone: str = "UTC"
    delay_ns: int = 0
    recompute: int = 0
    differences: list[str] = field(default_factory=list)
    """Where the numbers differ from the original's whatever the settings, and why."""
    check: CheckQuery | None = None

    @property
    def has_counters(self) -> bool:
        return any(f.derivative is not None for f in self.fields)


def fits(fields: list[FieldPlan], new: list[FieldPlan]) -> bool:
    """Whether each new field reads its source field as ``fields`` already do (or is new to them):
    a job reads a field one way, so another way needs another job."""
    return all(all(old.same_reading(item) for old in fields if old.field == item.field) for item in new)


def merge_field(fields: list[FieldPlan], new: FieldPlan) -> None:
    """Add ``new``'s outputs to the field read the same way, or add the field."""
    for old in fields:
        if old.same_reading(new):
            old.outputs.extend(o for o in new.outputs if o not in old.outputs)
            return
    fields.append(new)


class Grouping:
    """Plans gathered by key: branches with the same key and fields that fit go into one job."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self._keys: list[tuple[object, ...]] = []

    def add(
        self,
        key: tuple[object, ...],
        fields: list[FieldPlan],
        differences: list[str],
        new_plan: Callable[[], Plan],
    ) -> None:
        """Merge ``fields`` and ``differences`` into the plan of ``key`` they fit, or a new one."""
        plan = next(
            (p for p, k in zip(self.plans, self._keys, strict=True) if k == key and fits(p.fields, fields)),
            None,
        )
        if plan is None:
            plan = new_plan()
            self.plans.append(plan)
            self._keys.append(key)
        for new in fields:
            merge_field(plan.fields, new)
        for difference in differences:
            if difference not in plan.differences:
                plan.differences.append(difference)


def split_readings(fields: list[FieldPlan]) -> list[list[FieldPlan]]:
    """``fields`` in as few groups as possible with each source field read one way per group."""
    groups: list[list[FieldPlan]] = []
    for item in fields:
        group = next((g for g in groups if all(f.field != item.field for f in g)), None)
        if group is None:
            groups.append([item])
        else:
            group.append(item)
    return groups


_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_text(ns: int) -> str:
    """Nanoseconds as a rollup duration: ``1d``, ``23h``, ``1h30m``, ``250ms``; ``0s`` for zero."""
    if ns < 0:
        raise ValueError(f"negative duration {ns}ns")
    if ns == 0:
        return "0s"
    seconds, rest = divmod(ns, NS_PER_SECOND)
    if rest:
        for unit, size in (("ms", 1_000_000), ("us", 1_000), ("ns", 1)):
            if ns % size == 0:
                return f"{ns // size}{unit}"
    parts = []
    for unit, size in _UNITS:
        if unit == "w" and seconds % size:
            continue  # 10d, not 1w3d
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def window_size(ns: int = 0, months: int = 0) -> Duration:
    return parse_duration(f"{months}mo" if months else duration_text(ns))
