"""Output rows as InfluxDB line protocol, with the escaping InfluxDB's parser really applies.

Checked against influxd 1.6.7 (InfluxDB 2.x derives its parser from the same Go code; the Rust
parser of 3.x was not available to check):

* tag keys and values escape ``,`` ``=`` and space with a backslash; any other backslash is kept
  as it is, so it must not be doubled (a doubled ``a\\b`` would be stored as ``a\\\\b``).
  Quotes, tabs, carriage returns and any Unicode need no escaping;
* a **newline** ends the line whatever precedes it, and a **trailing backslash** escapes the
  separator after it: neither can be written, so such a tag is refused with a
  :class:`~rollup.errors.SinkError` naming the row's tags (a line cut in two could even store a
  point under another measurement). InfluxDB cannot hold such tags either, so a source read from
  it never yields them;
* the measurement escapes ``,`` and space, field keys ``,`` ``=`` and space, but there a
  backslash before one of them is lost or breaks the line, and a measurement starting with ``#`` is
  a comment that InfluxDB silently skips. Both come from the job, so they are checked once, when
  the serializer is built, and a backslash is refused outright;
* floats are written with ``repr`` (shortest exact form, ``1.0`` stays a float, ``1e+20`` is
  accepted); ``long`` fields get the ``i`` suffix. Non-finite floats have no line-protocol form:
  like the NaN aggregates the core leaves out, they are omitted.

``influxdb_client.Point`` is not used: on influxd 1.6.7 a tag value ``a<newline>b`` it writes is
stored as ``a\\nb`` and ``a\\`` as ``a`` plus a space (silently different series), it types
fields by their Python value rather than by the job's schema, and it is slower (BENCHMARKS.md,
``python -m bench.line_protocol``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from rollup.core.pipeline import OutputRow
from rollup.errors import ConfigError, SinkError

_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})


def _needs_escape(text: str) -> bool:
    return "," in text or "=" in text or " " in text


def _check_name(what: str, name: str) -> None:
    if not name:
        raise ConfigError(f"{what} cannot be empty")
    if "\\" in name or "\n" in name:
        raise ConfigError(
            f"{what} {name!r} cannot be written to InfluxDB: it contains a backslash or newline"
        )


class LineProtocol:
    """Serializes the rows of one job: measurement and field types are fixed up front."""

    def __init__(self, measurement: str, schema: Mapping[str, Literal["long", "double"]]):
        _check_name("measurement", measurement)
        if measurement.startswith("#"):
            raise ConfigError(
                f"measurement {measurement!r} cannot start with '#': InfluxDB would skip its lines as "
                "comments"
            )
        self.measurement = measurement
        self._measurement = measurement.translate(_MEASUREMENT_ESCAPES)
        self._fields: list[tuple[str, str, bool]] = []
        for name in sorted(schema):
            _check_name("field", name)
            self._fields.append((name, name.translate(_KEY_ESCAPES) + "=", schema[name] == "long"))
        self._known = frozenset(schema)

    def lines(self, rows: Sequence[OutputRow]) -> list[str]:
        """One line per row; raises SinkError, before anything is sent, if a row cannot be written."""
        return [self.line(row) for row in rows]

    def line(self, row: OutputRow) -> str:
        values = row.values
        parts: list[str] = []
        found = 0
        for name, key, is_long in self._fields:
            value = values.get(name)
            if value is None:
                continue
            found += 1
            if is_long:
                parts.append(f"{key}{_integer(value, name, row)}i")
            else:
                number = float(value)
                if math.isfinite(number):
                    parts.append(f"{key}{number!r}")
        if found != len(values):
            unknown = sorted(set(values) - self._known)
            raise SinkError(
                f"row {row.tags!r} has fields {unknown} that the job's output schema does not declare",
                transient=False,
            )
        if not parts:
            raise SinkError(
                f"row {row.tags!r} of measurement {self.measurement!r} has no field to write", transient=False
            )
        return f"{self._measurement}{self._tags(row)} {','.join(parts)} {int(row.time)}"

    def _tags(self, row: OutputRow) -> str:
        text = ""
        for key, value in sorted(row.tags.items()):
            if not value:
                continue
            if not key:
                raise SinkError(f"row {row.tags!r}: a tag key cannot be empty", transient=False)
            for part in (key, value):
                if "\n" in part or part.endswith("\\"):
                    raise SinkError(
                        f"row {row.tags!r}: tag {key!r}={value!r} cannot be written in InfluxDB line "
                        "protocol (it contains a newline or ends with a backslash)",
                        transient=False,
                    )
            if _needs_escape(key):
                key = key.translate(_KEY_ESCAPES)
            if _needs_escape(value):
                value = value.translate(_KEY_ESCAPES)
            text += f",{key}={value}"
        return text


def _integer(value: float, name: str, row: OutputRow) -> int:
    if type(value) is int:
        return value
    if isinstance(value, float) and not value.is_integer():
        raise SinkError(
            f"row {row.tags!r}: field {name!r} is declared long but holds {value!r}", transient=False
        )
    return int(value)
