"""Fuzzing the InfluxDB response parser: whatever body a server sends with HTTP 200 — random bytes,
JSON or msgpack of the wrong shape, wrong columns, a valid response cut anywhere — reading it
either gives batches or raises :class:`SourceError`; nothing else escapes.

And a JSON or msgpack response cut short is never taken for a short result: reading a cut response
either fails or gives every row of the whole one (a cut that only drops trailing blank space). The
same response in msgpack reads as the same rows as in JSON.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.batch import Batch
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource

FIELDS = ("v", "w")
QUERY = SourceQuery("db", "m", FIELDS, 0, 2**62)
DEFAULT = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Pieces(httpx.SyncByteStream):
    """The body in pieces of the given sizes (the last size repeats), splitting lines anywhere."""

    def __init__(self, body: bytes, sizes: list[int]):
        self.body = body
        self.sizes = sizes

    def __iter__(self) -> Iterator[bytes]:
        position = 0
        for i in range(len(self.body)):
            if position >= len(self.body):
                return
            size = self.sizes[min(i, len(self.sizes) - 1)]
            yield self.body[position : position + size]
            position += size


def read(body: bytes, fmt: Format, sizes: list[int], chunk_size: int = 3) -> list[Batch]:
    """Every batch of ``body`` as a 200 response; a SourceError propagates, anything else fails the test."""
    source = InfluxQLSource(
        InfluxConnection(url="http://influx.example:8086"),
        chunk_size=chunk_size,
        format=fmt,
        attempts=1,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=Pieces(body, sizes))),
    )
    try:
        return list(source.read(QUERY))
    finally:
        source.close()


def rows_of(batches: list[Batch]) -> list[tuple[object, ...]]:
    """(tags, time, v, w) for every row; an absent or invalid value is None."""
    found: list[tuple[object, ...]] = []
    for batch in batches:
        keys = [key for key, n in zip(batch.keys, batch.run_lengths.tolist(), strict=True) for _ in range(n)]
        for i, key in enumerate(keys):
            values = []
            for name in FIELDS:
                column = batch.fields[name]
                usable = column.valid is None or bool(column.valid[i])
                values.append(column.values[i].item() if usable else None)
            found.append((key, int(batch.time[i]), *values))
    return found


sizes = st.lists(st.integers(1, 64), min_size=1, max_size=4)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def either(good: st.SearchStrategy[Any], one_in: int = 4) -> st.SearchStrategy[Any]:
    """Mostly the well-formed value; one time in ``one_in``, anything at all."""
    return st.integers(1, one_in).flatmap(lambda k: json_values if k == one_in else good)


tag_values = st.text(max_size=5)
cell = st.one_of(
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)


@st.composite
def series(draw: st.DrawFn) -> dict[str, Any]:
    columns = draw(either(st.permutations(["time", "v", "w"]).map(list), 8))
    width = len(columns) if isinstance(columns, list) else 3
    row = st.lists(cell, min_size=width, max_size=width)
    timed = st.tuples(st.integers(0, 10**12), row).map(lambda pair: [pair[0], *pair[1][1:]])
    return {
        "name": "m",
        "tags": draw(either(st.dictionaries(st.sampled_from(["host", "if"]), tag_values, max_size=2), 8)),
        "columns": columns,
        "values": draw(either(st.lists(either(timed, 6), max_size=4), 8)),
    }


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """One to three lines shaped like InfluxDB's chunks, any part of which may be of the wrong shape."""
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        result = {"statement_id": 0, "series": draw(either(st.lists(series(), max_size=3), 8))}
        if draw(st.booleans()):
            result["partial"] = draw(either(st.booleans(), 8))
        if draw(st.integers(1, 20)) == 20:
            result["error"] = "boom"
        document = draw(either(st.just({"results": [result]}), 10))
        lines.append(json.dumps(document).encode())  # orjson refuses integers beyond 64 bits
    return b"\n".join(lines) + b"\n"


