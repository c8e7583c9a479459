"""The job file format (TOML), validated with pydantic; unknown keys are errors.

A job reads some fields of one measurement from a source profile, rolls them up per window and
group, and writes ``<field>_<aggregate>`` to one or more sink profiles. See ``jobs/*.toml`` and
docs/jobs.md for every key.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cached_property

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rollup.core.durations import NS_PER_SECOND, parse_duration, parse_fixed_duration
from rollup.core.spec import (
    DEFAULT_VALUES_MEMORY,
    FieldRule,
    Kind,
    OnDecrease,
    RollupSpec,
    Stamp,
    check_aggregate,
)
from rollup.core.windows import WindowGrid, format_instant, load_zone, to_ns
from rollup.sources.base import TagMatch

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
DEFAULT_LOOKBACK = "1h"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str) -> str:
    parse_fixed_duration(value)
    return value


class TagCondition(_Strict):
    """``{ regex = "^eth" }``, ``{ not = "lo" }`` or ``{ not = ["lo", "null0"] }``."""

    regex: str | None = None
    not_: str | list[str] | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _one_kind(self) -> TagCondition:
        if (self.regex is None) == (self.not_ is None):
            raise ValueError("give exactly one of 'regex' or 'not'")
        return self


class SourceSpec(_Strict):
    profile: str = Field(description="A [sources.NAME] entry of config/rollup.toml")
    database: str
    retention_policy: str | None = None
    measurement: str
    where: dict[str, str | list[str] | TagCondition] = Field(default_factory=dict)

    @field_validator("where")
    @classmethod
    def _non_empty_lists(
        cls, value: dict[str, str | list[str] | TagCondition]
    ) -> dict[str, str | list[str] | TagCondition]:
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


class WindowSpec(_Strict):
    every: str = Field(description="Window size: 1d, 3h, 15m, 1w, 1mo, …")
    timezone: str = "UTC"
    offset: str = "0s"
    delay: str = "0s"
    lookback: str | None = None
    max_gap: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("offset", "delay", "lookback", "max_gap")
    @classmethod
    def _fixed(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _grid(self) -> WindowSpec:
        WindowGrid(self.every, self.timezone, self.offset)  # offset vs size, zero windows
        return self

    @property
    def lookback_ns(self) -> int:
        text = self.lookback if self.lookback is not None else (self.max_gap or DEFAULT_LOOKBACK)
        return parse_fixed_duration(text)

    @property
    def delay_ns(self) -> int:
        return parse_fixed_duration(self.delay)

    @property
    def max_gap_ns(self) -> int | None:
        return None if self.max_gap is None else parse_fixed_duration(self.max_gap)


class FieldSpec(_Strict):
    kind: Kind = "counter"
    on_decrease: OnDecrease = "drop"
    unit: str = "1s"
    scale: float = 1.0
    aggregates: list[str] = Field(default_factory=lambda: ["mean"], min_length=1)
    max_rate: float | None = Field(default=None, gt=0)
    output_name: str | None = Field(default=None, alias="as")

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if parse_fixed_duration(value) <= 0:
            raise ValueError("unit must be longer than zero")
        return value

    @field_validator("aggregates")
    @classmethod
    def _aggregates_fit_kind(cls, value: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("kind")
        if kind is None:  # kind itself is invalid: that error is reported
            return value
        for aggregate in value:
            check_aggregate(aggregate, kind)
        if len(set(value)) != len(value):
            raise ValueError("aggregates are listed more than once")
        return value


class ScheduleSpec(_Strict):
    """Which windows a pass owes and how failures are retried (``[schedule]``)."""

    buffer_retention: str | None = Field(
        default=None, description="Overrides the source profile's retention for this job"
    )
    recompute: int = Field(default=0, ge=0, description="Re-run the last N closed windows in every pass")
    max_windows_per_pass: int = Field(default=1000, ge=1)
    retry_backoff: str = "1m"
    retry_backoff_max: str = "1h"

    @field_validator("buffer_retention", "retry_backoff", "retry_backoff_max")
    @classmethod
    def _positive(cls, value: str | None) -> str | None:
        if value is not None and parse_fixed_duration(value) <= 0:
            raise ValueError("must be longer than zero")
        return value

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> ScheduleSpec:
        if parse_fixed_duration(self.retry_backoff_max) < parse_fixed_duration(self.retry_backoff):
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
    source: SourceSpec
    window: WindowSpec
    group_by: list[str] | None = None
    values_memory: ByteSize = Field(
        default=ByteSize(DEFAULT_VALUES_MEMORY),
        description="Memory for the values that pNN keeps; beyond it they spill to a temporary file",
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

    @cached_property
    def grid(self) -> WindowGrid:
        return WindowGrid(self.window.every, self.window.timezone, self.window.offset)

    @cached_property
    def rollup(self) -> RollupSpec:
        """The core's view of this job."""
        rules = tuple(
            FieldRule(
                name=name,
                output=spec.output_name or name,
                kind=spec.kind,
                aggregates=tuple(spec.aggregates),
                on_decrease=spec.on_decrease,
                unit_seconds=parse_fixed_duration(spec.unit) / NS_PER_SECOND,
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
