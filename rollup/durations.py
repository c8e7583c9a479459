"""Durations as configuration values: parsed once, when a file is loaded, into
:class:`rollup.core.durations.Duration` (months and nanoseconds, with the text as written).

* :data:`Span` — a fixed length, zero or more (``delay``, ``lookback``, ``offset``, ``max_gap``);
* :data:`PositiveSpan` — a fixed length above zero (``unit``, ``timeout``, ``retention`` …);
* :data:`WindowSize` — a window size above zero, calendar months allowed (``1d``, ``3h``, ``1mo``).

A value serializes back to its text, so a model dumps as it was written. In the environment a
duration is its text too (``ROLLUP_LEDGER_LEASE=2s``): pydantic-settings would otherwise read the
value of a field of a class type as JSON (``NoDecode``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema
from pydantic_settings import NoDecode

from rollup.core.durations import Duration, parse_duration


def _text(value: Any) -> str:
    if isinstance(value, Duration):
        return value.text
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 90s, 15m, 3h or 1d (got {value!r})")
    return value


def _span(value: Any) -> Duration:
    duration = parse_duration(_text(value))
    if duration.is_calendar:
        raise ValueError(f"invalid duration {duration.text!r}: a calendar month has no fixed length here")
    return duration


def _positive_span(value: Any, info: ValidationInfo) -> Duration:
    duration = _span(value)
    if duration.nanos <= 0:
        raise ValueError(f"{info.field_name or 'it'} must be longer than zero (got {duration.text!r})")
    return duration


def _window_size(value: Any) -> Duration:
    duration = parse_duration(_text(value))
    if not duration.is_calendar and duration.nanos <= 0:
        raise ValueError(f"invalid window {duration.text!r}: a window must be longer than zero")
    return duration


_AS_TEXT = PlainSerializer(lambda duration: duration.text, return_type=str)
_SCHEMA = WithJsonSchema({"type": "string", "examples": ["90s", "15m", "3h", "1d"]})

Span = Annotated[Duration, PlainValidator(_span), _AS_TEXT, _SCHEMA, NoDecode]
PositiveSpan = Annotated[Duration, PlainValidator(_positive_span), _AS_TEXT, _SCHEMA, NoDecode]
WindowSize = Annotated[Duration, PlainValidator(_window_size), _AS_TEXT, _SCHEMA, NoDecode]
