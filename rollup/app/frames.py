"""A job's rows as a pandas DataFrame: the table ``rollup preview`` shows, with types.

One row per (group, window), in the order of the preview: ``window_start`` and ``window_end`` are
tz-aware timestamps in the job's time zone, then the group tags (text; "" where a group lacks
one), then the output fields in the order ``rollup preview`` lists them: integers (``count``,
``samples`` …) as pandas' nullable ``Int64``, everything else as ``float64``, a missing value as
``<NA>`` / NaN. Parsing ``rollup preview --format csv`` with those types gives the same frame.

pandas is an optional dependency (the ``pandas`` extra; ``parquet`` adds pyarrow): without it, a
:class:`MissingExtraError` error says what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rollup.app.preview import tag_columns, value_columns
from rollup.core.pipeline import OutputRow
from rollup.core.spec import output_schema
from rollup.errors import ConfigError
from rollup.jobs.spec import JobSpec

if TYPE_CHECKING:
    import pandas as pd

WINDOW_COLUMNS = ("window_start", "window_end")


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message says which extra brings it."""


def _need(module: str, extra: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{purpose} needs {module}, which is not installed: pip install 'rollup[{extra}]'"
        ) from None


def to_frame(
    job: JobSpec, rows: Sequence[OutputRow], coverage: bool = False, parquet: bool = False
) -> pd.DataFrame:
    """``rows`` of ``job`` as a DataFrame (coverage columns only if asked); ``parquet``: it is
    to be written as Parquet, which needs pyarrow too."""
    pandas: Any = _need("pandas", "parquet" if parquet else "pandas", "a DataFrame")
    if parquet:
        _need("pyarrow", "parquet", "Parquet output")
    zone = job.window.timezone
    tags = tag_columns(rows)
    values = value_columns(rows, coverage)
    schema = output_schema(job.rollup)
    data: dict[str, Any] = {}
    for name, pick in (("window_start", 0), ("window_end", 1)):
        bounds = [(row.window.start, row.window.end)[pick] for row in rows]
        data[name] = pandas.to_datetime(
            pandas.Series(bounds, dtype="int64"), unit="ns", utc=True
        ).dt.tz_convert(zone)
    for tag in tags:
        data[tag] = pandas.Series([row.tags.get(tag, "") for row in rows], dtype=str)
    for name in values:
        column = [row.values.get(name) for row in rows]
        integer = schema.get(name) == "long"
        data[name] = pandas.Series(column, dtype="Int64" if integer else "float64")
    return pandas.DataFrame(data, columns=[*WINDOW_COLUMNS, *tags, *values])