def packable(value: Any) -> Any:
    """``value`` with integers msgpack cannot hold (beyond 64 bits) made floats."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, list):
        return [packable(v) for v in value]
    if isinstance(value, dict):
        return {k: packable(v) for k, v in value.items()}
    return value


@st.composite
def msgpack_bodies(draw: st.DrawFn) -> bytes:
    """The documents of :func:`json_bodies` as msgpack, back to back; and some of integer rows only,
    in every encoding (the fast path)."""
    documents = [orjson.loads(line) for line in draw(json_bodies()).splitlines() if line.strip()]
    if draw(st.booleans()):
        integers = st.one_of(
            st.integers(0, 2**64 - 1), st.integers(0, 300), st.integers(2**31 - 5, 2**31 + 5)
        )
        rows = st.lists(st.lists(integers, min_size=3, max_size=3), min_size=1, max_size=6)
        extra = {"name": "m", "tags": {"host": "a"}, "columns": ["time", "v", "w"], "values": draw(rows)}
        documents.append({"results": [{"statement_id": 0, "series": [extra]}]})
    return b"".join(msgpack.packb(packable(d)) for d in documents)


@st.composite
def cut(draw: st.DrawFn, bodies: st.SearchStrategy[bytes]) -> bytes:
    body = draw(bodies)
    return body[: draw(st.integers(0, len(body)))]


def any_body(fmt: Format) -> st.SearchStrategy[bytes]:
    shaped = {"json": json_bodies, "msgpack": msgpack_bodies}[fmt]()
    return st.one_of(shaped, cut(shaped), st.binary(max_size=300))


def check_never_crashes(fmt: Format, body: bytes, pieces: list[int]) -> None:
    with contextlib.suppress(SourceError):
        read(body, fmt, pieces)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@DEFAULT
@given(data=st.data(), pieces=sizes)
def test_any_body_gives_batches_or_a_source_error(
    fmt: Format, data: st.DataObject, pieces: list[int]
) -> None:
    check_never_crashes(fmt, data.draw(any_body(fmt)), pieces)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@LONG
@given(data=st.data(), pieces=sizes)
def test_any_body_gives_batches_or_a_source_error_long(
    fmt: Format, data: st.DataObject, pieces: list[int]
) -> None:
    check_never_crashes(fmt, data.draw(any_body(fmt)), pieces)


# -- a cut JSON response is never a short result ---------------------------------------------------

good_cell = st.one_of(
    st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False), st.none()
)
good_series = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(["host", "if"]), st.text(min_size=1, max_size=4), max_size=2),
        st.lists(st.tuples(good_cell, good_cell), min_size=1, max_size=5),
    ),
    min_size=1,
    max_size=4,
)


counter_cell = st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 300), st.integers(2**31 - 3, 2**31 + 3))
counter_series = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(["host", "if"]), st.text(min_size=1, max_size=4), max_size=2),
        st.lists(st.tuples(counter_cell, counter_cell), min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def influx_chunks(
    data: list[tuple[dict[str, str], list[tuple[Any, Any]]]], per_chunk: int, fmt: Format = "json"
) -> bytes:
    """The response influxd streams: at most ``per_chunk`` rows per line (document in msgpack),
    every one but the last marked partial (a series split across them is marked partial too)."""
    lines: list[dict[str, Any]] = []
    time = 0
    for tags, rows in data:
        for start in range(0, len(rows), per_chunk):
            values = []
            for v, w in rows[start : start + per_chunk]:
                time += 1
                values.append([time, v, w])
            item: dict[str, Any] = {
                "name": "m",
                "tags": tags,
                "columns": ["time", "v", "w"],
                "values": values,
            }
            if start + per_chunk < len(rows):
                item["partial"] = True
            lines.append({"statement_id": 0, "series": [item], "partial": True})
    del lines[-1]["partial"]
    if fmt == "msgpack":
        return b"".join(msgpack.packb({"results": [line]}) for line in lines)
    return b"".join(orjson.dumps({"results": [line]}) + b"\n" for line in lines)


def check_cut(
    data: list[tuple[dict[str, str], list[tuple[Any, Any]]]],
    per_chunk: int,
    at: float,
    pieces: list[int],
    fmt: Format = "json",
) -> None:
    body = influx_chunks(data, per_chunk, fmt)
    whole = rows_of(read(body, fmt, pieces))
    assert len(whole) == sum(len(rows) for _, rows in data)
    position = int(at * len(body))
    try:
        rows = rows_of(read(body[:position], fmt, pieces))
    except SourceError:
        return
    assert rows == whole, f"a response cut at byte {position} of {len(body)} read as a shorter result"


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@DEFAULT
@given(data=good_series, per_chunk=st.integers(1, 4), at=st.floats(0, 1), pieces=sizes)
def test_a_cut_response_fails_or_reads_whole(
    fmt: Format,
    data: list[tuple[dict[str, str], list[tuple[Any, Any]]]],
    per_chunk: int,
    at: float,
    pieces: list[int],
) -> None:
    check_cut(data, per_chunk, at, pieces, fmt)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@DEFAULT
@given(data=counter_series, per_chunk=st.integers(1, 4), at=st.floats(0, 1), pieces=sizes)
def test_a_cut_response_of_counters_fails_or_reads_whole(
    fmt: Format,
    data: list[tuple[dict[str, str], list[tuple[Any, Any]]]],
    per_chunk: int,
    at: float,
    pieces: list[int],
) -> None:
    check_cut(data, per_chunk, at, pieces, fmt)


@DEFAULT
@given(data=st.one_of(good_series, counter_series), per_chunk=st.integers(1, 4), pieces=sizes)
def test_msgpack_reads_the_same_rows_as_json(
    data: list[tuple[dict[str, str], list[tuple[Any, Any]]]], per_chunk: int, pieces: list[int]
) -> None:
    as_json = read(influx_chunks(data, per_chunk, "json"), "json", pieces)
    as_msgpack = read(influx_chunks(data, per_chunk, "msgpack"), "msgpack", pieces)
    assert rows_of(as_msgpack) == rows_of(as_json)
    for a, b in zip(as_json, as_msgpack, strict=True):
        assert [c.values.dtype for c in a.fields.values()] == [c.values.dtype for c in b.fields.values()]
