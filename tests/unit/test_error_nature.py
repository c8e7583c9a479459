"""Every error a source or a sink raises says whether it is transient (worth trying again soon) or
needs a fix, and keeps its cause: a 400 mapping conflict must not back off like a 503."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator

import httpx
import msgpack
import orjson
import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import ConfigError, LedgerError, RollupError, SinkError, SourceError
from rollup.influx import InfluxConnection
from rollup.sinks.base import OutputTarget
from rollup.sinks.elasticsearch import ElasticsearchSink, ElasticsearchSinkProfile
from rollup.sinks.influxdb import InfluxSink, InfluxSinkProfile
from rollup.sinks.opensearch import OpenSearchSink, OpenSearchSinkProfile
from rollup.sinks.search.client import HttpError, UnreachableError
from rollup.sinks.search.sink import SearchSink
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import InfluxQLSource
from scripts.servers import free_port
from tests.unit.scripted_cluster import Cluster, error, item_statuses

URL = "http://influx.example:8086"
QUERY = SourceQuery("telegraf", "snmp", ("v",), 0, 1000)
WINDOW = Window(1_793_491_200 * 10**9, 1_793_577_600 * 10**9)
TARGET = OutputTarget("bw", "bw_daily", "1d", "UTC", ("host",), {"in_mean": "double", "in_samples": "long"})
Answer = httpx.Response | Exception


def rows(count: int = 2) -> list[OutputRow]:
    return [
        OutputRow({"host": f"h{i}"}, WINDOW, WINDOW.start, {"in_mean": 0.5 * i, "in_samples": i})
        for i in range(count)
    ]


def scripted(*answers: Answer) -> httpx.MockTransport:
    """Answers in turn (the last one repeats)."""
    remaining = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle)


# -- the error tree ---------------------------------------------------------------------------------


def test_the_nature_is_unknown_unless_said_and_a_config_error_is_never_transient() -> None:
    assert RollupError("x").transient is None
    assert LedgerError("x").transient is None
    assert SourceError("x", transient=True).transient is True
    assert SinkError("x", transient=False).transient is False
    assert ConfigError("x").transient is False
    assert str(SinkError("a message", transient=True)) == "a message"


@pytest.mark.parametrize("error", [SinkError("down", transient=True), ConfigError("typo")])
def test_the_nature_survives_pickling(error: RollupError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.transient) == (type(error), str(error), error.transient)


# -- the InfluxDB source ----------------------------------------------------------------------------


def read(*answers: Answer, fmt: str = "json") -> SourceError:
    source = InfluxQLSource(
        InfluxConnection(url=URL, timeout="2s"),
        format=fmt,  # type: ignore[arg-type]
        attempts=2,
        backoff=0,
        transport=scripted(*answers),
    )
    with pytest.raises(SourceError) as raised:
        list(source.read(QUERY))
    return raised.value


def chunk(partial: bool = False) -> dict[str, object]:
    series = {"name": "snmp", "tags": {"host": "a"}, "columns": ["time", "v"], "values": [[1, 1]]}
    result: dict[str, object] = {"statement_id": 0, "series": [series]}
    if partial:
        result["partial"] = True
    return {"results": [result]}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), "cannot connect", id="refused"),
        pytest.param(httpx.ReadTimeout("timed out"), "did not answer within 2s", id="timeout"),
        pytest.param(httpx.Response(503, json={"error": "busy"}), "HTTP 503: busy", id="503"),
        pytest.param(httpx.Response(429, json={"error": "too many"}), "HTTP 429: too many", id="429"),
        pytest.param(
            httpx.Response(200, content=orjson.dumps(chunk(partial=True)) + b"\n"),
            "marked partial",
            id="partial",
        ),
        pytest.param(httpx.Response(200, content=b""), "empty response", id="empty"),
        pytest.param(
            httpx.Response(200, content=orjson.dumps(chunk(partial=True)) + b'\n{"results":[{"statement'),
            "malformed JSON",
            id="cut-inside-a-document",
        ),
    ],
)
def test_a_source_that_is_unreachable_overloaded_or_cut_short_is_transient(
    answer: Answer, expected: str
) -> None:
    failure = read(answer)
    assert expected in str(failure)
    assert failure.transient is True


def test_a_msgpack_stream_cut_inside_a_document_is_transient_and_garbage_is_not() -> None:
    whole = msgpack.packb(chunk())
    cut = read(httpx.Response(200, content=whole[: len(whole) - 3]), fmt="msgpack")
    assert "malformed msgpack" in str(cut)
    assert cut.transient is True
    garbage = read(httpx.Response(200, content=b"\xc1\xc1\xc1"), fmt="msgpack")
    assert garbage.transient is False


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(httpx.Response(401, json={"error": "authorization failed"}), "HTTP 401", id="401"),
        pytest.param(httpx.Response(404, json={"error": "database not found"}), "HTTP 404", id="404"),
        pytest.param(httpx.Response(400, json={"error": "error parsing query"}), "HTTP 400", id="400"),
        pytest.param(
            httpx.Response(
                200, json={"results": [{"statement_id": 0, "error": "database not found: telegraf"}]}
            ),
            "could not run the query: database not found",
            id="error-inside-a-200",
        ),
        pytest.param(httpx.Response(200, content=b"<html>proxy</html>\n"), "malformed JSON", id="not-json"),
        pytest.param(httpx.Response(200, content=b'{"results": 3}\n'), "unexpected", id="wrong-shape"),
        pytest.param(
            httpx.Response(
                200, json={"results": [{"series": [{"name": "m", "columns": ["v"], "values": [[1]]}]}]}
            ),
            "unexpected",
            id="no-time-column",
        ),
    ],
)
def test_a_source_error_that_needs_a_fix_is_not_transient(answer: Answer, expected: str) -> None:
    failure = read(answer)
    assert expected in str(failure)
    assert failure.transient is False


def test_a_source_error_keeps_its_cause() -> None:
    failure = read(httpx.ConnectError("refused"))
    assert "tried 2 times" in str(failure)
    assert isinstance(failure.__cause__, Exception)
    assert isinstance(failure.__cause__.__cause__, httpx.ConnectError)


def test_the_source_check_says_whether_the_server_is_down_or_refuses() -> None:
    def check(answer: Answer) -> SourceError:
        source = InfluxQLSource(InfluxConnection(url=URL), transport=scripted(answer))
        with pytest.raises(SourceError) as raised:
            source.check()
        return raised.value

    down = check(httpx.ConnectError("refused"))
    assert (down.transient, isinstance(down.__cause__, httpx.ConnectError)) == (True, True)
    assert check(httpx.Response(503)).transient is True
    assert check(httpx.Response(401, json={"error": "authorization failed"})).transient is False


# -- the InfluxDB sink ------------------------------------------------------------------------------


def influx_sink(*answers: Answer, retries: int = 1) -> InfluxSink:
    profile = InfluxSinkProfile.model_validate(
        {"type": "influxdb", "url": URL, "database": "out", "retries": retries, "backoff": 0}
    )
    return InfluxSink("archive", profile, TARGET, transport=scripted(*answers))


def write_fails(sink: InfluxSink | SearchSink, written: list[OutputRow] | None = None) -> SinkError:
    with pytest.raises(SinkError) as raised:
        sink.write(rows() if written is None else written)
    sink.close()
    return raised.value


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(503, text="unavailable"),
        httpx.Response(429, text="slow down"),
    ],
    ids=["refused", "timeout", "503", "429"],
)
def test_an_influxdb_sink_that_stays_unavailable_is_transient(answer: Answer) -> None:
    failure = write_fails(influx_sink(answer))
    assert "InfluxDB sink 'archive'" in str(failure)
    assert "failed after 2 attempts" in str(failure)
    assert failure.transient is True
    assert failure.__cause__ is not None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": 'partial write: field type conflict: input field "in_mean" is type integer'}),
        (401, {"error": "authorization failed"}),
        (403, {"error": "forbidden"}),
        (404, {"error": 'database not found: "out"'}),
        (413, {"error": "Request Entity Too Large"}),
    ],
)
def test_an_influxdb_sink_refusal_needs_a_fix(status: int, body: dict[str, str]) -> None:
    failure = write_fails(influx_sink(httpx.Response(status, json=body)))
    assert f"HTTP {status}: {body['error']}" in str(failure)
    assert failure.transient is False


def test_a_row_line_protocol_cannot_carry_needs_a_fix_and_names_the_sink() -> None:
    bad = [OutputRow({"host": "a\nb"}, WINDOW, WINDOW.start, {"in_mean": 1.0})]
    failure = write_fails(influx_sink(httpx.Response(204)), bad)
    assert str(failure).startswith("InfluxDB sink 'archive': row {'host': 'a\\nb'}")
    assert failure.transient is False
    assert isinstance(failure.__cause__, SinkError)


def test_the_influxdb_sink_check_says_whether_the_server_is_down_or_refuses() -> None:
    for answer, transient in [
        (httpx.ConnectError("refused"), True),
        (httpx.Response(500, text="boom"), True),
        (httpx.Response(404, text="not here"), False),
    ]:
        sink = influx_sink(answer)
        with pytest.raises(SinkError) as raised:
            sink.check()
        assert raised.value.transient is transient, answer


# -- the Elasticsearch and OpenSearch sinks ----------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    scripted_cluster = Cluster()
    scripted_cluster.start()
    yield scripted_cluster
    scripted_cluster.stop()


@pytest.fixture(params=["elasticsearch", "opensearch"])
def make_search_sink(request: pytest.FixtureRequest, cluster: Cluster) -> Callable[..., SearchSink]:
    def make(url: str = cluster.url) -> SearchSink:
        settings = {"type": request.param, "url": url, "retries": 1, "backoff": 0, "timeout": "5s"}
        if request.param == "elasticsearch":
            return ElasticsearchSink("search", ElasticsearchSinkProfile.model_validate(settings), TARGET)
        return OpenSearchSink("search", OpenSearchSinkProfile.model_validate(settings), TARGET)

    return make


def test_a_search_sink_that_stays_unavailable_is_transient(
    make_search_sink: Callable[..., SearchSink], cluster: Cluster
) -> None:
    cluster.script("bulk", error(503, "unavailable_shards_exception", "primary shard is not active"))
    busy = write_fails(make_search_sink())
    assert "failed after 2 attempts: HTTP 503" in str(busy)
    assert busy.transient is True
    assert isinstance(busy.__cause__, HttpError)

    cluster.script("bulk", item_statuses(201, 429), item_statuses(429))
    turned_away = write_fails(make_search_sink())
    assert "1 of 2 documents turned away" in str(turned_away)
    assert turned_away.transient is True

    down = write_fails(make_search_sink(f"http://127.0.0.1:{free_port()}"))
    assert "Connection" in str(down)
    assert down.transient is True
    assert isinstance(down.__cause__, UnreachableError)


def test_a_search_sink_refusal_needs_a_fix(
    make_search_sink: Callable[..., SearchSink], cluster: Cluster
) -> None:
    cluster.script(
        "put_mapping", error(400, "illegal_argument_exception", "mapper [in_mean] cannot be changed")
    )
    conflict = write_fails(make_search_sink())
    assert "refused: HTTP 400: illegal_argument_exception" in str(conflict)
    assert conflict.transient is False

    cluster.script("put_mapping", (200, {"acknowledged": True}))
    cluster.script("bulk", item_statuses(201, 400))
    rejected = write_fails(make_search_sink())
    assert "1 of 2 documents were rejected" in str(rejected)
    assert rejected.transient is False

    cluster.script("bulk", error(401, "security_exception", "unable to authenticate"))
    assert write_fails(make_search_sink()).transient is False


def test_the_search_sink_check_says_whether_the_server_is_down_or_refuses(
    make_search_sink: Callable[..., SearchSink], cluster: Cluster
) -> None:
    outcomes = []
    for url, answer in [
        (f"http://127.0.0.1:{free_port()}", None),
        (cluster.url, error(503, "unavailable", "not yet")),
        (cluster.url, error(403, "security_exception", "no")),
    ]:
        if answer is not None:
            cluster.script("info", answer)
        sink = make_search_sink(url)
        with pytest.raises(SinkError) as raised:
            sink.check()
        sink.close()
        outcomes.append(raised.value.transient)
    assert outcomes == [True, True, False]
