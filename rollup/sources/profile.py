"""A source profile: a buffer InfluxDB that jobs read from (``[sources.NAME]`` in the settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from rollup.durations import PositiveSpan
from rollup.influx import InfluxConnection


class SourceProfile(InfluxConnection):
    """A buffer InfluxDB that jobs read from (``[sources.NAME]``)."""

    chunk_size: int = Field(default=10_000, ge=1, le=1_000_000)
    format: Literal["msgpack", "json"] = "msgpack"
    concurrency: int = Field(default=1, ge=1, le=64)
    """Queries in flight per read, each over a subset of the series (split on one tag's values)."""
    read_ahead: int = Field(default=4, ge=0, le=1000)
    """Batches received and parsed ahead by a reader thread per query, while the last is rolled up
    (0: no thread, with ``concurrency = 1``)."""
    retries: int = Field(default=3, ge=0, description="Attempts to get an answer after the first one")
    backoff: float = Field(default=0.5, ge=0, description="Seconds before the first retry; doubles each time")
    retention: PositiveSpan | None = Field(
        default=None,
        description="How long the buffer keeps raw points; older windows are never owed",
    )

    @field_validator("format", mode="before")
    @classmethod
    def _no_csv(cls, value: object) -> object:
        if value == "csv":
            raise ValueError("format 'csv' was removed: use 'msgpack' (default) or 'json'")
        return value
