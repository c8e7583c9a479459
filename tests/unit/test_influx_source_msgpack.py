"""InfluxQLSource with ``format = "msgpack"``: the stream cut into documents, integer rows read by
numpy, everything else by the msgpack package, and every guarantee of the JSON path kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import numpy as np
import orjson
import pytest

from rollup.core.batch import Batch
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource
from rollup.sources.msgpackrows import documents

URL = "http://influx.example:8086"
QUERY = SourceQuery("telegraf", "snmp", ("v",), 0, 1000)

# What influxd 1.6.7 sent for `SELECT "v","f" FROM m GROUP BY *` (chunked=true, chunk_size=2,
# epoch=ns, Accept: application/x-msgpack), recorded: a document per chunk, back to back; times and
# integers in their smallest encoding (int32 0xd2, int64 0xd3, fixints), floats as float64.
RECORDED = bytes.fromhex(
    "81a7726573756c74739183ac73746174656d656e745f696400a67365726965739184a46e616d65a16da47461677382a4"
    "686f7374a161a26966a178a7636f6c756d6e7393a474696d65a176a166a676616c7565739293d23b9aca0001cb3ff800"
    "000000000093d300000000b2d05e00fbc0a77061727469616cc381a7726573756c74739183ac73746174656d656e745f"
    "696400a67365726965739184a46e616d65a16da47461677382a4686f7374a162a26966a0a7636f6c756d6e7393a47469"
    "6d65a176a166a676616c7565739293d23b9aca0003c093d300000000ee6b2800c0cb4004000000000000a77061727469"
    "616cc381a7726573756c74739182ac73746174656d656e745f696400a67365726965739184a46e616d65a16da4746167"
    "7382a26966a0a4686f7374a163a7636f6c756d6e7393a474696d65a176a166a676616c7565739193d23b9aca00d37fff"
    "ffffffffffffc0"
)


def pack(doc: Any) -> bytes:
    return bytes(msgpack.packb(doc))


def chunk(*items: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"statement_id": 0}
    if items:
        result["series"] = list(items)
    if partial:
        result["partial"] = True
    return {"results": [result]}


def series(
    tags: dict[str, str] | None, rows: list[list[Any]], columns: tuple[str, ...] = ("time", "v")
) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "snmp", "columns": list(columns), "values": rows}
    if tags is not None:
        data["tags"] = tags
    return data


class Pieces(httpx.SyncByteStream):
    def __init__(self, body: bytes, size: int):
        self.body = body
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]


def read(
    body: bytes, fmt: Format = "msgpack", query: SourceQuery = QUERY, size: int = 1 << 20, **options: Any
) -> list[Batch]:
    source = InfluxQLSource(
        InfluxConnection(url=URL, timeout="2s"),
        format=fmt,
        attempts=1,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=Pieces(body, size))),
        **options,
    )
    try:
        return list(source.read(query))
    finally:
        source.close()


def same(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys == y.keys
        assert x.run_lengths.tolist() == y.run_lengths.tolist()
        assert x.time.dtype == y.time.dtype
        assert x.time.tolist() == y.time.tolist()
        assert x.fields.keys() == y.fields.keys()
        for name in x.fields:
            fx, fy = x.fields[name], y.fields[name]
            assert fx.values.dtype == fy.values.dtype, name
            for attr in ("valid", "invalid"):
                mx, my = getattr(fx, attr), getattr(fy, attr)
                assert (mx is None) == (my is None), (name, attr)
                if mx is not None:
                    assert mx.tolist() == my.tolist(), (name, attr)
            usable = np.ones(len(fx.values), dtype=bool) if fx.valid is None else fx.valid
            assert fx.values[usable].tolist() == fy.values[usable].tolist(), name


def both(docs: list[dict[str, Any]], query: SourceQuery = QUERY, **options: Any) -> list[Batch]:
    """The batches of the documents sent as msgpack, checked equal to those sent as JSON."""
    as_json = read(b"".join(orjson.dumps(d) + b"\n" for d in docs), "json", query, **options)
    as_msgpack = read(b"".join(pack(d) for d in docs), "msgpack", query, **options)
    same(as_json, as_msgpack)
    return as_msgpack


# -- the request and what influxd sends -----------------------------------------------------------


def test_msgpack_format_asks_for_msgpack() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=pack(chunk()))

    source = InfluxQLSource(
        InfluxConnection(url=URL), format="msgpack", transport=httpx.MockTransport(handler)
    )
    assert list(source.read(QUERY)) == []
    assert seen[0].headers["Accept"] == "application/x-msgpack"
    assert dict(seen[0].url.params)["epoch"] == "ns"


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_a_recorded_influxd_response_reads_into_batches(size: int) -> None:
    query = SourceQuery("d", "m", ("v", "f"), 0, 2**62)
    (batch,) = read(RECORDED, query=query, size=size)
    assert batch.keys == [(("host", "a"), ("if", "x")), (("host", "b"),), (("host", "c"),)]
    assert batch.run_lengths.tolist() == [2, 2, 1]
    assert batch.time.tolist() == [10**9, 3 * 10**9, 10**9, 4 * 10**9, 10**9]
    v, f = batch.fields["v"], batch.fields["f"]
    assert v.values.dtype == np.int64
    assert v.valid is not None
    assert v.valid.tolist() == [True, True, True, False, True]
    assert v.values[v.valid].tolist() == [1, -5, 3, 2**63 - 1]
    assert f.valid is not None
    assert f.valid.tolist() == [True, False, False, True, False]
    assert f.values[f.valid].tolist() == [1.5, 2.5]


def test_documents_come_whole_whatever_the_pieces() -> None:
    docs = [
        chunk(series({"h": str(k)}, [[10**18 + i, 10**12 + i * 1000] for i in range(50)]), partial=True)
        for k in range(3)
    ]
    body = b"".join(pack(d) for d in docs)
    for size in (1, 2, 5, 64, len(body)):
        got = list(documents(Pieces(body, size)))
        assert len(got) == 3
        for doc, sent in zip(got, docs, strict=True):
            values = doc["results"][0]["series"][0]["values"]
            assert isinstance(values, np.ndarray)  # the fast path
            assert values.tolist() == sent["results"][0]["series"][0]["values"]


# -- integer rows read by numpy ------------------------------------------------------------------


@pytest.mark.parametrize(
    "numbers",
    [
        pytest.param([0, 1, 127], id="fixint"),
        pytest.param([128, 200, 255], id="uint8-int16"),
        pytest.param([2**15, 2**16 - 1], id="int16-uint16"),
        pytest.param([2**31 - 1, 2**31, 2**32 - 1], id="int32-uint32"),
        pytest.param([2**40, 2**62, 2**63 - 1], id="int64"),
    ],
)
def test_integer_rows_in_each_encoding_read_exactly(numbers: list[int]) -> None:
    # One encoding per row in turn: every row the same layout (time, v) with v from the list.
    for v in numbers:
        rows = [[10**18 + i, v] for i in range(5)]
        (batch,) = both([chunk(series({"host": "a"}, rows))])
        assert batch.fields["v"].values.dtype == np.int64
        assert batch.fields["v"].values.tolist() == [v] * 5
        assert batch.fields["v"].valid is None


def test_uint64_beyond_int64_stays_exact() -> None:
    rows = [[1, 2**63], [2, 2**64 - 1], [3, 2**63 + 5]]
    (batch,) = both([chunk(series({"host": "a"}, rows))])
    assert batch.fields["v"].values.dtype == np.uint64
    assert batch.fields["v"].values.tolist() == [2**63, 2**64 - 1, 2**63 + 5]
    assert batch.time.dtype == np.int64


def test_an_encoding_that_changes_within_a_series_reads_the_same() -> None:
    rows = [[1, 5], [2, 300], [3, 2**40], [4, 7], [5, 2**64 - 1]]
    (batch,) = both([chunk(series({"host": "a"}, rows))])
    assert batch.fields["v"].values.tolist() == [5, 300, 2**40, 7, 2**64 - 1]


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([[1, 1], [2, -5]], id="negative"),
        pytest.param([[1, 1], [2, 2.5], [3, 3]], id="float"),
        pytest.param([[1, 10], [2, None], [3, 2**63]], id="null"),
        pytest.param([[1, 5], [2, "five"], [3, True], [4, None], [5, 7.5]], id="string-bool"),
        pytest.param([[1, True], [2, False]], id="bools-alone"),
        pytest.param([[1, -1], [2, 2**63]], id="negative-and-huge"),
        pytest.param([[1, 2.0], [2, 3.0]], id="whole-floats"),
    ],
)
def test_values_convert_as_in_json(rows: list[list[Any]]) -> None:
    both([chunk(series({"host": "a"}, rows))])


def test_several_series_chunks_and_batches_read_as_in_json() -> None:
    docs = [
        chunk(series({"host": "a"}, [[1, 1], [2, 2]]), series({"host": "b"}, [[1, 3]]), partial=True),
        chunk(series({"host": "b"}, [[2, 4], [3, 2**63]]), partial=True),
        chunk(series({"host": "c", "e": ""}, [[1, None], [2, 5]]), series(None, [[9, 9]])),
    ]
    for chunk_size in (1, 2, 3, 100):
        both(docs, chunk_size=chunk_size)


def test_columns_are_matched_by_name_and_a_missing_field_is_absent() -> None:
    query = SourceQuery("telegraf", "snmp", ("a", "b", "c"), 0, 1000)
    (batch,) = both([chunk(series(None, [[5, 1, 2], [6, 3, 4]], columns=("b", "time", "a")))], query)
    assert batch.fields["a"].values.tolist() == [2, 4]
    assert batch.fields["c"].valid is not None
    assert not batch.fields["c"].valid.any()


# -- errors: as in JSON ---------------------------------------------------------------------------


def test_error_inside_a_200_is_a_source_error() -> None:
    body = pack({"results": [{"error": "database not found: telegraf"}]})
    with pytest.raises(SourceError, match="could not run the query: database not found: telegraf"):
        read(body)


def test_top_level_error_mid_stream_is_a_source_error() -> None:
    body = pack(chunk(series({"host": "a"}, [[1, 1]]), partial=True)) + pack({"error": "query interrupted"})
    with pytest.raises(SourceError, match="reported an error: query interrupted"):
        read(body)


def test_stream_ending_on_a_partial_chunk_is_a_source_error_not_a_short_result() -> None:
    body = pack(chunk(series({"host": "a"}, [[1, 1], [2, 2]]), partial=True))
    with pytest.raises(SourceError, match="marked partial: the result is incomplete"):
        read(body)


@pytest.mark.parametrize("size", [1, 3, 1 << 20])
def test_a_document_cut_anywhere_is_a_source_error(size: int) -> None:
    whole = pack(chunk(series({"host": "a"}, [[i, i * 7] for i in range(20)])))
    for cut in range(1, len(whole)):
        with pytest.raises(SourceError, match="malformed msgpack: the stream ended inside"):
            read(whole[:cut], size=size)


def test_empty_200_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="empty response"):
        read(b"")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"<html>proxy error</html>", id="not-msgpack"),
        pytest.param(b"\xa2\xff\xfe", id="bad-utf8"),
    ],
)
def test_malformed_msgpack_is_a_source_error(body: bytes) -> None:
    with pytest.raises(SourceError, match=r"malformed msgpack|unexpected"):
        read(body)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param([1, 2], id="not-a-map"),
        pytest.param({"results": 3}, id="results-not-a-list"),
        pytest.param(chunk(series(None, [[1]], columns=("v",))), id="no-time-column"),
        pytest.param(chunk(series(None, [[1, 2], [3]])), id="ragged-rows"),
        pytest.param(chunk(series(None, [[1, 2, 3], [4, 5, 6]])), id="rows-wider-than-columns"),
    ],
)
def test_unexpected_structure_is_a_source_error(doc: Any) -> None:
    with pytest.raises(SourceError, match=r"unexpected|wrong width"):
        read(pack(doc))


def test_times_that_are_not_integers_are_a_source_error() -> None:
    ext = msgpack.ExtType(5, b"\x00" * 12)  # influxd's time type, sent when epoch is not given
    for time in ("2023-11-14T22:13:20Z", ext, 1.5):
        with pytest.raises(SourceError, match="not integer epoch nanoseconds"):
            read(pack(chunk(series(None, [[time, 1]]))))


def test_an_error_status_shows_influxds_msgpack_error_text() -> None:
    body = pack({"error": "unable to parse authentication credentials"})
    source = InfluxQLSource(
        InfluxConnection(url=URL),
        format="msgpack",
        attempts=1,
        transport=httpx.MockTransport(lambda request: httpx.Response(401, content=body)),
    )
    with pytest.raises(SourceError, match=r"HTTP 401: unable to parse authentication credentials$"):
        list(source.read(QUERY))
