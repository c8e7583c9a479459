"""The job file format (TOML), validated with pydantic; unknown keys are errors.

A job reads some fields of one measurement from a source profile, rolls them up per window and
group, and writes ``<field>_<aggregate>`` to one or more sink profiles. A job may instead read
another job's output (``[source] job = "…"``) and merge it into coarser windows and groups
(:mod:`rollup.jobs.ladder` checks the two jobs against each other). See ``jobs/*.toml`` and
docs/jobs.md for every key.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any

import re2
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rollup.core.durations import NS_PER_SECOND, Duration, parse_duration
from rollup.core.merge import NotMergeableError, upstream_aggregates
from rollup.core.plugins import PluginUse
from rollup.core.spec import (
    DEFAULT_VALUES_MEMORY,
    FieldRule,
    Kind,
    OnDecrease,
    RollupSpec,
    Stamp,
    check_aggregate,
    is_builtin,
)
from rollup.core.windows import WindowGrid, format_instant, load_zone, to_ns
from rollup.durations import PositiveSpan, Span, WindowSize
from rollup.plugins import Registry, installed
from rollup.sources.base import TagMatch
from rollup.sources.influxql import quote_regex

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
MIN_WINDOW = parse_duration("1s")
"""Shorter windows would cost more to plan and record than the points they hold."""
_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False
ZERO = parse_duration("0s")
DEFAULT_LOOKBACK = parse_duration("1h")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagCondition(_Strict):
    """``{ regex = "^eth" }``, ``{ not = "lo" }`` or ``{ not = ["lo", "null0"] }``."""

    regex: str | None = None
    not_: str | list[str] | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _one_kind(self) -> TagCondition:
        if (self.regex is None) == (self.not_ is None):
            raise ValueError("give exactly one of 'regex' or 'not'")
        return self

    @field_validator("regex")
    @classmethod
    def _re2(cls, value: str | None) -> str | None:
        """InfluxDB matches regexes with Go's RE2: check the pattern with RE2 now, not at run time."""
        if value is None:
            return value
        try:
            re2.compile(value, _RE2_QUIET)
            quote_regex(value)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise ValueError(f"invalid regex {value!r}: {reason} (InfluxDB reads RE2 syntax)") from None
        return value


def _where_kind(value: object) -> str:
    """Which form a where condition takes, so an error speaks of that form only."""
    if isinstance(value, dict | TagCondition):
        return "~condition"
    return "~values" if isinstance(value, list) else "~value"


# Tags starting with "~" are not keys: error messages leave them out of the key path.
WhereValue = Annotated[
    Annotated[str, Tag("~value")]
    | Annotated[list[str], Tag("~values")]
    | Annotated[TagCondition, Tag("~condition")],
    Discriminator(_where_kind),
]
Where = dict[str, WhereValue]


class _Filtered(_Strict):
    where: Where = Field(default_factory=dict)

    @field_validator("where")
    @classmethod
    def _non_empty_lists(cls, value: Where) -> Where:
        for tag, condition in value.items():
            if isinstance(condition, list) and not condition:
                raise ValueError(f"tag {tag!r}: an empty list matches nothing")
        return value

    def tag_matches(self) -> dict[str, TagMatch]:
        out: dict[str, TagMatch] = {}
        for tag, condition in self.where.items():
            if isinstance(condition, str):
                out[tag] = TagMatch(values=(condition,))
            elif isinstance(condition, list):
                out[tag] = TagMatch(values=tuple(condition))
            elif condition.regex is not None:
                out[tag] = TagMatch(regex=condition.regex)
            else:
                excluded = condition.not_
                values = (excluded,) if isinstance(excluded, str) else tuple(excluded or ())
                out[tag] = TagMatch(values=values, negate=True)
        return out


class SourceSpec(_Filtered):
    """Raw points of a measurement in an InfluxDB buffer."""

    profile: str = Field(description="A [sources.NAME] entry of config/rollup.toml")
    database: str
    retention_policy: str | None = None
    measurement: str

    @property
    def label(self) -> str:
        """How the source is named in messages and checks."""
        return f"source {self.profile}"


class JobSourceSpec(_Filtered):
    """Another job's output, read back from one of its InfluxDB sinks (``[source] job = "…"``)."""

    job: str = Field(description="The job whose output this job merges")
    sink: str | None = Field(
        default=None, description="The upstream's InfluxDB sink profile to read; default: its first one"
    )

    @property
    def label(self) -> str:
        return f"job {self.job}"


def _source_kind(value: Any) -> str:
    """Which source a ``[source]`` table describes: another job's output when it names a job."""
    if isinstance(value, dict):
        return "~job" if "job" in value else "~influxdb"
    return "~job" if isinstance(value, JobSourceSpec) else "~influxdb"


AnySource = Annotated[
    Annotated[SourceSpec, Tag("~influxdb")] | Annotated[JobSourceSpec, Tag("~job")],
    Discriminator(_source_kind),
]
"""``[source]``: a buffer or a job (the ``~`` tags are left out of error locations)."""


