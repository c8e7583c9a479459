"""Faults between rollup and a real server: an HTTP proxy that sees each request, a TCP proxy
that only moves bytes, and a server that replays a recorded answer cut short.

:class:`HttpProxy` forwards every request to the real server and counts the ones a test cares
about (``counts``: e.g. writes). It can answer them with an error status (a server that is down
or refuses), or hold the Nth one — before forwarding it (the server has not seen it yet) or
after (the server stored it, the client has not heard back) — until the test releases it (the
request then goes on) or kills the client.

:class:`TcpProxy` forwards raw bytes, optionally terminating TLS with a test certificate. It can
delay every piece of the answer, stall (from the start, or once part of the answer went through:
the connection stays open, nothing more comes), or cut the answer after a number of bytes.

:class:`Replay` answers every connection with the first bytes of a response recorded from a real
server (:func:`record`), then closes it: an answer cut at any point.
"""

from __future__ import annotations

import gzip
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Match = Callable[[str, str, bytes], bool]
"""(method, path, body) → whether a request is one the proxy counts."""


def writes(method: str, path: str, body: bytes) -> bool:
    """InfluxDB writes and Elasticsearch/OpenSearch bulk requests."""
    if path.startswith(("/write", "/api/v2/write")):
        return method == "POST"
    return method in ("POST", "PUT") and path.split("?")[0].endswith("/_bulk")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client killed mid-request is what these tests do: nothing to report."""


class HttpProxy:
    def __init__(self, upstream: str, counts: Match = writes):
        self.upstream = upstream
        self.counts = counts
        self.bodies: list[bytes] = []
        """Bodies (decompressed) of the counted requests the server accepted, in order."""
        self.fail_status: int | None = None
        """Answer counted requests with this status instead of forwarding them."""
        self.delay = 0.0
        """Seconds to wait before forwarding each counted request."""
        self.hold_at: int | None = None
        """Hold the counted request with this number (1 = the first) until released …"""
        self.hold_after_forwarding = False
        """… after the server answered it (True) or before forwarding it (False)."""
        self.held = threading.Event()
        self.arrived = threading.Event()
        """Set whenever a counted request arrives (before it is held, refused, delayed or forwarded)."""
        self.seen = 0
        """Counted requests received so far."""
        self._release = threading.Event()
        self._generation = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def release(self) -> None:
        """Let a held request go on."""
        self._release.set()

    def arm(self, hold_at: int | None = None, after_forwarding: bool = False) -> None:
        """Start afresh: drop a held request, forget counts and bodies, then hold the Nth."""
        with self._lock:
            self._generation += 1
        self._release.set()
        with self._lock:
            self._release = threading.Event()
            self.held = threading.Event()
            self.seen = 0
            self.bodies = []
            self.hold_at = hold_at
            self.hold_after_forwarding = after_forwarding

    def close(self) -> None:
        with self._lock:
            self._generation += 1
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not proxy.counts(self.command, self.path, body):
                    self._answer(*self._forward(body))
                    return
                with proxy._lock:
                    proxy.seen += 1
                    number = proxy.seen
                proxy.arrived.set()
                hold = number == proxy.hold_at
                if hold and not proxy.hold_after_forwarding and not self._hold():
                    return
                if proxy.fail_status is not None:
                    self._answer(proxy.fail_status, b'{"error": "the test made this server fail"}', {})
                    return
                time.sleep(proxy.delay)
                status, content, headers = self._forward(body)
                if status < 300:
                    plain = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                    with proxy._lock:
                        proxy.bodies.append(plain)
                if hold and not self._hold():
                    return
                self._answer(status, content, headers)

            def _hold(self) -> bool:
                """Wait for the release; False if the proxy was re-armed or closed meanwhile: the
                request is dropped (its client was killed)."""
                with proxy._lock:
                    release, generation = proxy._release, proxy._generation
                proxy.held.set()
                release.wait(300)
                if proxy._generation != generation:
                    self.close_connection = True
                    return False
                return True

            def _forward(self, body: bytes) -> tuple[int, bytes, dict[str, str]]:
                skip = ("host", "content-length", "connection", "transfer-encoding")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                try:
                    response = proxy._client.request(
                        self.command, proxy.upstream + self.path, content=body, headers=headers
                    )
                except httpx.TransportError as exc:
                    return 502, f'{{"error": "proxy: upstream unreachable: {exc}"}}'.encode(), {}
                kept = ("content-type", "x-elastic-product", "retry-after")
                return (
                    response.status_code,
                    response.content,
                    {k: v for k, v in response.headers.items() if k.lower() in kept},
                )

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler


class TcpProxy:
    """Moves bytes between clients and ``upstream`` (host, port); the answer direction can be
    delayed, stalled or cut. With ``tls``, clients speak TLS to the proxy (plain to upstream)."""

    def __init__(self, upstream: tuple[str, int], tls: ssl.SSLContext | None = None):
        self.upstream = upstream
        self.tls = tls
        self.delay = 0.0
        """Seconds to wait before passing on each piece of the answer."""
        self.stall_after: int | None = None
        """Pass on this many bytes of each answer (0: none), then nothing more; the connection stays open."""
        self.cut_after: int | None = None
        """Close the connection once this many bytes of the answer went through."""
        self.connections = 0
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closing.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        client: socket.socket = raw
        try:
            if self.tls is not None:
                raw.settimeout(10)
                client = self.tls.wrap_socket(raw, server_side=True)
            with client, socket.create_connection(self.upstream) as server:
                self._pump(client, server)
        except (OSError, ssl.SSLError):
            pass  # a client that gave up (timeout, refused certificate) or a cut: nothing to do

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        sent = 0
        client.setblocking(True)
        while not self._closing.is_set():
            pending = client.pending() if isinstance(client, ssl.SSLSocket) else 0
            ready = [client] if pending else select.select([client, server], [], [], 0.2)[0]
            for side in ready:
                data = side.recv(65536)
                if not data:
                    return
                if side is client:
                    server.sendall(data)
                    continue
                if self.stall_after is not None:
                    data = data[: max(self.stall_after - sent, 0)]
                if self.delay:
                    time.sleep(self.delay)
                if self.cut_after is not None and sent + len(data) >= self.cut_after:
                    client.sendall(data[: self.cut_after - sent])
                    return
                client.sendall(data)
                sent += len(data)


def record(url: str, path: str, form: dict[str, str], headers: dict[str, str]) -> bytes:
    """The raw bytes (status line, headers, body as framed on the wire) of a POST to a real server."""
    parsed = httpx.URL(url)
    body = str(httpx.QueryParams(form)).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {parsed.host}:{parsed.port}", "Connection: close"]
    head += [f"{key}: {value}" for key, value in headers.items()]
    head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    chunks = []
    with socket.create_connection((str(parsed.host), int(parsed.port or 80)), timeout=30) as sock:
        sock.sendall(request)
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


class Replay:
    """Answers each connection with ``response[:cut]``, then closes it."""

    def __init__(self, response: bytes):
        self.response = response
        self.cut = len(response)
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with client:
                client.settimeout(5)
                try:
                    self._read_request(client)
                    client.sendall(self.response[: self.cut])
                    client.shutdown(socket.SHUT_WR)
                    while client.recv(65536):  # until the client closes: no reset on unread bytes
                        pass
                except OSError:
                    pass

    @staticmethod
    def _read_request(client: socket.socket) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            data = client.recv(65536)
            if not data:
                return
            received += data
        head, _, body = received.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            data = client.recv(65536)
            if not data:
                return
            body += data
