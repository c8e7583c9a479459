"""The InfluxDB sink's HTTP behaviour on scripted responses (httpx.MockTransport)."""

from __future__ import annotations

import base64
import gzip
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import ValidationError

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import SinkError
from rollup.sinks.base import OutputTarget, Sink
from rollup.sinks.influxdb import InfluxSink, InfluxSinkProfile

SECRET = "s3cr3t-Pa55word"
WINDOW = Window(1_700_000_000_000_000_000, 1_700_086_400_000_000_000)
TARGET = OutputTarget(
    job="iface",
    measurement="iface_daily",
    window="1d",
    timezone="UTC",
    tags=("host",),
    schema={"bytes_mean": "double", "bytes_samples": "long"},
)


def rows(count: int = 2) -> list[OutputRow]:
    return [
        OutputRow({"host": f"r{i}"}, WINDOW, WINDOW.start, {"bytes_mean": 1.5 * i, "bytes_samples": i})
        for i in range(count)
    ]


def lines(count: int = 2) -> list[str]:
    return [
        f"iface_daily,host=r{i} bytes_mean={1.5 * i!r},bytes_samples={i}i {WINDOW.start}"
        for i in range(count)
    ]


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLUP_TEST_INFLUX_PASSWORD", SECRET)


def profile(**changes: object) -> InfluxSinkProfile:
    settings: dict[str, object] = {
        "type": "influxdb",
        "url": "http://influx.example:8086",
        "database": "rollups",
        "username": "writer",
        "password_env": "ROLLUP_TEST_INFLUX_PASSWORD",
        "backoff": 0.001,
    }
    settings.update(changes)
    return InfluxSinkProfile.model_validate(settings)


class Script:
    """A MockTransport handler answering with the next scripted status (or raising it)."""

    def __init__(self, *answers: int | httpx.Response | Exception):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        if answer == 204:
            return httpx.Response(204)
        return httpx.Response(answer, json={"error": f"scripted {answer}"})

    def body(self, index: int = 0) -> str:
        request = self.requests[index]
        content = request.content
        if request.headers.get("Content-Encoding") == "gzip":
            content = gzip.decompress(content)
        return content.decode()


@pytest.fixture
def make_sink() -> Iterator[Callable[..., tuple[InfluxSink, Script]]]:
    made: list[InfluxSink] = []

    def make(*answers: int | httpx.Response | Exception, **changes: object) -> tuple[InfluxSink, Script]:
        script = Script(*answers)
        sink = InfluxSink("archive", profile(**changes), TARGET, transport=httpx.MockTransport(script))
        made.append(sink)
        return sink, script

    yield make
    for sink in made:
        sink.close()