class WindowSpec(_Strict):
    every: WindowSize = Field(description="Window size: 1d, 3h, 15m, 1w, 1mo, …")
    timezone: str = "UTC"
    offset: Span = ZERO
    delay: Span = ZERO
    lookback: Span | None = None
    max_gap: Span | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("every")
    @classmethod
    def _not_too_short(cls, value: Duration) -> Duration:
        if not value.is_calendar and value.nanos < MIN_WINDOW.nanos:
            raise ValueError(f"invalid window {value.text!r}: a window must be at least {MIN_WINDOW.text}")
        return value

    @model_validator(mode="after")
    def _grid(self) -> WindowSpec:
        WindowGrid(self.every, self.timezone, self.offset)  # offset vs size, zero windows
        return self

    @property
    def lookback_ns(self) -> int:
        return (self.lookback or self.max_gap or DEFAULT_LOOKBACK).nanos

    @property
    def delay_ns(self) -> int:
        return self.delay.nanos

    @property
    def max_gap_ns(self) -> int | None:
        return None if self.max_gap is None else self.max_gap.nanos


PLUGINS_CONTEXT = "plugins"
"""The key of the validation context that holds the :class:`~rollup.plugins.Registry` a job's
plug-in aggregates are found in (default: the installed distributions' entry points)."""

Aggregate = str | dict[str, Any]
"""``"mean"``, ``"busy_hour"`` or ``{ name = "busy_hour", bucket = "1h" }``."""


def _registry(info: ValidationInfo) -> Registry:
    context = info.context
    found = context.get(PLUGINS_CONTEXT) if isinstance(context, Mapping) else None
    return found if isinstance(found, Registry) else installed()


def _named(item: Aggregate) -> tuple[str, dict[str, Any]]:
    """An aggregate's name and parameters."""
    if isinstance(item, str):
        return item, {}
    parameters = dict(item)
    name = parameters.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f'{item!r}: an aggregate with parameters needs a name (name = "busy_hour")')
    return name, parameters


def _resolve(aggregates: list[Aggregate], kind: Kind, registry: Registry) -> tuple[PluginUse, ...]:
    """The plug-ins among ``aggregates``; ValueError for an unknown aggregate or a bad parameter."""
    uses = []
    names = []
    for item in aggregates:
        name, parameters = _named(item)
        names.append(name)
        if is_builtin(name) or name not in registry:
            if parameters:
                raise ValueError(
                    f"{name}: a built-in aggregate takes no parameters (got {', '.join(parameters)})"
                )
            check_aggregate(name, kind, registry.hint())
            continue
        uses.append(registry.use(name, parameters))
    if len(set(names)) != len(names):
        raise ValueError("aggregates are listed more than once")
    return tuple(uses)


class FieldSpec(_Strict):
    kind: Kind = "counter"
    on_decrease: OnDecrease = "drop"
    unit: PositiveSpan = parse_duration("1s")
    scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    aggregates: list[Aggregate] = Field(default_factory=lambda: list[Aggregate](["mean"]), min_length=1)
    max_rate: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    output_name: str | None = Field(default=None, alias="as")
    _plugins: tuple[PluginUse, ...] = PrivateAttr(default=())

    @field_validator("aggregates")
    @classmethod
    def _aggregates_fit_kind(cls, value: list[Aggregate], info: ValidationInfo) -> list[Aggregate]:
        kind = info.data.get("kind")
        if kind is None:  # kind itself is invalid: that error is reported
            return value
        _resolve(value, kind, _registry(info))
        return value

    @model_validator(mode="after")
    def _plugins_used(self, info: ValidationInfo) -> FieldSpec:
        self._plugins = _resolve(self.aggregates, self.kind, _registry(info))  # made once: cached
        return self

    @property
    def builtins(self) -> tuple[str, ...]:
        """The built-in aggregates, in the order listed."""
        return tuple(
            item for item in self.aggregates if isinstance(item, str) and item not in self.plugin_names
        )

    @property
    def plugin_names(self) -> frozenset[str]:
        return frozenset(use.name for use in self._plugins)

    @property
    def plugins(self) -> tuple[PluginUse, ...]:
        """The plug-in aggregates, in the order listed, with their parameters."""
        return self._plugins


class ScheduleSpec(_Strict):
    """Which windows a pass owes and how failures are retried (``[schedule]``)."""

    buffer_retention: PositiveSpan | None = Field(
        default=None, description="Overrides the source profile's retention for this job"
    )
    recompute: int = Field(default=0, ge=0, description="Re-run the last N closed windows in every pass")
    max_windows_per_pass: int = Field(default=1000, ge=1)
    retry_backoff: PositiveSpan = parse_duration("1m")
    retry_backoff_max: PositiveSpan = parse_duration("1h")

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> ScheduleSpec:
        if self.retry_backoff_max.nanos < self.retry_backoff.nanos:
            raise ValueError("retry_backoff_max must not be shorter than retry_backoff")
        return self


