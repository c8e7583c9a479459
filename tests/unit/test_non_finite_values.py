"""NaN and infinite values cannot be stored in influxd 1.x (its line protocol refuses them and its JSON
cannot carry them), but another server behind the v1 API may send them in MessagePack, whose floats
can hold them: they are skipped and counted in ``<field>_invalid`` from the response to the written
line, like text and booleans.
"""

from __future__ import annotations

import math

import httpx
import msgpack

from rollup.core.pipeline import Rollup
from rollup.core.spec import FieldRule, RollupSpec, output_schema
from rollup.core.windows import Window
from rollup.influx import InfluxConnection
from rollup.sinks.line_protocol import LineProtocol
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource

S = 1_000_000_000
WINDOW = Window(0, 100 * S)
SPEC = RollupSpec(
    fields=(
        FieldRule("temp", "temp", kind="gauge", aggregates=("mean", "min", "max", "count")),
        FieldRule("octets", "in", aggregates=("mean",)),
    ),
)


def roll_up(body: str | bytes, fmt: Format) -> str:
    """The line written for ``body``, a response to a query of ``temp`` and ``octets``."""
    source = InfluxQLSource(
        InfluxConnection(url="http://influx.example:8086"),
        format=fmt,
        attempts=1,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
    )
    rollup = Rollup(SPEC, [WINDOW])
    for batch in source.read(SourceQuery("db", "m", ("temp", "octets"), WINDOW.start, WINDOW.end)):
        rollup.feed(batch)
    [result] = rollup.finish()
    [row] = result.rows
    assert all(math.isfinite(value) for value in row.values.values())
    return LineProtocol("out", output_schema(SPEC)).line(row)


def test_nan_and_infinities_in_msgpack_are_skipped_and_counted() -> None:
    values = [
        [1 * S, math.nan, 0],
        [2 * S, 20.0, 100],
        [3 * S, math.inf, 200],
        [4 * S, -math.inf, 300],
        [5 * S, 22.0, 400],
    ]
    series = {"name": "m", "tags": {"host": "a"}, "columns": ["time", "temp", "octets"], "values": values}
    body = msgpack.packb({"results": [{"statement_id": 0, "series": [series]}]})
    line = roll_up(body, "msgpack")
    assert "temp_count=2i,temp_invalid=3i,temp_max=22.0,temp_mean=21.0,temp_min=20.0,temp_samples=2i" in line
    assert "in_mean=100.0" in line
    assert "nan" not in line.lower()
    assert "inf" not in line.replace("in_", "").lower()


def test_text_and_booleans_in_json_are_skipped_and_counted() -> None:
    values = [[1 * S, "n/a", 0], [2 * S, 20, 100], [3 * S, True, 200], [4 * S, None, 300], [5 * S, 22.0, 400]]
    series = {"name": "m", "tags": {"host": "a"}, "columns": ["time", "temp", "octets"], "values": values}
    body = httpx.Response(200, json={"results": [{"statement_id": 0, "series": [series]}]}).text
    line = roll_up(body, "json")
    # a missing value (null) is not invalid: that point lacks the field
    assert "temp_count=2i,temp_invalid=2i,temp_max=22.0,temp_mean=21.0,temp_min=20.0,temp_samples=2i" in line