def test_sink_satisfies_the_protocol(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink: Sink = make_sink(204)[0]
    assert sink.name == "archive"


def test_gzip_body_holds_the_expected_lines(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(204)
    assert sink.write(rows(3)) == 3
    [request] = script.requests
    assert request.method == "POST"
    assert request.url.path == "/write"
    assert dict(request.url.params) == {"db": "rollups", "precision": "ns"}
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert script.body() == "\n".join(lines(3))
    expected_auth = "Basic " + base64.b64encode(f"writer:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == expected_auth
    assert SECRET not in str(request.url)


def test_plain_body_and_retention_policy(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(204, gzip=False, retention_policy="forever")
    sink.write(rows(2))
    [request] = script.requests
    assert "Content-Encoding" not in request.headers
    assert request.url.params["rp"] == "forever"
    assert request.content.decode() == "\n".join(lines(2))


def test_rows_are_sent_in_batches(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(204, batch_size=2)
    assert sink.write(rows(5)) == 5
    assert [script.body(i).count("\n") + 1 for i in range(3)] == [2, 2, 1]
    assert "\n".join(script.body(i) for i in range(3)) == "\n".join(lines(5))


def test_nothing_to_write_sends_nothing(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(204)
    assert sink.write([]) == 0
    assert script.requests == []


def test_an_unwritable_row_fails_before_anything_is_sent(
    make_sink: Callable[..., tuple[InfluxSink, Script]],
) -> None:
    sink, script = make_sink(204, batch_size=1)
    bad = OutputRow({"host": "a\nb"}, WINDOW, WINDOW.start, {"bytes_mean": 1.0})
    with pytest.raises(SinkError, match="newline"):
        sink.write([*rows(3), bad])
    assert script.requests == []


def test_5xx_is_retried_until_it_succeeds(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(500, 500, 204)
    assert sink.write(rows()) == 2
    assert len(script.requests) == 3
    assert {script.body(i) for i in range(3)} == {"\n".join(lines())}


def test_429_is_retried(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(429, 204)
    sink.write(rows())
    assert len(script.requests) == 2


def test_retry_after_is_honoured(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    busy = httpx.Response(429, headers={"Retry-After": "0.3"}, text="slow down")
    sink, script = make_sink(busy, 204, backoff=0)
    started = time.monotonic()
    sink.write(rows())
    assert time.monotonic() - started >= 0.3
    assert len(script.requests) == 2


def test_connection_errors_and_timeouts_are_retried(
    make_sink: Callable[..., tuple[InfluxSink, Script]],
) -> None:
    sink, script = make_sink(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 204)
    sink.write(rows())
    assert len(script.requests) == 3


def test_retries_run_out(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(503, retries=3)
    with pytest.raises(SinkError) as caught:
        sink.write(rows())
    assert len(script.requests) == 4
    message = str(caught.value)
    assert "'archive'" in message
    assert "'iface_daily'" in message
    assert "after 4 attempts" in message
    assert "HTTP 503: scripted 503" in message


def test_400_is_not_retried_and_shows_influxdb_message(
    make_sink: Callable[..., tuple[InfluxSink, Script]],
) -> None:
    conflict = (
        'partial write: field type conflict: input field "bytes_mean" on measurement "iface_daily" '
        "is type integer, already exists as type float dropped=1"
    )
    sink, script = make_sink(httpx.Response(400, json={"error": conflict}))
    with pytest.raises(SinkError) as caught:
        sink.write(rows())
    assert len(script.requests) == 1
    assert "measurement 'iface_daily'" in str(caught.value)
    assert conflict in str(caught.value)


def test_long_error_bodies_are_cut(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, _ = make_sink(httpx.Response(400, text="x" * 50_000))
    with pytest.raises(SinkError) as caught:
        sink.write(rows())
    assert len(str(caught.value)) < 1500
    assert "(50000 characters)" in str(caught.value)


def test_payload_too_large_suggests_a_smaller_batch(
    make_sink: Callable[..., tuple[InfluxSink, Script]],
) -> None:
    sink, _ = make_sink(httpx.Response(413, text="Request Entity Too Large"))
    with pytest.raises(SinkError, match="lower batch_size"):
        sink.write(rows())


def test_secrets_never_appear_in_messages_or_logs(
    make_sink: Callable[..., tuple[InfluxSink, Script]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = httpx.Response(401, json={"error": f"authorization failed for writer:{SECRET}"})
    sink, _ = make_sink(echo)
    with pytest.raises(SinkError) as refused:
        sink.write(rows())
    assert "HTTP 401" in str(refused.value)
    assert "password_env" in str(refused.value)

    flaky = httpx.Response(503, text=f"upstream said {SECRET}")
    sink, _ = make_sink(flaky, retries=2)
    with pytest.raises(SinkError) as exhausted:
        sink.write(rows())

    sink, _ = make_sink(httpx.ConnectError(f"cannot reach {SECRET}"), retries=1)
    with pytest.raises(SinkError) as down:
        sink.write(rows())

    sink, _ = make_sink(httpx.Response(500, text=SECRET))
    with pytest.raises(SinkError) as unhealthy:
        sink.check()

    for error in (refused.value, exhausted.value, down.value, unhealthy.value):
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
        assert "***" in str(error)
    assert caplog.records, "retries are logged"
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_check_pings(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    sink, script = make_sink(204)
    sink.check()
    assert script.requests[0].method == "GET"
    assert script.requests[0].url.path == "/ping"
    sink, _ = make_sink(httpx.ConnectError("refused"))
    with pytest.raises(SinkError, match=r"http://influx.example:8086 does not answer: ConnectError: refused"):
        sink.check()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"database": None}, "database is required"),
        ({"database": None, "org": "acme"}, "org and bucket go together"),
        ({"database": None, "org": "acme", "bucket": "b"}, "needs a token"),
        ({"org": "acme", "bucket": "b", "token_env": "T"}, "database and retention_policy belong"),
        ({"password": SECRET}, "cannot be written in a profile"),
        ({"batch_size": 0}, "batch_size"),
        ({"retries": -1}, "retries"),
        ({"batch": 10}, "Extra inputs are not permitted"),
        ({"type": "elasticsearch"}, "type"),
    ],
)
def test_profile_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        profile(**changes)
    assert SECRET not in str(caught.value)


def test_a_redirect_is_not_taken_for_success(make_sink: Callable[..., tuple[InfluxSink, Script]]) -> None:
    moved = httpx.Response(301, headers={"Location": "https://influx.example:8086/write"})
    sink, script = make_sink(moved)
    with pytest.raises(SinkError, match="HTTP 301: Moved Permanently"):
        sink.write(rows())
    assert len(script.requests) == 1