class OutputSpec(_Strict):
    measurement: str = Field(description="InfluxDB measurement; {measurement} in a search index pattern")
    sinks: list[str] = Field(min_length=1, description="Names of sink profiles (files in sinks/)")
    timestamp: Stamp = "start"


class JobSpec(_Strict):
    name: str
    description: str = ""
    enabled: bool = True
    start: dt.datetime | dt.date | None = Field(
        default=None, description="First window owed (ISO date or time); default: the buffer retention"
    )
    source: AnySource
    window: WindowSpec
    group_by: list[str] | None = None
    values_memory: ByteSize = Field(
        default=ByteSize(DEFAULT_VALUES_MEMORY),
        description="Memory for the values that pNN and whole-window plug-ins keep; beyond it they spill "
        "to a temporary file",
    )
    fields: dict[str, FieldSpec] = Field(min_length=1)
    output: OutputSpec
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("use letters, digits, '_', '-' and '.', starting with a letter or digit")
        return value

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a tag is listed more than once")
        return value

    @field_validator("values_memory", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        try:
            size = TypeAdapter(ByteSize).validate_python(value)
        except ValidationError:
            raise ValueError(f"expected a size such as 128MiB, 1GiB or 500MB (got {value!r})") from None
        if size <= 0:
            raise ValueError(f"must be more than 0 bytes (got {value!r})")
        return size

    @model_validator(mode="after")
    def _unique_outputs(self) -> JobSpec:
        outputs = [spec.output_name or name for name, spec in self.fields.items()]
        duplicates = sorted({o for o in outputs if outputs.count(o) > 1})
        if duplicates:
            raise ValueError(f"output names must be unique: {', '.join(duplicates)} used twice (see 'as')")
        return self

    @model_validator(mode="after")
    def _merges_only(self) -> JobSpec:
        """A job reading a job merges what that job wrote: the derivative's settings are that
        job's, and percentiles cannot be merged."""
        if not isinstance(self.source, JobSourceSpec):
            return self
        for key in ("lookback", "max_gap"):
            if key in self.window.model_fields_set:
                raise ValueError(
                    f"window.{key}: a job that reads another job (source.job) merges its rows: it has "
                    "no lookback and no gaps of its own"
                )
        inherited = ("kind", "on_decrease", "unit", "scale", "max_rate")
        for name, spec in self.fields.items():
            given = [key for key in inherited if key in spec.model_fields_set]
            if given:
                raise ValueError(
                    f"fields.{name}.{given[0]}: a job that reads another job (source.job) takes kind, "
                    f"on_decrease, unit, scale and max_rate from that job's field {name!r}: leave them out"
                )
            for aggregate in spec.builtins:
                try:
                    upstream_aggregates(aggregate, merged_groups=False)
                except NotMergeableError as exc:
                    raise ValueError(f"fields.{name}.aggregates: {exc}") from None
        return self

    @property
    def upstream(self) -> str | None:
        """The job this job reads (None: it reads a buffer)."""
        return self.source.job if isinstance(self.source, JobSourceSpec) else None

    @property
    def buffer(self) -> SourceSpec:
        """The buffer this job reads; ValueError for a job that reads a job."""
        if not isinstance(self.source, SourceSpec):
            raise ValueError(f"job {self.name} reads job {self.upstream}, not a buffer")
        return self.source

    @cached_property
    def grid(self) -> WindowGrid:
        return WindowGrid(self.window.every, self.window.timezone, self.window.offset)

    @cached_property
    def rollup(self) -> RollupSpec:
        """The core's view of a job reading a buffer (a job reading a job gets its view from
        :mod:`rollup.jobs.ladder`, which knows the kinds and units of the job it reads)."""
        if self.upstream is not None:
            raise ValueError(
                f"job {self.name} reads job {self.upstream}: its rollup is a merge (jobs.ladder)"
            )
        rules = tuple(
            FieldRule(
                name=name,
                output=spec.output_name or name,
                kind=spec.kind,
                aggregates=spec.builtins,
                plugins=spec.plugins,
                on_decrease=spec.on_decrease,
                unit_seconds=spec.unit.nanos / NS_PER_SECOND,
                scale=spec.scale,
                max_rate=spec.max_rate,
            )
            for name, spec in self.fields.items()
        )
        return RollupSpec(
            fields=rules,
            group_by=None if self.group_by is None else tuple(self.group_by),
            max_gap_ns=self.window.max_gap_ns,
            stamp=self.output.timestamp,
            values_memory=int(self.values_memory),
        )

    def local_time(self, ns: int) -> str:
        """An instant as ISO 8601 in the job's time zone (how logs and tables show windows)."""
        return format_instant(ns, load_zone(self.window.timezone))

    def start_ns(self) -> int | None:
        """The configured start as epoch ns; a date means local midnight in the job's time zone."""
        if self.start is None:
            return None
        zone = load_zone(self.window.timezone)
        if isinstance(self.start, dt.datetime):
            moment = self.start if self.start.tzinfo else self.start.replace(tzinfo=zone)
        else:
            moment = dt.datetime.combine(self.start, dt.time(), tzinfo=zone)
        return to_ns(moment)
