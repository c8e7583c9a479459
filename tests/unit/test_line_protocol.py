from __future__ import annotations

import math

import numpy as np
import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import ConfigError, SinkError
from rollup.sinks.line_protocol import LineProtocol

WINDOW = Window(1_700_000_000_000_000_000, 1_700_086_400_000_000_000)
SCHEMA = {"bytes_mean": "double", "bytes_count": "long", "bytes_seconds": "double"}


def row(tags: dict[str, str], **values: float) -> OutputRow:
    return OutputRow(tags, WINDOW, WINDOW.start, dict(values))


def test_line_with_sorted_tags_and_typed_fields() -> None:
    lines = LineProtocol("iface", SCHEMA).lines(
        [row({"site": "a", "host": "r1"}, bytes_mean=1.0, bytes_count=3, bytes_seconds=86400.0)]
    )
    assert lines == [
        f"iface,host=r1,site=a bytes_count=3i,bytes_mean=1.0,bytes_seconds=86400.0 {WINDOW.start}"
    ]


def test_types_follow_the_schema_not_the_python_value() -> None:
    line = LineProtocol("m", SCHEMA).line(
        row({}, bytes_mean=2, bytes_count=4.0, bytes_seconds=np.float64(0.5))  # type: ignore[arg-type]
    )
    assert line == f"m bytes_count=4i,bytes_mean=2.0,bytes_seconds=0.5 {WINDOW.start}"


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e20, "1e+20"), (1.5e-07, "1.5e-07"), (-0.0, "-0.0"), (0.1 + 0.2, "0.30000000000000004")],
)
def test_floats_are_written_exactly(value: float, text: str) -> None:
    assert LineProtocol("m", {"x": "double"}).line(row({}, x=value)) == f"m x={text} {WINDOW.start}"


def test_integers_keep_every_digit() -> None:
    line = LineProtocol("m", {"x_count": "long"}).line(row({}, x_count=2**63 - 1))
    assert line == f"m x_count=9223372036854775807i {WINDOW.start}"


def test_non_finite_values_are_left_out() -> None:
    line = LineProtocol("m", SCHEMA).line(row({}, bytes_mean=math.inf, bytes_count=1, bytes_seconds=math.nan))
    assert line == f"m bytes_count=1i {WINDOW.start}"


def test_a_row_with_nothing_to_write_is_refused() -> None:
    with pytest.raises(SinkError, match="no field to write"):
        LineProtocol("m", SCHEMA).line(row({"host": "r1"}, bytes_mean=math.nan))


def test_fractional_value_in_long_field_is_refused() -> None:
    with pytest.raises(SinkError, match=r"'bytes_count' is declared long but holds 2\.5"):
        LineProtocol("m", SCHEMA).line(row({"host": "r1"}, bytes_count=2.5))


def test_field_missing_from_schema_is_refused() -> None:
    with pytest.raises(SinkError, match=r"\['other'\]"):
        LineProtocol("m", SCHEMA).line(row({"host": "r1"}, bytes_mean=1.0, other=2.0))


@pytest.mark.parametrize(
    ("tags", "text"),
    [
        ({"host": "a b"}, r"host=a\ b"),
        ({"host": "a,b=c"}, r"host=a\,b\=c"),
        ({"if name": "x"}, r"if\ name=x"),
        ({"k=1,2": "v"}, r"k\=1\,2=v"),
        ({"host": 'say "hi"'}, r'host=say\ "hi"'),
        ({"host": r"C:\dir"}, r"host=C:\dir"),
        ({"host": "a\\,b"}, r"host=a\\,b"),
        ({"host": "zürich ☃"}, r"host=zürich\ ☃"),
        ({"host": "tab\there"}, "host=tab\there"),
        ({"host": "x", "empty": ""}, "host=x"),
    ],
)
def test_tag_escaping(tags: dict[str, str], text: str) -> None:
    assert LineProtocol("m", {"x": "double"}).line(row(tags, x=1.0)) == f"m,{text} x=1.0 {WINDOW.start}"


@pytest.mark.parametrize("tags", [{"host": "a\nb"}, {"host": "a\\"}, {"a\nb": "x"}, {"k\\": "x"}])
def test_unwritable_tags_are_refused_with_the_row_named(tags: dict[str, str]) -> None:
    with pytest.raises(SinkError, match="cannot be written in InfluxDB line protocol") as caught:
        LineProtocol("m", {"x": "double"}).lines([row({"site": "s1", **tags}, x=1.0)])
    assert "'site': 's1'" in str(caught.value)


def test_measurement_and_field_keys_are_escaped() -> None:
    line = LineProtocol("if stats,daily", {"a b,c=d": "double"}).line(row({}, **{"a b,c=d": 1.0}))
    assert line == rf"if\ stats\,daily a\ b\,c\=d=1.0 {WINDOW.start}"


@pytest.mark.parametrize(
    ("measurement", "schema", "message"),
    [
        ("", {"x": "double"}, "measurement cannot be empty"),
        ("#daily", {"x": "double"}, "cannot start with '#'"),
        ("a\\b", {"x": "double"}, "backslash"),
        ("m", {"x\\": "double"}, "^field .* backslash"),
        ("m", {"a\nb": "double"}, "newline"),
    ],
)
def test_unwritable_names_are_a_config_error(measurement: str, schema: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LineProtocol(measurement, schema)  # type: ignore[arg-type]
