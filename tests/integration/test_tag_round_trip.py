"""Any tag value, through a real influxd and back: written with our line protocol next to values
that differ by a character, selected with our InfluxQL (an exact-match filter and its negation),
written again and read again — the value comes back unchanged, the filter selects exactly its
series and the negation exactly the others, and what line protocol cannot carry (a newline, a
trailing backslash) is refused with a SinkError naming the row, never stored altered.
"""

from __future__ import annotations

import itertools
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import SinkError
from rollup.influx import InfluxConnection
from rollup.sinks.base import OutputTarget
from rollup.sinks.influxdb import InfluxSink, InfluxSinkProfile
from rollup.sources.base import SourceQuery, TagMatch
from rollup.sources.influxdb import InfluxQLSource
from scripts.servers import RunningServer
from tests.conftest import InfluxHelper

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_790_000_000 * S
SPECIALS = " \"'\\,=\n\r\t/*.^$()[]{}|?+#;-"
values = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIALS), st.characters(codec="utf-8", exclude_characters="\x00")),
    min_size=1,
    max_size=12,
)
keys = st.sampled_from(["host", "if name", "a=b", 'q"k', "k,1", "ü"])
ROUNDS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class RoundTrip:
    """One database; each example writes its values into measurements of its own."""

    def __init__(self, server: RunningServer):
        self.influx = InfluxHelper(server, f"tags{os.getpid()}")
        self.influx.create_database(self.influx.database)
        self.examples = itertools.count()
        self.transport = httpx.HTTPTransport()  # shared: a client of its own builds a TLS context, slowly
        self.source = InfluxQLSource(InfluxConnection(url=server.url), attempts=1, transport=self.transport)

    def sink(self, measurement: str) -> InfluxSink:
        profile = InfluxSinkProfile(
            type="influxdb", url=self.influx.url, database=self.influx.database, retries=0
        )
        target = OutputTarget("tags", measurement, "1s", "UTC", None, {"v": "long"})
        return InfluxSink("out", profile, target, transport=self.transport)

    def write(self, measurement: str, key: str, value: str) -> str | None:
        """One point tagged ``key=value``; the SinkError's message if the sink refused it."""
        sink = self.sink(measurement)
        try:
            sink.write([OutputRow({key: value}, Window(T0, T0 + S), T0, {"v": 1})])
        except SinkError as error:
            return str(error)
        return None

    def read(self, measurement: str, key: str, match: TagMatch) -> set[str]:
        """The values of ``key`` of the series the filter selects."""
        query = SourceQuery(self.influx.database, measurement, ("v",), T0, T0 + S, where={key: match})
        return {dict(series)[key] for batch in self.source.read(query) for series in batch.keys}

    def check(self, key: str, value: str) -> None:
        measurement = f"raw{next(self.examples)}"
        refused = self.write(measurement, key, value)
        if "\n" in value or value.endswith("\\"):
            assert refused is not None, f"{value!r} was written"
            assert repr(value) in refused
            return
        assert refused is None, f"{value!r} refused: {refused}"
        neighbours = {value + "x", "x" + value, value[:-1], value.replace("\\", "\\\\")} - {"", value}
        written = {v for v in neighbours if self.write(measurement, key, v) is None}
        assert self.read(measurement, key, TagMatch((value,))) == {value}
        assert self.read(measurement, key, TagMatch((value,), negate=True)) == written

        again = f"again{measurement}"
        assert self.write(again, key, value) is None
        assert self.read(again, key, TagMatch((value,))) == {value}


@pytest.fixture(scope="module")
def round_trip(influxd: RunningServer) -> RoundTrip:
    return RoundTrip(influxd)


@ROUNDS
@given(key=keys, value=values)
def test_any_tag_value_round_trips_or_is_refused(round_trip: RoundTrip, key: str, value: str) -> None:
    round_trip.check(key, value)


@pytest.mark.slow
@LONG
@given(key=keys, value=values)
def test_any_tag_value_round_trips_or_is_refused_long(round_trip: RoundTrip, key: str, value: str) -> None:
    round_trip.check(key, value)
