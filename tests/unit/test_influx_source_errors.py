"""InfluxQLSource against recorded-style responses: every error path, retries and value conversion."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from rollup.core import numbers
from rollup.core.batch import Batch
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import InfluxQLSource

URL = "http://influx.example:8086"
QUERY = SourceQuery("telegraf", "snmp", ("v",), 0, 1000)
Handler = Callable[[httpx.Request], httpx.Response]


def make_source(
    handler: Handler, connection: InfluxConnection | None = None, **options: Any
) -> InfluxQLSource:
    options.setdefault("format", "json")
    options.setdefault("attempts", 3)
    options.setdefault("backoff", 0)
    return InfluxQLSource(
        connection or InfluxConnection(url=URL, timeout="2s"),
        transport=httpx.MockTransport(handler),
        **options,
    )


def series(
    tags: dict[str, str] | None, rows: list[list[Any]], columns: tuple[str, ...] = ("time", "v")
) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "snmp", "columns": list(columns), "values": rows}
    if tags is not None:
        data["tags"] = tags
    return data


def chunk(*items: dict[str, Any], partial: bool = False) -> bytes:
    result: dict[str, Any] = {"statement_id": 0}
    if items:
        result["series"] = list(items)
    if partial:
        result["partial"] = True
    return orjson.dumps({"results": [result]}) + b"\n"


def answer(body: bytes, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, content=body)


def read_all(source: InfluxQLSource, query: SourceQuery = QUERY) -> list[Batch]:
    return list(source.read(query))


class Counting:
    """A handler that answers from a list of responses (the last one repeats) and counts requests."""

    def __init__(self, *responses: httpx.Response | Exception):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses[min(len(self.requests), len(self.responses)) - 1]
        if isinstance(response, Exception):
            raise response
        return response


class BreakingStream(httpx.SyncByteStream):
    """Sends some bytes, then fails like a connection reset mid-body."""

    def __init__(self, *parts: bytes):
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


# -- the request ------------------------------------------------------------------------------------


def test_request_asks_for_chunked_ns_json_with_the_query_in_the_body() -> None:
    handler = Counting(httpx.Response(200, content=chunk()))
    read_all(make_source(handler, chunk_size=123))
    request = handler.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/query"
    assert dict(request.url.params) == {
        "db": "telegraf",
        "epoch": "ns",
        "chunked": "true",
        "chunk_size": "123",
    }
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form["q"].startswith('SELECT "v" FROM "telegraf".."snmp" WHERE time >= 0 AND time < 1000')
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Accept-Encoding"] == "identity"


def test_request_carries_basic_auth_in_a_header_not_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLUP_TEST_PW", "s3cret")
    handler = Counting(httpx.Response(200, content=chunk()))
    connection = InfluxConnection(url=URL, username="reader", password_env="ROLLUP_TEST_PW")
    read_all(make_source(handler, connection))
    request = handler.requests[0]
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert "s3cret" not in str(request.url)


# -- errors -----------------------------------------------------------------------------------------


def test_error_inside_a_200_is_a_source_error() -> None:
    body = b'{"results":[{"statement_id":0,"error":"database not found: telegraf"}]}\n'
    with pytest.raises(SourceError, match="could not run the query: database not found: telegraf"):
        read_all(make_source(answer(body)))


def test_top_level_error_line_mid_stream_is_a_source_error() -> None:
    body = chunk(series({"host": "a"}, [[1, 1]]), partial=True) + b'{"error":"query interrupted"}\n'
    with pytest.raises(SourceError, match="reported an error: query interrupted"):
        read_all(make_source(answer(body)))


def test_stream_ending_on_a_partial_chunk_is_a_source_error_not_a_short_result() -> None:
    body = chunk(series({"host": "a"}, [[1, 1], [2, 2]]), partial=True)
    with pytest.raises(SourceError, match="marked partial: the result is incomplete"):
        read_all(make_source(answer(body)))


def test_cut_stream_raises_after_the_batches_already_yielded() -> None:
    body = chunk(series({"host": "a"}, [[1, 1]]), partial=True) + chunk(
        series({"host": "b"}, [[1, 1]]), partial=True
    )
    received: list[Batch] = []
    with pytest.raises(SourceError, match="incomplete"):
        received.extend(make_source(answer(body), chunk_size=1).read(QUERY))
    assert [batch.keys for batch in received] == [[(("host", "a"),)], [(("host", "b"),)]]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"results":[{"statement_id":0,"series":[', id="truncated-document"),
        pytest.param(b"<html>proxy error</html>\n", id="not-json"),
        pytest.param(chunk(series(None, [[1, 1]])) + b"{oops}\n", id="garbage-after-a-chunk"),
    ],
)
def test_malformed_json_is_a_source_error(body: bytes) -> None:
    with pytest.raises(SourceError, match="malformed JSON"):
        read_all(make_source(answer(body)))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[1, 2]\n", id="not-an-object"),
        pytest.param(b'{"results": 3}\n', id="results-not-a-list"),
        pytest.param(
            b'{"results":[{"series":[{"name":"m","columns":["v"],"values":[[1]]}]}]}\n', id="no-time-column"
        ),
        pytest.param(
            b'{"results":[{"series":[{"name":"m","columns":["time","v"],"values":[[1,2],[3]]}]}]}\n',
            id="ragged-rows",
        ),
    ],
)
def test_unexpected_json_structure_is_a_source_error(body: bytes) -> None:
    with pytest.raises(SourceError, match=r"unexpected|wrong width"):
        read_all(make_source(answer(body)))


def test_empty_200_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="empty response"):
        read_all(make_source(answer(b"")))


def test_non_integer_time_is_a_source_error() -> None:
    body = chunk(series(None, [["2023-11-14T22:13:20Z", 1]]))
    with pytest.raises(SourceError, match="not integer epoch nanoseconds"):
        read_all(make_source(answer(body)))


def test_401_names_status_and_influx_error_and_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLUP_TEST_PW", "hunter2-secret")
    handler = Counting(httpx.Response(401, json={"error": "authorization failed"}))
    connection = InfluxConnection(url=URL, username="admin", password_env="ROLLUP_TEST_PW")
    with pytest.raises(SourceError) as caught:
        read_all(make_source(handler, connection))
    message = str(caught.value)
    assert "HTTP 401: authorization failed" in message
    assert URL in message
    assert "hunter2-secret" not in message
    assert base64.b64encode(b"admin:hunter2-secret").decode() not in message
    assert len(handler.requests) == 1


def test_500_then_success_is_retried() -> None:
    handler = Counting(
        httpx.Response(500, json={"error": "engine busy"}),
        httpx.Response(503, content=b"unavailable"),
        httpx.Response(200, content=chunk(series({"host": "a"}, [[1, 7]]))),
    )
    batches = read_all(make_source(handler))
    assert len(handler.requests) == 3
    assert batches[0].fields["v"].values.tolist() == [7]


def test_500_every_time_gives_up_after_the_attempts() -> None:
    handler = Counting(httpx.Response(500, json={"error": "engine busy"}))
    with pytest.raises(SourceError, match=r"HTTP 500: engine busy \(tried 3 times\)"):
        read_all(make_source(handler))
    assert len(handler.requests) == 3


def test_connection_error_then_success_is_retried() -> None:
    handler = Counting(
        httpx.ConnectError("[Errno 111] Connection refused"), httpx.Response(200, content=chunk())
    )
    assert read_all(make_source(handler)) == []
    assert len(handler.requests) == 2


def test_connection_refused_names_the_url() -> None:
    handler = Counting(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(
        SourceError, match=f"cannot connect to InfluxDB at {URL}: .*Connection refused.*tried 2"
    ):
        read_all(make_source(handler, attempts=2))
    assert len(handler.requests) == 2


def test_connection_refused_by_a_real_closed_port() -> None:
    from scripts.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    source = InfluxQLSource(InfluxConnection(url=url, timeout="2s"), format="json", attempts=2, backoff=0)
    with pytest.raises(SourceError, match=f"cannot connect to InfluxDB at {url}"):
        read_all(source)


def test_timeout_names_the_url_and_the_timeout() -> None:
    handler = Counting(httpx.ReadTimeout("timed out"))
    with pytest.raises(SourceError, match=f"InfluxDB at {URL} did not answer within 2s"):
        read_all(make_source(handler))
    assert len(handler.requests) == 3


def test_backoff_waits_between_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", sleeps.append)
    handler = Counting(httpx.ConnectError("refused"))
    with pytest.raises(SourceError):
        read_all(make_source(handler, attempts=4, backoff=0.5))
    assert len(sleeps) == 3
    assert all(0.5 <= s <= 8.5 for s in sleeps)
    assert sleeps[2] >= 2.0  # exponential: 0.5, 1, 2 (+ jitter)


def test_stream_broken_mid_body_is_a_source_error_and_not_retried() -> None:
    stream = BreakingStream(chunk(series({"host": "a"}, [[1, 1]]), partial=True))
    handler = Counting(httpx.Response(200, stream=stream))
    batches = make_source(handler, chunk_size=1).read(QUERY)
    assert next(batches).rows == 1
    with pytest.raises(SourceError, match="broke off"):
        next(batches)
    assert len(handler.requests) == 1


def test_check_pings() -> None:
    handler = Counting(httpx.Response(204))
    make_source(handler).check()
    assert handler.requests[0].url.path == "/ping"


def test_check_reports_an_unreachable_server() -> None:
    with pytest.raises(SourceError, match=f"cannot reach InfluxDB at {URL}"):
        make_source(Counting(httpx.ConnectError("refused"))).check()


def test_check_reports_an_unexpected_status() -> None:
    with pytest.raises(SourceError, match="/ping with HTTP 502"):
        make_source(Counting(httpx.Response(502, content=b"bad gateway"))).check()


# -- batches and values -----------------------------------------------------------------------------


def mask(array: np.ndarray | None) -> list[bool] | None:
    return None if array is None else [bool(x) for x in array]


def one_column(rows: list[list[Any]]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    values, valid, invalid, _ = one_column_and_kinds(rows)
    return values, valid, invalid


def one_column_and_kinds(
    rows: list[list[Any]],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    (batch,) = read_all(make_source(answer(chunk(series({"host": "a"}, rows)))))
    column = batch.fields["v"]
    return column.values, column.valid, column.invalid, column.kinds


def test_integers_stay_int64_and_exact() -> None:
    values, valid, invalid = one_column([[1, 2**62 + 1], [2, -5]])
    assert values.dtype == np.int64
    assert values.tolist() == [2**62 + 1, -5]
    assert valid is None
    assert invalid is None


def test_integers_from_2_to_the_63_become_exact_uint64() -> None:
    values, _, _ = one_column([[1, 2**64 - 1], [2, 2**63], [3, 0]])
    assert values.dtype == np.uint64
    assert values.tolist() == [2**64 - 1, 2**63, 0]


def test_negative_and_huge_integers_together_stay_exact_in_a_mixed_column() -> None:
    values, _, _, kinds = one_column_and_kinds([[1, -(2**62) - 1], [2, 2**63 + 1], [3, 7]])
    assert kinds is not None
    assert numbers.python_values(values, kinds) == [-(2**62) - 1, 2**63 + 1, 7]


def test_an_integer_beyond_2_pow_53_among_floats_stays_exact() -> None:
    values, _, _, kinds = one_column_and_kinds([[1, 2**60 + 1], [2, 2.5], [3, -(2**62) - 3]])
    assert kinds is not None
    assert numbers.python_values(values, kinds) == [2**60 + 1, 2.5, -(2**62) - 3]


def test_small_integers_among_floats_are_their_floats() -> None:
    values, _, _, kinds = one_column_and_kinds([[1, 2**53 - 1], [2, 0.5]])
    assert kinds is None
    assert values.dtype == np.float64
    assert values.tolist() == [float(2**53 - 1), 0.5]


def test_a_float_makes_the_column_float64() -> None:
    values, valid, _ = one_column([[1, 1], [2, 2.5], [3, 3]])
    assert values.dtype == np.float64
    assert values.tolist() == [1.0, 2.5, 3.0]
    assert valid is None


def test_nulls_are_absent_not_invalid() -> None:
    values, valid, invalid = one_column([[1, 10], [2, None], [3, 2**63]])
    assert values.dtype == np.uint64
    assert values[[0, 2]].tolist() == [10, 2**63]
    assert mask(valid) == [True, False, True]
    assert mask(invalid) == [False, False, False]


def test_strings_and_bools_are_invalid_and_numbers_around_them_kept() -> None:
    values, valid, invalid = one_column([[1, 5], [2, "five"], [3, True], [4, None], [5, 7.5]])
    assert values.dtype == np.float64
    assert values[[0, 4]].tolist() == [5.0, 7.5]
    assert mask(valid) == [True, False, False, False, True]
    assert mask(invalid) == [False, True, True, False, False]


def test_bools_alone_are_invalid_not_ones() -> None:
    _, valid, invalid = one_column([[1, True], [2, False]])
    assert mask(valid) == [False, False]
    assert mask(invalid) == [True, True]


def test_only_nulls_give_no_valid_value() -> None:
    _, valid, invalid = one_column([[1, None], [2, None]])
    assert mask(valid) == [False, False]
    assert mask(invalid) == [False, False]


def test_big_times_stay_exact() -> None:
    t = 1_700_000_000_123_456_789
    (batch,) = read_all(make_source(answer(chunk(series(None, [[t, 1], [t + 1, 2.5]])))))
    assert batch.time.dtype == np.int64
    assert batch.time.tolist() == [t, t + 1]


def test_series_keys_drop_empty_tags_and_sort() -> None:
    body = chunk(series({"z": "1", "a": "x", "empty": ""}, [[1, 1]]), series(None, [[2, 2]]))
    (batch,) = read_all(make_source(answer(body)))
    assert batch.keys == [(("a", "x"), ("z", "1")), ()]
    assert batch.run_lengths.tolist() == [1, 1]


def test_small_chunks_are_gathered_into_batches_of_chunk_size_rows() -> None:
    body = b"".join(chunk(series({"host": f"h{i}"}, [[1, i], [2, i]]), partial=i < 4) for i in range(5))
    batches = read_all(make_source(answer(body), chunk_size=4))
    assert [b.rows for b in batches] == [4, 4, 2]
    assert [len(b.keys) for b in batches] == [2, 2, 1]


def test_a_series_split_across_chunks_is_one_run_within_a_batch() -> None:
    body = (
        chunk(series({"host": "a"}, [[1, 1], [2, 2]]), partial=True)
        + chunk(series({"host": "a"}, [[3, 3]]), partial=True)
        + chunk(series({"host": "b"}, [[1, 9]]))
    )
    (batch,) = read_all(make_source(answer(body)))
    assert batch.keys == [(("host", "a"),), (("host", "b"),)]
    assert batch.run_lengths.tolist() == [3, 1]
    assert batch.time.tolist() == [1, 2, 3, 1]


def test_columns_are_matched_by_name_and_a_missing_field_is_absent() -> None:
    query = SourceQuery("telegraf", "snmp", ("a", "b", "c"), 0, 1000)
    body = chunk(series(None, [[5, 1, 2], [6, 3, 4]], columns=("b", "time", "a")))
    (batch,) = read_all(make_source(answer(body)), query)
    assert batch.time.tolist() == [1, 3]
    assert batch.fields["a"].values.tolist() == [2, 4]
    assert batch.fields["b"].values.tolist() == [5, 6]
    assert mask(batch.fields["c"].valid) == [False, False]
    assert mask(batch.fields["c"].invalid) == [False, False]


def test_a_line_separator_inside_a_tag_value_does_not_split_the_stream() -> None:
    body = chunk(series({"descr": "a\u0085b\u2028c"}, [[1, 1]]))
    (batch,) = read_all(make_source(answer(body)))
    assert batch.keys == [(("descr", "a\u0085b\u2028c"),)]


def test_a_result_without_series_gives_no_batch() -> None:
    assert read_all(make_source(answer(chunk()))) == []


class Pieces(httpx.SyncByteStream):
    """A body delivered in pieces of ``size`` bytes, splitting lines and UTF-8 sequences."""

    def __init__(self, body: bytes, size: int):
        self.body = body
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]


@pytest.mark.parametrize("size", [1, 3, 64])
def test_a_body_arriving_in_small_pieces_reads_the_same(size: int) -> None:
    body = (
        chunk(series({"host": "ü"}, [[1, 1], [2, 2]]), partial=True)
        + chunk(series({"host": "ü"}, [[3, 3]]), partial=True)
        + chunk(series({"host": "ñ\u2028"}, [[1, 4]]))
    )
    handler = Counting(httpx.Response(200, stream=Pieces(body, size)))
    (batch,) = read_all(make_source(handler))
    assert batch.keys == [(("host", "ü"),), (("host", "ñ\u2028"),)]
    assert batch.run_lengths.tolist() == [3, 1]
    assert batch.fields["v"].values.tolist() == [1, 2, 3, 4]
