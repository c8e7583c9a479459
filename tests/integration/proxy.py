"""An HTTP proxy in front of the test influxd that sees every write a sink makes.

It forwards everything, records the line-protocol lines of each ``/write`` it forwarded, and on
demand answers writes with 503 (a sink that is down), slows them down, or holds one write (the
Nth) without forwarding it — the moment a test kills the writing process, mid-window.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class WriteProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.writes: list[list[str]] = []
        """Lines of every write forwarded, in order."""
        self.down = False
        self.delay = 0.0
        self.hold_at: int | None = None
        """Hold the write with this number (1 = the first) instead of forwarding it."""
        self.held = threading.Event()
        self.arrived = threading.Event()
        """Set whenever a write arrives (before it is held, refused, delayed or forwarded)."""
        self._release = threading.Event()
        self._count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def lines(self) -> list[str]:
        return [line for write in self.writes for line in write]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not self.path.startswith("/write"):
                    self._forward(body)
                    return
                with proxy._lock:
                    proxy._count += 1
                    number = proxy._count
                proxy.arrived.set()
                if number == proxy.hold_at:
                    proxy.held.set()
                    proxy._release.wait(120)
                    self.close_connection = True
                    return
                if proxy.down:
                    self._answer(503, b'{"error": "the test made this sink unavailable"}')
                    return
                if proxy.delay:
                    proxy._release.wait(proxy.delay)
                status = self._forward(body)
                if status == 204:
                    raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                    with proxy._lock:
                        proxy.writes.append(raw.decode().splitlines())

            def _forward(self, body: bytes) -> int:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                response = httpx.request(
                    self.command, proxy.upstream + self.path, content=body, headers=headers, timeout=60
                )
                self._answer(response.status_code, response.content, response.headers.get("Content-Type"))
                return response.status_code

            def _answer(self, status: int, body: bytes, kind: str | None = "application/json") -> None:
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
