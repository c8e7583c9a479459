"""The sink's InfluxDB 2.x path (``/api/v2/write``) against a small real HTTP server.

influxd 1.6.7 has no v2 write API, so a recording server stands in for it: it checks what goes
over the wire (path, org/bucket/precision, token, gzip body) and answers as InfluxDB 2.x does.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import SinkError
from rollup.sinks.base import OutputTarget
from rollup.sinks.influxdb import InfluxSink, InfluxSinkProfile

pytestmark = pytest.mark.integration

TOKEN = "v2-t0ken-AbCdEf=="
T0 = 1_700_006_400 * 10**9
TARGET = OutputTarget(
    "iface", "iface_daily", "1d", "UTC", ("host",), {"bytes_mean": "double", "bytes_samples": "long"}
)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str


class Recorder:
    """Answers each request with the next scripted (status, JSON body) and records it."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str] | None]] = []
        self.requests: list[Recorded] = []

    def answer(self) -> tuple[int, dict[str, str] | None]:
        return self.script.pop(0) if self.script else (204, None)


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            url = urlsplit(self.path)
            recorder.requests.append(
                Recorded(self.command, url.path, parse_qs(url.query), dict(self.headers), raw.decode())
            )
            status, payload = recorder.answer()
            body = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def v2_sink(url: str, token_file: Path, **changes: object) -> InfluxSink:
    settings: dict[str, object] = {
        "type": "influxdb",
        "url": url,
        "org": "acme",
        "bucket": "rollups/long",
        "token_file": token_file,
        "backoff": 0.01,
    }
    settings.update(changes)
    return InfluxSink("cloud", InfluxSinkProfile.model_validate(settings), TARGET)


def rows() -> list[OutputRow]:
    window = Window(T0, T0 + 86_400 * 10**9)
    return [
        OutputRow({"host": "r 1"}, window, T0, {"bytes_mean": 2.0, "bytes_samples": 288}),
        OutputRow({"host": "r2"}, window, T0, {"bytes_mean": 0.5, "bytes_samples": 12}),
    ]


LINES = [
    rf"iface_daily,host=r\ 1 bytes_mean=2.0,bytes_samples=288i {T0}",
    f"iface_daily,host=r2 bytes_mean=0.5,bytes_samples=12i {T0}",
]


def test_write_request(server: tuple[str, Recorder], token_file: Path) -> None:
    url, recorder = server
    sink = v2_sink(url, token_file)
    assert sink.write(rows()) == 2
    sink.check()
    sink.close()
    write, ping = recorder.requests
    assert (write.method, write.path) == ("POST", "/api/v2/write")
    assert write.query == {"org": ["acme"], "bucket": ["rollups/long"], "precision": ["ns"]}
    assert write.headers["Authorization"] == f"Token {TOKEN}"
    assert write.headers["Content-Encoding"] == "gzip"
    assert write.body.split("\n") == LINES
    assert (ping.method, ping.path) == ("GET", "/ping")


def test_batches(server: tuple[str, Recorder], token_file: Path) -> None:
    url, recorder = server
    sink = v2_sink(url, token_file, batch_size=1, gzip=False)
    sink.write(rows())
    sink.close()
    assert [r.body for r in recorder.requests] == LINES
    assert all("Content-Encoding" not in r.headers for r in recorder.requests)


def test_5xx_then_204_is_retried(server: tuple[str, Recorder], token_file: Path) -> None:
    url, recorder = server
    recorder.script = [(503, {"code": "unavailable", "message": "service unavailable"}), (204, None)]
    sink = v2_sink(url, token_file)
    assert sink.write(rows()) == 2
    sink.close()
    assert len(recorder.requests) == 2
    assert recorder.requests[0].body == recorder.requests[1].body == "\n".join(LINES)


def test_400_is_a_sink_error_with_the_message(server: tuple[str, Recorder], token_file: Path) -> None:
    url, recorder = server
    failure = (
        'failure writing points to database: partial write: field type conflict: input field "bytes_mean"'
    )
    recorder.script = [(400, {"code": "invalid", "message": failure})]
    sink = v2_sink(url, token_file)
    with pytest.raises(SinkError) as caught:
        sink.write(rows())
    sink.close()
    assert len(recorder.requests) == 1
    assert f"measurement 'iface_daily': HTTP 400: {failure}" in str(caught.value)


def test_bad_token_is_not_shown(server: tuple[str, Recorder], token_file: Path) -> None:
    url, recorder = server
    recorder.script = [(401, {"code": "unauthorized", "message": f"unauthorized access with {TOKEN}"})]
    sink = v2_sink(url, token_file)
    with pytest.raises(SinkError, match="HTTP 401: unauthorized access") as caught:
        sink.write(rows())
    sink.close()
    assert TOKEN not in str(caught.value)
    assert "token_env/token_file" in str(caught.value)
